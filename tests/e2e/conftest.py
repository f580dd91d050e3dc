"""Fixtures shared by the browser tests: a runs root whose trainers die with the module."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

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
