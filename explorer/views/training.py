"""Live training readouts: state line, ELBO / reconstruction / KL curves, per-dim KL bars
and reconstructions of fixed test images, refreshed about once a second while a run lives.
"""

from __future__ import annotations

import time

import numpy as np
import streamlit as st

from explorer import cache, charts, images, runs, state
from vae_core import latent
from vae_core.rundir import RunDir, Status

REFRESH_S = 1.0
NUM_FIXED_IMAGES = 8


def render(run: RunDir) -> None:
    """The training panel; a fragment that reruns every second only while the run lives."""
    phase = _phase(run)
    st.session_state[state.TRAINING_LAST_STATE] = phase
    # A finished run needs no polling; the fragment reruns the app when the phase changes.
    st.fragment(_panel, run_every=REFRESH_S if phase[0] else None)(str(run.path))


def _phase(run: RunDir) -> tuple[bool, bool]:
    """(trainer live, snapshot published): when either flips, the other views must redraw."""
    return runs.is_live(run.read_status()), run.snapshot_version() > 0


def _panel(run_path: str) -> None:
    run = RunDir(run_path)
    status = run.read_status()
    phase = _phase(run)
    if phase != st.session_state.get(state.TRAINING_LAST_STATE):
        # First snapshot (sliders, scatter can draw) or the run ended (final weights):
        # redraw the whole page once; polling stops when the run is over.
        st.session_state[state.TRAINING_LAST_STATE] = phase
        st.rerun(scope="app")
    _readouts(run, status)
    rows = cache.metrics_log(run_path).refresh()
    if not rows:
        st.info("Waiting for the first metrics… (the trainer logs every few steps)")
        return
    st.plotly_chart(charts.curves_figure(rows), key="training.curves", width="stretch")
    col_kl, col_recon = st.columns([3, 2])
    kl = runs.latest_kl_per_dim(rows)
    if kl is not None:
        col_kl.plotly_chart(
            charts.kl_bar_figure(kl, latent.active_dims(kl)), key="training.kl", width="stretch"
        )
    with col_recon:
        _fixed_reconstructions(run)


def _readouts(run: RunDir, status: Status | None) -> None:
    shown = runs.display_state(status)
    fields = runs.status_fields(run)
    total = fields.get("total_steps")
    cols = st.columns(5)
    cols[0].metric("State", shown)
    step = status.step if status else 0
    cols[1].metric("Step", f"{step}" + (f" / {total}" if total else ""))
    cols[2].metric("Epoch", status.epoch if status else 0)
    cols[3].metric("Samples/s", f"{status.samples_per_s:,.0f}" if status else "–")
    cols[4].metric("Last update", _last_update(status, shown))
    if shown in ("dead", "failed") or (status and status.state == "failed"):
        _failure(run, status, shown)


def _last_update(status: Status | None, shown: str) -> str:
    """Seconds since the trainer's last heartbeat while it lives, else the clock time."""
    if status is None or not status.heartbeat:
        return "–"
    if shown in runs.LIVE_STATES:
        return f"{time.time() - status.heartbeat:.0f} s ago"
    return time.strftime("%H:%M:%S", time.localtime(status.heartbeat))


def _failure(run: RunDir, status: Status | None, shown: str) -> None:
    """Say why the trainer stopped, offer Resume, and show the log's tail (never a traceback
    in the page itself: it goes in a collapsed box for whoever wants it)."""
    if shown == "dead":
        reason = "the trainer stopped without saying why (its process is gone or silent)"
    else:
        reason = (status.reason if status else "") or "unknown reason"
    st.error(f"Training {shown}: {reason}")
    if st.button("Resume training", key="training.resume", type="primary"):
        try:
            runs.resume_run(run)
        except (RuntimeError, OSError, ValueError) as e:
            st.error(str(e))
        else:
            st.rerun(scope="app")
    tail = runs.trainer_log_tail(run)
    if tail:
        with st.expander("Trainer log (last lines)"):
            st.code(tail, language=None)


def _fixed_reconstructions(run: RunDir) -> None:
    """The same test images every time, next to their reconstructions by the newest weights."""
    version = run.snapshot_version()
    if version == 0:
        st.caption("Reconstructions appear with the first snapshot.")
        return
    n = len(cache.test_data(str(run.path)))
    indices = tuple(np.linspace(0, n - 1, NUM_FIXED_IMAGES).astype(int).tolist())
    originals, recons = cache.reconstructions(str(run.path), version, indices)
    both = np.concatenate([originals, recons])  # (2N, H, W, C): top row inputs
    grid = latent.image_grid(both, nrow=NUM_FIXED_IMAGES)
    st.image(
        images.png_bytes(grid, target_px=480),
        caption=f"Test images (top) and reconstructions (bottom), snapshot v{version}",
        width="stretch",
        output_format="PNG",
    )
