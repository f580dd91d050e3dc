"""Live training readouts: state line, ELBO / reconstruction / KL curves, per-dim KL bars
and reconstructions of fixed test images, refreshed about once a second while a run lives.
"""

from __future__ import annotations

import time

import numpy as np
import streamlit as st

from explorer import access, cache, charts, guard, images, runs, state
from vae_core import latent
from vae_core.config import BETA_RANGE, LR_RANGE
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
    return runs.run_status(run).is_live, run.snapshot_version() > 0


@guard.shows_run_errors
def _panel(run_path: str) -> None:
    run = RunDir(run_path)
    status = runs.run_status(run)
    phase = _phase(run)
    if phase != st.session_state.get(state.TRAINING_LAST_STATE):
        # First snapshot (sliders, scatter can draw) or the run ended (final weights):
        # redraw the whole page once; polling stops when the run is over.
        st.session_state[state.TRAINING_LAST_STATE] = phase
        st.rerun(scope="app")
    _readouts(run, status)
    metrics = cache.metrics_log(run_path).refresh()
    if metrics.is_empty:
        st.info("Waiting for the first metrics… (the trainer logs every few steps)")
        return
    st.plotly_chart(charts.curves_figure(metrics), key="training.curves", width="stretch")
    col_kl, col_recon = st.columns([3, 2])
    kl = metrics.latest_kl_per_dim
    if kl is not None:
        col_kl.plotly_chart(
            charts.kl_bar_figure(kl, latent.active_dims(kl)), key="training.kl", width="stretch"
        )
    with col_recon:
        _fixed_reconstructions(run)


def _readouts(run: RunDir, status: Status) -> None:
    shown = status.display_state
    total = f" / {status.total_steps}" if status.total_steps else ""
    cols = st.columns(5)
    cols[0].metric("State", shown + (" (other host)" if status.on_other_host else ""))
    cols[1].metric("Step", f"{status.step}{total}")
    cols[2].metric("Epoch", status.epoch)
    cols[3].metric("Samples/s", f"{status.samples_per_s:,.0f}" if status.heartbeat else "–")
    cols[4].metric("Last update", _last_update(status))
    if shown in ("dead", "failed"):
        _failure(run, status)


def _last_update(status: Status) -> str:
    """Seconds since the trainer's last heartbeat while it lives, else the clock time."""
    if not status.heartbeat:
        return "–"
    if status.is_live:
        return f"{time.time() - status.heartbeat:.0f} s ago"
    return time.strftime("%H:%M:%S", time.localtime(status.heartbeat))


def _failure(run: RunDir, status: Status) -> None:
    """Say why the trainer stopped, offer Resume (with a lower lr / beta after a failure),
    and show the log's tail (never a traceback in the page itself: it goes in a collapsed
    box for whoever wants it)."""
    if status.display_state == "dead":
        reason = "the trainer stopped without saying why (its process is gone or silent)"
    else:
        reason = status.reason or "unknown reason"
    st.error(f"Training {access.plain(status.display_state)}: {access.plain(reason)}")
    refusal = access.current().train_refusal
    if refusal:
        st.caption(access.plain(refusal))
    if status.is_resumable:
        _resume_form(run, status, refusal)
    elif status.on_other_host:
        st.caption(access.plain(f"Written from host {status.host}: resume it there."))
    tail = runs.trainer_log_tail(run)
    if tail:
        with st.expander("Trainer log (last lines)"):
            st.code(tail, language=None)


def _resume_form(run: RunDir, status: Status, refusal: str | None) -> None:
    """Resume from the last good checkpoint; a failed run is offered a 10x lower lr."""
    beta, lr = runs.live_settings(run)
    if status.state == "failed":
        lr = max(lr / 10, LR_RANGE[0])
    with st.form("training.resume_form", border=False):
        col_lr, col_beta, col_go = st.columns([1, 1, 2], vertical_alignment="bottom")
        new_lr = col_lr.number_input(
            "lr", min_value=LR_RANGE[0], max_value=LR_RANGE[1], value=lr, format="%.1e"
        )
        new_beta = col_beta.number_input(
            "beta", min_value=BETA_RANGE[0], max_value=BETA_RANGE[1], value=beta, step=0.5
        )
        resume = col_go.form_submit_button(
            "Resume training", type="primary", disabled=refusal is not None
        )
    if not resume:
        return
    try:
        if refusal:  # disabled above; a hand-made widget event must not get through
            raise PermissionError(refusal)
        runs.resume_run(run, beta=new_beta, lr=new_lr)
    except (RuntimeError, OSError, ValueError) as e:
        st.error(access.plain(e))
    else:
        st.rerun(scope="app")


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
