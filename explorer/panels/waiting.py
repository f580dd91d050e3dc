"""Placeholder for views that need weights: polls until the first snapshot, then redraws."""

from __future__ import annotations

import streamlit as st

from explorer import guard
from vae_core.rundir import RunDir


def until_snapshot(run: RunDir, what: str) -> bool:
    """True when `run` has a snapshot; else shows a note and reruns the page once one appears."""
    if run.snapshot_version() > 0:
        return True
    st.fragment(_poll, run_every=1.0)(str(run.path), what)
    return False


@guard.shows_run_errors
def _poll(run_path: str, what: str) -> None:
    if RunDir(run_path).snapshot_version() > 0:
        st.rerun(scope="app")
    st.info(f"{what} appear once the trainer publishes its first snapshot (a few seconds).")
