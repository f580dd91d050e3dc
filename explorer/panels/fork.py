"""Fork from here: branch a run at one history point into a new run and start it.

The fork keeps the architecture and dataset; a preset (or custom values) changes beta, lr,
epochs and seed. Drawn under the time-lapse (any history step) and in the training view
(the newest point).
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from explorer import access, runs, state
from vae_core.config import BETA_RANGE, LR_RANGE, MAX_EPOCHS, TrainConfig
from vae_core.rundir import RunDir

PLAIN_AE = "As a plain autoencoder (β = 0)"
PRESETS = ("Same settings", PLAIN_AE, "Stronger KL (β × 4)", "Custom")
USER_ERRORS = (PermissionError, RuntimeError, ValueError, OSError)


def render(run: RunDir, cfg: TrainConfig, step: int, epoch: int, key: str) -> None:
    """Preset / custom settings (from the run's `cfg`) and a "Fork from here" button for the
    point at `step` (reached in epoch `epoch`); `key` prefixes the widget keys (one form per
    place)."""
    refusal = access.current().train_refusal
    preset = st.selectbox("Fork preset", PRESETS, key=state.sub_key(key, "preset"))
    changes = _changes(preset, cfg, epoch, key)
    label = ", ".join(f"{k} = {v:g}" for k, v in changes.items()) or "the parent's settings"
    st.caption(f"The fork continues from step {step} with {label}.")
    if st.button("Fork from here", key=state.sub_key(key, "go"), disabled=refusal is not None):
        try:
            fork = runs.fork_and_start(run, step, changes, access.current())
        except USER_ERRORS as e:
            st.error(f"Not forked: {access.plain(e)}")
            return
        state.set_open_run_ref(runs.run_ref(fork))
        state.open_view_after_rerun("Training")
        st.session_state[state.SIDEBAR_NOTICE] = f"Forked {fork.path.name} from step {step}"
        st.rerun()
    if refusal:
        st.caption(access.plain(refusal))


def _changes(preset: str, cfg: TrainConfig, epoch: int, key: str) -> dict[str, Any]:
    """The settings the fork changes; epochs always ends past the branch point's epoch."""
    epochs = max(cfg.epochs, epoch + 1)
    if preset == PLAIN_AE:
        return {"beta": 0.0, "epochs": epochs}
    if preset.startswith("Stronger"):
        return {"beta": min(BETA_RANGE[1], 4 * cfg.beta), "epochs": epochs}
    if preset != "Custom":
        return {"epochs": epochs} if epochs != cfg.epochs else {}
    col_beta, col_lr, col_epochs, col_seed = st.columns(4)
    return {
        "beta": col_beta.number_input(
            "β", *BETA_RANGE, value=float(cfg.beta), key=state.sub_key(key, "beta"), format="%.3g"
        ),
        "lr": col_lr.number_input(
            "lr", *LR_RANGE, value=float(cfg.lr), key=state.sub_key(key, "lr"), format="%.2e"
        ),
        "epochs": int(
            col_epochs.number_input(
                "Epochs", epoch + 1, MAX_EPOCHS, value=epochs, key=state.sub_key(key, "epochs")
            )
        ),
        "seed": int(
            col_seed.number_input("Seed", 0, 2**31 - 1, cfg.seed, key=state.sub_key(key, "seed"))
        ),
    }
