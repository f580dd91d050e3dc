"""Interpolate between two latent codes (test images, the scatter selection or prior
samples) with lerp or slerp: the decoded strip, the path on the scatter, GIF and PNG.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from explorer import cache, charts, images, state
from explorer.panels import explain, latent_points, waiting
from vae_core import latent
from vae_core.rundir import RunDir

SOURCES = ("Test image", "Selected point", "Prior sample", state.OWN_SOURCE)
BACKGROUND_POINTS = 2000  # the path's context on the small scatter
FRAME_PX = 96
WHAT = """
A path of latent points from z_A to z_B: **lerp** is the straight line; **slerp** follows the
great circle, keeping the norm ‖z‖ where prior samples live (in D dimensions they lie near a
sphere of radius √D, so the straight line's middle is atypically close to 0). Each frame is the
decoder's output at one point (Bernoulli probabilities, Gaussian means for colour data). A test
image's endpoint (and your own image's, from *Inspect image*) is its posterior mean μ(x); the
path is drawn on the scatter's projection.
"""


def render(run: RunDir) -> None:
    """Endpoints and settings, then the strip, the path and the downloads."""
    explain.what_am_i_looking_at(WHAT, "Interpolation")
    if not waiting.until_snapshot(run, "Interpolations"):
        return
    version = run.snapshot_version()
    run_path = str(run.path)
    codes, projection = cache.encoded(run_path, version)
    net = cache.model(run_path, version)
    col_a, col_b, col_settings = st.columns(3)
    with col_a:
        z0 = _endpoint("A", codes, net.config.latent_dim, 0, (run_path, version))
    with col_b:
        z1 = _endpoint("B", codes, net.config.latent_dim, 1, (run_path, version))
    with col_settings:
        steps = st.slider("Steps", 3, 16, 8, key=state.INTERP_STEPS)
        method = st.radio("Method", ("lerp", "slerp"), horizontal=True, key=state.INTERP_METHOD)
    if z0 is None or z1 is None:
        st.info(
            "Select a point on the scatter first (or upload / draw your image under "
            "*Inspect image*), or pick another source."
        )
        return
    path = latent.interpolate(z0, z1, steps, method)  # (steps, D)
    st.session_state[state.INTERP_PATH] = {"run": run_path, "path": path.tolist()}
    class_names = cache.test_data(run_path).info.class_names
    _draw(latent.decode_latents(net, path), path, codes, projection, class_names)


def _endpoint(
    name: str, codes: latent.EncodedSet, D: int, default_index: int, snapshot: tuple[str, int]
) -> np.ndarray | None:
    """One endpoint's code, from the chosen source; snapshot = (run path, version)."""
    source = st.radio(f"Endpoint {name}", SOURCES, key=state.sub_key(state.INTERP_SOURCE, name))
    if source == state.OWN_SOURCE:
        z = latent_points.own_code(*snapshot)
        st.caption("none uploaded or drawn yet" if z is None else "its posterior mean μ")
        return z
    if source == "Test image":
        index = st.number_input(
            "Test image index",
            0,
            len(codes) - 1,
            default_index,
            key=state.sub_key(state.INTERP_INDEX, name),
        )
        return codes.mu[int(index)]
    if source == "Selected point":
        selected = state.selected_index()
        st.caption("none selected" if selected is None else f"test image #{selected}")
        if selected is None:
            return None
        return codes.mu[int(np.flatnonzero(codes.indices == selected)[0])]
    seed = st.number_input(
        "Prior seed", 0, 10_000, default_index, key=state.sub_key(state.INTERP_SEED, name)
    )
    return latent.sample_prior(1, D, 1.0, int(seed))[0]


def _draw(
    frames: np.ndarray,
    path: np.ndarray,
    codes: latent.EncodedSet,
    projection: latent.Projection,
    class_names: tuple[str, ...],
) -> None:
    """The strip, the downloads and the path drawn over part of the scatter."""
    strip = latent.image_grid(frames, nrow=len(frames))
    png = images.png_bytes(strip, target_px=FRAME_PX * len(frames))
    st.image(png, caption="A → B", width="stretch", output_format="PNG")
    col_png, col_gif, _ = st.columns([1, 1, 3])
    col_png.download_button(
        "Download PNG",
        png,
        "interpolation.png",
        "image/png",
        on_click="ignore",
    )
    col_gif.download_button(
        "Download GIF",
        images.gif_bytes(list(frames), target_px=FRAME_PX * 2),
        "interpolation.gif",
        "image/gif",
        on_click="ignore",
    )
    n = min(BACKGROUND_POINTS, len(codes))
    fig = charts.scatter_figure(
        projection.coords[:n],
        codes.labels[:n],
        codes.indices[:n],
        class_names,
        path=projection.transform(path),
        axis_titles=latent_points.axis_titles(projection),
        height=380,
    )
    st.plotly_chart(fig, key=state.INTERP_SCATTER, width="stretch")
