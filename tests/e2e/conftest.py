"""Fixtures shared by the browser tests: a runs root whose trainers die with the module, and
the live-drag test decoders."""

from __future__ import annotations

import importlib.util
import signal
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from vae_core.process import kill_trainer
from vae_core.rundir import list_runs


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An empty runs root; trainers the app started in it are killed at the end."""
    root = tmp_path_factory.mktemp("runs")
    yield root
    for run in list_runs(root):  # trainers run in their own session: kill them by pid
        kill_trainer(run, signal.SIGKILL)


@pytest.fixture(scope="session")
def live_models() -> ModuleType:
    """tests/e2e/live_drag_models.py: the decoders the live-drag app serves (this folder is
    not a package, and the app imports the module from beside itself)."""
    path = Path(__file__).with_name("live_drag_models.py")
    spec = importlib.util.spec_from_file_location("live_drag_models", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
