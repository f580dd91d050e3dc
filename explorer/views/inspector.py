"""One image, inspected: a test image (by index, at random, or clicked on the scatter) or
your own (uploaded or drawn): input, reconstruction, error map, ELBO terms at z = mu, the
posterior per dimension; for your own image also posterior samples and where it lands.

Everything is computed with the posterior mean, so reruns show the same numbers; the maths
is in vae_core.inspect_image and the preprocessing in vae_core.user_image.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from explorer import access, cache, charts, components, images, state
from explorer.panels import explain, latent_points, waiting
from vae_core import health, user_image
from vae_core.inspect_image import Inspection, collapsed_dims
from vae_core.rundir import RunDir

MODES = ("A test image", "Your own image")
IMAGE_PX = 168
SAMPLE_PX = 72
SAMPLES_K = (4, 32, 8)  # posterior samples: min, max, default
BACKGROUND_POINTS = 2000  # test images drawn behind your own image's point
WHAT = """
**Input, reconstruction, error.** The reconstruction is the decoder's mean at z = μ(x)
(Bernoulli probabilities, Gaussian means); the heat map is |x − x̂| per pixel.

**ELBO, reconstruction, KL** are in nats for this one image. KL(q(z|x) ‖ p(z)) is exact
(Gaussian, summed over dimensions). The reconstruction term −log p(x|z) is evaluated at
z = μ only: a deterministic single-point estimate of E_q[−log p(x|z)], where training draws
one random z per image. So the ELBO here does not flicker between reruns, and it is usually
a little higher than the training curves' one-sample average.

**The table** gives each dimension's μ, σ and KL for this image. A dimension is marked
*collapsed* when its KL averaged over the test images is below the active threshold: its
posterior equals the prior for every image, and the decoder ignores it.

**Your own image** is converted to the run's size and channels; the preview is exactly what
the encoder sees. The samples decode K draws z ~ q(z|x); their pixel-wise standard deviation
shows what the posterior's uncertainty does to the picture. On the scatter the cross is μ
and the dotted ellipse the 1-σ contour of q(z|x), through the same projection.
"""


def render(run: RunDir) -> None:
    """A test image or the user's own, chosen by a segmented control."""
    explain.what_am_i_looking_at(WHAT, "Inspect image")
    if not waiting.until_snapshot(run, "Image inspection"):
        return
    version = run.snapshot_version()
    mode = st.segmented_control(
        "Inspect",
        MODES,
        default=MODES[0],
        required=True,
        key=state.INSPECT_MODE,
        label_visibility="collapsed",
    )
    if mode == MODES[0]:
        _test_image(str(run.path), version)
    else:
        _own_image(str(run.path), version)


# --- a test image ----------------------------------------------------------------------


def _test_image(run_path: str, version: int) -> None:
    data = cache.test_data(run_path)
    index = _pick_index(len(data))
    label = int(data.labels[index])
    names = data.info.class_names
    name = names[label] if label < len(names) else str(label)
    result = cache.inspection(run_path, version, data.images[index].numpy())
    st.markdown(f"**Test image #{index}** ({access.plain(name)}), snapshot v{version}")
    _draw_inspection(run_path, version, result)
    cols = st.columns([1, 1, 3])
    cols[0].button(
        "Open in sliders",
        on_click=_open_in_sliders,
        args=(run_path, result.mu),
        help="set the sliders to this image's μ",
        width="stretch",
    )
    cols[1].button(
        "Show on scatter",
        on_click=state.open_view,
        args=("Scatter",),
        help="the ringed point",
        width="stretch",
    )


def _pick_index(n: int) -> int:
    """The inspected test image: the scatter's selection, which the index input and the
    Random button set too, so one image is inspected, highlighted and selected everywhere."""
    selected = state.selected_index()
    index = 0 if selected is None or not 0 <= selected < n else int(selected)
    if selected != index:
        state.set_selected_index(index)
    if st.session_state.get(state.INSPECT_INDEX) != index:
        st.session_state[state.INSPECT_INDEX] = index  # before the widget: allowed
    col_index, col_random, _ = st.columns([1, 1, 3], vertical_alignment="bottom")
    col_index.number_input(
        f"Test image (0–{n - 1})",
        min_value=0,
        max_value=n - 1,
        step=1,
        key=state.INSPECT_INDEX,
        on_change=_index_changed,
        help="or click a point on the scatter",
    )
    col_random.button("Random test image", on_click=_random_index, args=(n,), width="stretch")
    return index


def _index_changed() -> None:
    state.set_selected_index(int(st.session_state[state.INSPECT_INDEX]))


def _random_index(n: int) -> None:
    seed = st.session_state.get(state.INSPECT_SEED, 0) + 1
    st.session_state[state.INSPECT_SEED] = seed
    state.set_selected_index(int(np.random.default_rng(seed).integers(n)))


def _open_in_sliders(run_path: str, mu: np.ndarray) -> None:
    state.set_latent_z(run_path, mu)
    state.open_view("Latent sliders")


def _draw_inspection(run_path: str, version: int, result: Inspection) -> None:
    """Input, reconstruction and error map; ELBO terms; the per-dimension table."""
    col_in, col_out, col_err = st.columns(3)
    col_in.image(
        images.png_bytes(result.input, IMAGE_PX),
        caption="input (what the encoder sees)",
        output_format="PNG",
        width=IMAGE_PX,
    )
    col_out.image(
        images.png_bytes(result.reconstruction, IMAGE_PX),
        caption="reconstruction at z = μ",
        output_format="PNG",
        width=IMAGE_PX,
    )
    with col_err:
        fig = charts.pixel_heatmap(result.abs_error, "|x − x̂| per pixel", zmax=1.0, height=220)
        st.plotly_chart(
            fig, key=state.INSPECT_ERROR_CHART, width="stretch", theme=None
        )  # exact colours
    cols = st.columns(3)
    cols[0].metric("ELBO (nats)", f"{result.elbo:.2f}")
    cols[1].metric("Reconstruction −log p(x|z=μ)", f"{result.recon:.2f}")
    cols[2].metric("KL(q(z|x) ‖ p(z))", f"{result.kl:.2f}")
    st.caption(
        "Computed with z = μ for the reconstruction term (a deterministic single-point "
        "estimate, not a Monte Carlo average), so it stays the same on every rerun."
    )
    _dimension_table(run_path, version, result)


def _dimension_table(run_path: str, version: int, result: Inspection) -> None:
    threshold = float(
        st.session_state.get(state.TRAINING_ACTIVE_THRESHOLD) or health.ACTIVE_KL_NATS
    )
    mean_kl = cache.test_kl_per_dim(run_path, version)  # (D,)
    collapsed = collapsed_dims(mean_kl, threshold)
    st.dataframe(
        {
            "dim": [f"z{d}" for d in range(len(result.mu))],
            "μ": result.mu,
            "σ": result.sigma,
            "KL, this image (nats)": result.kl_per_dim,
            "KL, test mean (nats)": mean_kl,
            "collapsed": collapsed,
        },
        hide_index=True,
        width="stretch",
        column_config={
            "collapsed": st.column_config.CheckboxColumn(
                help=f"KL averaged over the test images ≤ {threshold:g} nats"
            )
        },
    )
    st.caption(
        f"{int(collapsed.sum())} of {len(collapsed)} dimensions collapsed "
        f"(test-mean KL ≤ {threshold:g} nats, the training view's active threshold)."
    )


# --- your own image --------------------------------------------------------------------


def take_image(run_path: str, image_shape: tuple[int, int, int], data: bytes, source: str) -> bool:
    """Preprocess bytes into the user's image for this run; on refusal keep only the message."""
    try:
        taken = user_image.preprocess(data, image_shape)
    except user_image.UserImageError as err:
        state.refuse_own_image(f"{'Upload' if source == 'upload' else 'Drawing'} refused: {err}")
        return False
    if user_image.background_is_dark(taken.pixels) == cache.dark_background(run_path):
        state.set_own_image(run_path, taken.pixels, taken.notes, source)
    else:  # e.g. a pen drawing (dark on white) for MNIST (white on black): invert by default
        pixels = user_image.inverted(taken.pixels)
        state.set_own_image(run_path, pixels, taken.notes, source, taken.pixels, inverted=True)
    return True


def _own_image(run_path: str, version: int) -> None:
    net = cache.model(run_path, version)
    shape = tuple(net.config.image_shape)
    col_upload, col_draw = st.columns(2)
    with col_upload:
        _upload(run_path, shape)
    with col_draw:
        _drawing(run_path, shape)
    error = st.session_state.get(state.OWN_IMAGE_ERROR)
    if error:
        st.error(access.plain(error), icon=":material/block:")
        return
    own = state.own_image(run_path, shape)
    if own is None:
        st.info("Upload a PNG or JPEG, or draw on the pad, to see where your image lands.")
        return
    _draw_own(run_path, version, own)


def _upload(run_path: str, shape: tuple[int, int, int]) -> None:
    C, H, W = shape
    uploaded = st.file_uploader(
        "Upload a PNG or JPEG",
        type=["png", "jpg", "jpeg"],
        key=state.OWN_UPLOAD,
        help=f"converted to the run's {W}×{H}, {C} channel(s); "
        f"at most {user_image.MAX_UPLOAD_BYTES // 1024**2} MiB",
    )
    if uploaded is None:
        st.session_state[state.OWN_UPLOAD_SEEN] = None
    elif uploaded.file_id != st.session_state.get(state.OWN_UPLOAD_SEEN):
        st.session_state[state.OWN_UPLOAD_SEEN] = uploaded.file_id  # take each upload once
        take_image(run_path, shape, uploaded.getvalue(), "upload")


def _drawing(run_path: str, shape: tuple[int, int, int]) -> None:
    if not components.canvas.is_available():
        st.caption("The drawing pad's files are missing from this install; upload instead.")
        return
    st.caption("…or draw (white on black); each finished stroke is encoded")
    changed, url = components.draw_canvas(key=state.OWN_CANVAS)
    if not changed:
        return
    if url is None:  # Clear: forget a drawn image, keep an uploaded one
        own = state.own_image(run_path, shape)
        if own is not None and own["source"] == "drawing":
            st.session_state[state.OWN_IMAGE] = None
        return
    try:
        take_image(run_path, shape, user_image.bytes_from_data_url(url), "drawing")
    except user_image.UserImageError as err:
        state.refuse_own_image(f"Drawing refused: {err}")


def _draw_own(run_path: str, version: int, own: dict) -> None:
    """Preview and inspection, where it lands on the scatter, then posterior samples."""
    pixels = own["pixels"]  # (C, H, W) uint8
    result = cache.inspection(run_path, version, pixels)
    st.markdown(f"**Your {own['source']}**, snapshot v{version}")
    for note in own["notes"]:
        st.caption(f"ℹ️ {note}")
    if own.get("as_taken") is not None:
        _invert_choice(run_path, own)
    _links(run_path, result.mu)
    _draw_inspection(run_path, version, result)
    _own_scatter(run_path, version, result)
    _posterior_samples(run_path, version, pixels)


def _invert_choice(run_path: str, own: dict) -> None:
    """The image's background is the data's opposite: say so, and let Invert be undone."""
    data = "light on dark" if cache.dark_background(run_path) else "dark on light"
    image = "dark on light" if data == "light on dark" else "light on dark"
    st.toggle(
        "Invert",
        key=state.OWN_INVERT,
        on_change=_apply_invert,
        help="swap black and white before encoding",
    )
    done = "inverted it before encoding" if own["inverted"] else "it is encoded as it is"
    st.caption(f"ℹ️ Your image is {image}; this run's images are {data}: {done}.")


def _apply_invert() -> None:
    own = st.session_state[state.OWN_IMAGE]
    on = bool(st.session_state[state.OWN_INVERT])
    own["pixels"] = user_image.inverted(own["as_taken"]) if on else own["as_taken"]
    own["inverted"] = on


def _posterior_samples(run_path: str, version: int, pixels: np.ndarray) -> None:
    """K decodes of z ~ q(z|x) and their pixel-wise standard deviation."""
    col_samples, col_std = st.columns([3, 2])
    with col_samples:
        k = st.slider("Posterior samples K", *SAMPLES_K, key=state.INSPECT_SAMPLES_K)
        seed = st.session_state.get(state.OWN_SAMPLES_SEED, 0)
        samples = cache.posterior_samples(run_path, version, pixels, k, seed)
        st.caption(f"{k} decodes of z ~ q(z|x) (seed {seed})")
        # A list of small images, not latent.image_grid: that would import torchvision
        # (seconds) on the first upload.
        st.image([images.png_bytes(image, SAMPLE_PX) for image in samples.images], width=SAMPLE_PX)
        st.button("Resample", on_click=_next_seed)
    with col_std:
        fig = charts.pixel_heatmap(samples.std, f"pixel std over {k} samples", height=260)
        st.plotly_chart(fig, key=state.INSPECT_STD_CHART, width="stretch", theme=None)


def _links(run_path: str, mu: np.ndarray) -> None:
    cols = st.columns([1, 1, 3])
    cols[0].button(
        "Open in sliders",
        on_click=_open_in_sliders,
        args=(run_path, mu),
        help="start the sliders at your image's μ",
        key=state.INSPECT_OWN_SLIDERS,
        width="stretch",
    )
    cols[1].button(
        "Interpolate from it",
        on_click=_interpolate_from_own,
        help="endpoint A = your image",
        width="stretch",
    )


def _interpolate_from_own() -> None:
    st.session_state[state.sub_key(state.INTERP_SOURCE, "A")] = state.OWN_SOURCE
    state.open_view("Interpolation")


def _next_seed() -> None:
    st.session_state[state.OWN_SAMPLES_SEED] = st.session_state.get(state.OWN_SAMPLES_SEED, 0) + 1


def _own_scatter(run_path: str, version: int, result: Inspection) -> None:
    """Your image's μ and 1-σ ellipse over the first test images, in the scatter's view."""

    codes, projection = cache.encoded(run_path, version)
    n = min(BACKGROUND_POINTS, len(codes))
    fig = charts.scatter_figure(
        projection.coords[:n],
        codes.labels[:n],
        codes.indices[:n],
        cache.test_data(run_path).info.class_names,
        axis_titles=latent_points.axis_titles(projection),
        height=420,
    )
    point, ellipse = latent_points.own_position(projection, result)
    charts.add_own_image(fig, point, ellipse)
    st.plotly_chart(fig, key=state.INSPECT_SCATTER, width="stretch")
