"""One clear line, never a traceback, when a run's files are damaged or cannot be read.

Views and fragments are wrapped with `shows_run_errors`: a damaged status.json, a snapshot
header of the wrong type or an unreadable folder then costs that one view a red line,
and every other view and run keeps working.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import streamlit as st

from explorer import access
from vae_core.config import ModelImportError
from vae_core.run_errors import RunDamaged
from vae_core.safetensors_io import UnsafeCheckpointError

# ModelImportError: an imported run whose class cannot be imported here
RUN_ERRORS = (RunDamaged, UnsafeCheckpointError, ModelImportError, OSError)

P = ParamSpec("P")
R = TypeVar("R")


def shows_run_errors(view: Callable[P, R]) -> Callable[P, R | None]:
    """`view`, with RUN_ERRORS shown as one plain-text st.error (st.rerun/st.stop pass)."""

    @functools.wraps(view)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> R | None:
        try:
            return view(*args, **kwargs)
        except RUN_ERRORS as e:
            st.error(access.plain(str(e)))
            return None

    return guarded
