"""Placeholders that poll, then redraw the page: until a new run's trainer has written its
config.json (the whole page), and until the first snapshot (views that need weights)."""

from __future__ import annotations

import streamlit as st

from explorer import access, guard, runs
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


def until_started(run: RunDir) -> bool:
    """True once the trainer has written `run`'s config.json; until then a note (or why the
    start failed), and the page is redrawn once it has."""
    if run.exists():
        return True
    status = runs.run_status(run)
    if status.state == "failed":
        st.error(f"{run.path.name} did not start: {access.plain(status.reason)}")
    else:
        st.fragment(_poll_start, run_every=1.0)(str(run.path))
    return False


@guard.shows_run_errors
def _poll_start(run_path: str) -> None:
    run = RunDir(run_path)
    if run.exists() or not runs.run_status(run).is_live:
        st.rerun(scope="app")
    st.info("Starting the trainer: the run appears here once it has loaded (a few seconds).")
