"""Disentanglement, where ground truth exists (the shapes dataset): the mutual information
gap (MIG, Chen et al. 2018) and the latent-dimension x factor mutual information as a heat
map. Clicking a cell opens that dimension in the sliders (its traversal grid).

Measured on demand, on a fixed subsample, and cached per snapshot version.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import streamlit as st

from explorer import access, cache, charts, state
from explorer.panels import explain, latent_points, waiting
from vae_core import health
from vae_core.metrics import MIGResult
from vae_core.rundir import RunDir

WHAT = """
Each cell is the mutual information I(z_d; v_k) in nats between one latent dimension's
posterior mean (binned into 20 equal-width bins) and one ground-truth factor of the shapes
dataset (shape, scale, rotation, x, y), over the first test images.

**MIG** averages over the factors the gap between the two dimensions that know most about
it, divided by the factor's entropy: (I(z_j1; v_k) − I(z_j2; v_k)) / H(v_k). It is near 1 when
each factor is captured by one dimension alone, near 0 when factors are spread over several
dimensions, or not captured at all. Each row label gives that factor's gap.

Click a cell to open its dimension in the *Latent sliders* view, with a traversal along it.
"""


def render(run: RunDir) -> None:
    """The MIG readout and MI heat map, computed when asked for; a note without factors."""
    explain.what_am_i_looking_at(WHAT, "Disentanglement")
    if not waiting.until_snapshot(run, "Disentanglement metrics"):
        return
    run_path = str(run.path)
    info = cache.test_data(run_path).info
    if not info.factor_names:
        st.caption(
            f"Disentanglement needs ground-truth factors; only the Shapes dataset has them "
            f"(this run uses {access.plain(info.name)})."
        )
        return
    version = run.snapshot_version()
    requested = _requested_version(run_path)
    label = "Compute MIG" if requested is None else f"Recompute for snapshot v{version}"
    if requested != version:
        st.button(
            label,
            on_click=_request,
            args=(run_path, version),
            type="primary",
            help=f"encodes the first {cache.DISENTANGLEMENT_IMAGES} test images (seconds)",
        )
    if requested is None:
        st.caption("MIG and the mutual information matrix are measured when you ask.")
        return
    _draw(run_path, requested, cache.disentanglement(run_path, requested))


def _requested_version(run_path: str) -> int | None:
    request = st.session_state.get(state.DISENT_REQUEST)
    return request[1] if request and request[0] == run_path else None


def _request(run_path: str, version: int) -> None:
    st.session_state[state.DISENT_REQUEST] = (run_path, version)


def _draw(run_path: str, version: int, result: MIGResult) -> None:
    """MIG, per-factor gaps and the clickable heat map (factors x dims)."""
    mi = result.mutual_information.T  # (K, D): rows are factors
    cols = st.columns(len(result.per_factor) + 1)
    cols[0].metric("MIG", f"{result.mig:.3f}")
    for col, (name, gap) in zip(cols[1:], result.per_factor.items(), strict=True):
        col.metric(f"gap: {name}", f"{gap:.3f}")
    focus = st.session_state.get(state.SLIDERS_FOCUS_DIM)
    focus_dim = focus[1] if focus and focus[0] == run_path else None
    threshold = st.session_state.get(state.TRAINING_ACTIVE_THRESHOLD, health.ACTIVE_KL_NATS)
    inactive = inactive_dims(cache.test_kl_per_dim(run_path, version), threshold)
    fig = charts.mi_heatmap(
        mi, _factor_names(run_path), result.per_factor, focus_dim, inactive=inactive
    )
    st.caption(
        f"I(z_d; v_k) in nats, snapshot v{version}, first {cache.DISENTANGLEMENT_IMAGES} "
        "test images; click a cell to open that dimension in the sliders."
    )
    if inactive:
        st.caption(bias_note(mi, inactive, threshold))
    st.plotly_chart(
        fig,
        key=state.DISENT_CHART,
        on_select=partial(_on_cell, run_path),
        selection_mode="points",
        width="stretch",
        theme=None,  # the colours charts.mi_heatmap sets, not the Streamlit theme's
    )
    _open_dim_picker(run_path, mi)


def inactive_dims(kl_per_dim: np.ndarray, threshold: float) -> list[int]:
    """The latent dims whose mean KL is below `threshold` nats: they carry nothing."""
    return np.flatnonzero(np.asarray(kl_per_dim) < threshold).tolist()


def bias_note(mi: np.ndarray, inactive: list[int], threshold: float) -> str:
    """Why the grey columns are not zero: the binned estimator's bias, in numbers."""
    dims = ", ".join(f"z{d}" for d in inactive)
    most = float(mi[:, inactive].max())
    return (
        f"Grey: inactive dimensions ({dims}: KL below {threshold:g} nats, the Training "
        f"view's threshold). They carry no information about the images, so their MI (up "
        f"to {most:.2f} nats here) is the bias of the binned estimator on "
        f"{cache.DISENTANGLEMENT_IMAGES} images, not information about a factor."
    )


def _factor_names(run_path: str) -> list[str]:
    return list(cache.test_data(run_path).info.factor_names)


def _open_dim_picker(run_path: str, mi: np.ndarray) -> None:
    """The same action as a click, for the keyboard: dims by their largest MI first."""
    order = np.argsort(-mi.max(axis=0), kind="stable").tolist()  # (D,)
    col_pick, col_go, _ = st.columns([1, 1, 3], vertical_alignment="bottom")
    dim = col_pick.selectbox(
        "Dimension",
        order,
        format_func=lambda d: f"z{d} (max I = {mi[:, d].max():.2f} nats)",
        key=state.DISENT_DIM,
    )
    col_go.button("Open in sliders", on_click=open_dimension, args=(run_path, int(dim)))


def _on_cell(run_path: str) -> None:
    chart = st.session_state.get(state.DISENT_CHART)
    dim = latent_points.selected_dataset_index(chart.get("selection", {}) if chart else {})
    if dim is not None:
        open_dimension(run_path, dim)


def open_dimension(run_path: str, dim: int) -> None:
    """Switch to the sliders with a traversal along `dim` (runs as a widget callback, before
    the sliders view draws its widgets, so their keys may still be set)."""
    st.session_state[state.SLIDERS_FOCUS_DIM] = (run_path, dim)
    st.session_state[state.SLIDERS_TRAVERSAL] = True
    st.session_state[state.SLIDERS_TRAVERSAL_DIMS] = [dim]
    state.open_view("Latent sliders")
