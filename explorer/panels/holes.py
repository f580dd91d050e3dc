"""Where the data lives: the prior-hole map behind the scatter and the on/off-manifold badge.

The maths is vae_core.aggregate's; this module only draws it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from explorer import cache, charts, state

HELP = """
**Prior-hole map.** Colour = log q(z) − log p(z) in the plotted plane: q is the aggregate
posterior, the mixture (1/N) Σᵢ N(μᵢ, σᵢ²) of the encoded test images' posteriors, and p the
prior N(0, I). Blue: the data's codes live there. Red: the prior expects codes there but no
image is encoded there, a *prior hole*; prior samples from a hole decode to images unlike
the data.

Approximation in the PCA plane: each posterior is projected onto the two PCA axes W, giving
mean W(μᵢ − m), and only the diagonal of its projected covariance W diag(σᵢ²) Wᵀ is kept; the
prior projects to N(−Wm, WWᵀ). For a 2-D latent the plane is z itself and nothing is
approximated. Either way it is the density *of the projection*: the other dimensions are
integrated out, so a point in a blue region can still be off the data in those dimensions.

**On / off manifold** (the badge) uses all D dimensions: log q(z) at the slider point against
the 1st percentile of log q at samples of q itself (99 % of q's mass lies above it).
"""


def available(method: str, latent_dim: int) -> bool:
    """The map needs a linear plane: the codes themselves (D = 2) or PCA."""
    return method == "pca" or (method == "identity" and latent_dim == 2)


def toggle(method: str, latent_dim: int) -> bool:
    """The "Prior-hole map" switch (disabled for t-SNE and a 1-D latent) and its help."""
    col_toggle, col_help = st.columns([3, 1])
    on = col_toggle.toggle(
        "Prior-hole map",
        key=state.SCATTER_HOLES,
        disabled=not available(method, latent_dim),
        help="shade the plane by log q_agg(z) − log p(z): red where the prior expects codes "
        "and the data has none (needs the codes themselves or PCA, not t-SNE)",
    )
    with col_help.popover("How it is computed", icon=":material/functions:"):
        st.markdown(HELP)
    return on and available(method, latent_dim)


def shade(fig: go.Figure, run_path: str, version: int) -> go.Figure:
    """`fig` with the hole map of this snapshot's encoded test set behind its points."""
    holes = cache.hole_map(run_path, version)
    if holes is None:
        return fig
    return charts.with_hole_map(fig, holes.xs, holes.ys, holes.log_ratio)


def manifold_badge(run_path: str, version: int, z: Sequence[float] | None) -> None:
    """A badge: is the slider point where the data's codes go?"""
    if z is None:
        return
    if cache.on_manifold(run_path, version, np.asarray(z, dtype=np.float64)):
        st.badge("on-manifold", icon=":material/check_circle:", color="blue")
    else:
        st.badge(
            "off-manifold: no test image encodes near here",
            icon=":material/warning:",
            color="red",
        )


def slider_point_badge(run_path: str, version: int) -> None:
    """The badge for the sliders' current point, if it belongs to this run."""
    z = st.session_state.get(state.SLIDERS_Z)
    if z is not None and st.session_state.get(state.SLIDERS_RUN) == (run_path, len(z)):
        st.caption("Slider point ★")
        manifold_badge(run_path, version, z)
