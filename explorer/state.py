"""Every st.session_state key the explorer uses, with defaults and typed accessors.

Keys are prefixed by the view that owns them ("sliders.z", "scatter.selected"). Only the
open run lives in the URL (?run=...), so it survives reloads and is shared by link.
"""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

RUN_PARAM = "run"  # query parameter naming the open run

# -- keys --
APP_VIEW = "view"  # the view selector; bound to ?view=... so a reload keeps the view
SIDEBAR_NOTICE = "sidebar.notice"  # a one-shot message to show after a rerun
SIDEBAR_ATTACHED = "sidebar.attached"  # tuple of run paths (resolved) this session attached
TRAINING_LAST_STATE = "training.phase"  # (live, has snapshot) at the last full run
SLIDERS_Z = "sliders.z"  # the current latent point, list[float] (D,)
SLIDERS_RUN = "sliders.run"  # which run (and D) SLIDERS_Z belongs to
SLIDERS_FROZEN = "sliders.frozen"  # (run path, version, model) pinned by "freeze weights"
SLIDERS_FREEZE = "sliders.freeze"  # the toggle's widget key
SLIDERS_SEED = "sliders.seed"  # seed of the last "random" draw
SLIDERS_ORDER = "sliders.order"  # the dimensions in display order (KL order at the last sort)
SLIDERS_RESORT = "sliders.resort"  # set by a full script run: sort by KL again
SLIDERS_LIVE = "sliders.live"  # toggle: in-browser live-drag sliders vs st.slider grid
SLIDERS_LIVE_WIDGET = "sliders.live_widget"  # the live-drag component's widget key
SCATTER_SELECTED = "scatter.selected"  # dataset index of the selected test image, or None
SCATTER_CHART = "scatter.chart"  # the plotly chart's widget key (selection state)
SCATTER_PROJECTION = "scatter.projection"  # "PCA" or "t-SNE" (segmented control)
INTERP_PATH = "interpolation.path"  # last path: {"run": run path, "path": (steps, D) list}
SAMPLES_SEED = "samples.seed"

_DEFAULTS = {
    SIDEBAR_NOTICE: None,
    TRAINING_LAST_STATE: None,
    SLIDERS_Z: None,
    SLIDERS_RUN: None,
    SLIDERS_FROZEN: None,
    SLIDERS_SEED: 0,
    SCATTER_SELECTED: None,
    INTERP_PATH: None,
    SAMPLES_SEED: 0,
}


def init() -> None:
    """Set defaults once per session (called at the top of app.py)."""
    for key, value in _DEFAULTS.items():
        st.session_state.setdefault(key, value)


def slider_key(dim: int) -> str:
    """Widget key of the slider for latent dimension `dim`."""
    return f"sliders.dim.{dim}"


# -- the open run (in the URL) --
def open_run_ref() -> str:
    return st.query_params.get(RUN_PARAM, "")


def set_open_run_ref(ref: str) -> None:
    if ref:
        st.query_params[RUN_PARAM] = ref
    else:
        st.query_params.pop(RUN_PARAM, None)


def attached_runs() -> tuple[str, ...]:
    """Run paths this browser session attached: beyond the root, only these open."""
    return st.session_state.get(SIDEBAR_ATTACHED, ())


def add_attached_run(path: str) -> None:
    # A new tuple each time: nothing mutable is shared between sessions.
    st.session_state[SIDEBAR_ATTACHED] = (*attached_runs(), path)


# -- the latent point shared by sliders, scatter and interpolation --
def latent_z(run_key: str, latent_dim: int) -> list[float]:
    """The current point for this run; zeros when the run (or its size) changed."""
    if st.session_state.get(SLIDERS_RUN) != (run_key, latent_dim):
        set_latent_z(run_key, [0.0] * latent_dim)
    return list(st.session_state[SLIDERS_Z])


def set_latent_z(run_key: str, z: Sequence[float]) -> None:
    """Move the point and the slider widgets with it.

    Call from widget callbacks or before the sliders are drawn: Streamlit forbids writing
    a widget's key after the widget exists in the same run.
    """
    z = [float(v) for v in z]
    st.session_state[SLIDERS_Z] = z
    st.session_state[SLIDERS_RUN] = (run_key, len(z))
    for dim, value in enumerate(z):
        st.session_state[slider_key(dim)] = max(-3.0, min(3.0, round(value, 2)))


def selected_index() -> int | None:
    return st.session_state.get(SCATTER_SELECTED)


def set_selected_index(index: int | None) -> None:
    st.session_state[SCATTER_SELECTED] = index
