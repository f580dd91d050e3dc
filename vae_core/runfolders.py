"""Remove and rename run folders, and find a fork's parent after a rename.

A live run (its OS lock held, or a trainer just launched on it) is never touched: both
operations take the run's writer lock for their duration, so no trainer can start on the
folder while it moves. A fork records its parent's stable id (config.json "id") beside the
parent's path, so renaming the parent writes nothing into the fork: `find_parent` looks
the id up among the parent's old neighbours when the recorded path no longer holds it.
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from vae_core.run_errors import RunDamaged, RunLocked
from vae_core.rundir import RunDir, list_runs

MAX_NAME_CHARS = 80
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def check_run_name(name: str) -> str:
    """A run's folder name: letters, digits, '.', '_' and '-', not starting with a dot or a
    dash, at most MAX_NAME_CHARS; ValueError says what is wrong."""
    name = name.strip()
    if not name:
        raise ValueError("a run name cannot be empty")
    if len(name) > MAX_NAME_CHARS:
        raise ValueError(f"a run name has at most {MAX_NAME_CHARS} characters, got {len(name)}")
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"run name {name[:MAX_NAME_CHARS]!r}: use letters, digits, '.', '_' and '-' "
            "(starting with a letter or digit)"
        )
    return name


def rename_run(run: RunDir, new_name: str) -> RunDir:
    """Give `run` a new folder name beside the old one; returns the renamed run.

    RunLocked for a live run, FileExistsError when the name is taken, ValueError for a bad
    name or a folder that holds no run. Its forks still find it (find_parent).
    """
    new_name = check_run_name(new_name)
    _check_is_run(run)
    target = run.path.parent / new_name
    if target.resolve() == run.path.resolve():
        return run
    with _quiet(run):
        try:
            target.mkdir()  # claims the name: only one caller's mkdir succeeds
        except FileExistsError:
            raise FileExistsError(f"{target} already exists; pick another name") from None
        try:
            run.path.rename(target)  # replaces the empty folder just made, atomically
        except OSError:
            target.rmdir()
            raise
    return RunDir(target)


def remove_run(run: RunDir) -> None:
    """Delete a run folder and everything in it. RunLocked for a live run, ValueError when
    the folder holds no run (nothing else is ever deleted). Forks of it keep their own
    weights; they only lose the link to it."""
    _check_is_run(run)
    with _quiet(run):
        # Hidden first (list_runs skips dot-folders): a removal cut short leaves no half-run.
        doomed = run.path.parent / f".removing-{run.path.name}-{uuid.uuid4().hex[:8]}"
        run.path.rename(doomed)
    shutil.rmtree(doomed)


def find_parent(run: RunDir, roots: Iterable[Path] = ()) -> RunDir | None:
    """The run a fork branched from, or None (not a fork, or the parent was removed).

    The recorded path is tried first; when it no longer holds the parent's id (renamed),
    the runs beside the recorded path, beside the fork and under `roots` are searched.
    """
    parent = run.read_parent()
    if parent is None:
        return None
    recorded = RunDir(parent["run"])
    wanted = parent.get("id")
    if wanted is None:  # a fork of a run made before ids: the path is all there is
        return recorded if recorded.exists() else None
    if _id_of(recorded) == wanted:
        return recorded
    for folder in dict.fromkeys([recorded.path.parent, run.path.parent, *map(Path, roots)]):
        for candidate in list_runs(folder):
            if _id_of(candidate) == wanted:
                return candidate
    return None


def _id_of(run: RunDir) -> str | None:
    try:
        return run.run_id()
    except (RunDamaged, OSError):
        return None


def _check_is_run(run: RunDir) -> None:
    if not run.exists():
        raise ValueError(f"{run.path} is not a run directory (no config.json); nothing changed")


class _quiet:
    """Hold the run's writer lock, after checking that no trainer is live or launching."""

    def __init__(self, run: RunDir) -> None:
        self.run = run

    def __enter__(self) -> None:
        try:
            self.lock = self.run.acquire_lock()
        except RunLocked:
            raise RunLocked(
                f"{self.run.path.name} is training (pid {self.run.lock_holder()}); stop it first"
            ) from None
        try:
            status = self.run.read_status()
        except RunDamaged:
            status = None  # a damaged status.json does not make a trainer
        # Our own lock reads as "locked": ask whether a trainer is live without it (one
        # launched and still importing, or one on another host).
        if status is not None and replace(status, locked=False).is_live:
            self.lock.release()
            raise RunLocked(f"{self.run.path.name} is training (pid {status.pid}); stop it first")

    def __exit__(self, *exc: object) -> None:
        self.lock.release()
