"""Placeholders that poll, then redraw the page: until a launched trainer has written its
first status (the whole page), and until the first snapshot (views that need weights)."""

from __future__ import annotations

import streamlit as st

from explorer import access, guard, runs, state
from explorer.components import ticker
from vae_core.rundir import RunDir

POLL_S = 1.0  # while the tab is visible (components.ticker)


def until_snapshot(run: RunDir, what: str) -> bool:
    """True when `run` has a snapshot; else shows a note and reruns the page once one appears."""
    if run.snapshot_version() > 0:
        return True
    st.fragment(_poll)(str(run.path), what)
    return False


@guard.shows_run_errors
def _poll(run_path: str, what: str) -> None:
    ticker.every(POLL_S, key=state.WAITING_CLOCK)
    if RunDir(run_path).snapshot_version() > 0:
        st.rerun(scope="app")
    st.info(f"{what} appear once the trainer publishes its first snapshot (a few seconds).")


def until_started(run: RunDir) -> bool:
    """True once the trainer this app launched has written `run`'s config.json and first
    status.json (or no launch of ours is pending); until then a note (or why the start
    failed), and the page is redrawn once it has: the views draw from the trainer's files."""
    if run.exists() and not runs.awaiting_first_status(run):
        return True
    status = runs.run_status(run)
    if status.state == "failed":
        st.error(f"{run.path.name} did not start: {access.plain(status.reason)}")
    else:
        st.fragment(_poll_start)(str(run.path))
    return False


@guard.shows_run_errors
def _poll_start(run_path: str) -> None:
    ticker.every(POLL_S, key=state.WAITING_CLOCK)
    run = RunDir(run_path)
    if not runs.awaiting_first_status(run):
        st.rerun(scope="app")
    st.info("Starting the trainer: the run appears here once it has loaded (a few seconds).")
