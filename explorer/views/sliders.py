"""Latent sliders: one st.slider per dimension, ordered by KL, and the image they decode to.

All of it sits in one fragment so a slider step reruns only this part: the cached model,
one small decode, one PNG; no charts. By default the live-drag component draws sliders and
image and decodes in the browser while a thumb moves (st.slider reports only on release);
`slider_grid` is the server-side fallback behind the same z-in / z-out boundary.
Above every track a small histogram shows the aggregate posterior q(z_d) of the encoded
test set against the N(0, 1) prior; attribute-vector sliders follow the per-dimension ones.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from explorer import access, cache, charts, guard, images, reproduce, state
from explorer.components import live_sliders
from explorer.panels import attributes, explain, holes, latent_points, waiting
from vae_core import latent
from vae_core.export import OnnxDecoder
from vae_core.models import LatentVariableModel
from vae_core.rundir import RunDir

LIMIT = 3.0  # slider range [-LIMIT, LIMIT], in prior standard deviations
TOP_DIMS = 16  # shown in the grid; the rest go in an expander
GRID_COLUMNS = 4
TRAVERSAL_VALUES = 7
IMAGE_PX = 256
SPATIAL_DIRECTIONS = 8  # principal-direction sliders for a spatial latent
RANGE_PRESETS = {"Prior ±3σ": "prior", "Data 1–99 %": "data"}  # label -> aggregate preset
WHAT = """
Each slider sets one coordinate of the latent point z, in units of the prior's standard
deviation: the prior is N(0, I), so ±3 covers 99.7 % of it in each dimension. The image is the
decoder's output at z: Bernoulli probabilities (Gaussian means for colour data), not a sample.
Sliders are sorted by each dimension's KL(q(z_d|x) ‖ p(z_d)), in nats, averaged over the images
of the last logged step. An *inactive* dimension (KL ≈ 0) carries no information: the decoder
ignores it, and moving it changes nothing.

Above each slider: the bars are the aggregate posterior q(z_d), the density of z_d over the
encoded test images' posteriors (exact: a mixture of their Gaussians, binned), the line is the
prior N(0, 1). Where the line rises above the bars the prior expects codes the data never has.
"Data 1–99 %" sets each slider's range to where q(z_d) puts 98 % of its mass. The badge says
whether the whole point z is where the data's codes go (see the Scatter's prior-hole map).
"""


@dataclass(frozen=True)
class Tracks:
    """What the slider tracks show: per-dim ranges and histograms ({"ranges", "q", "p"}
    lists, one row per latent dim, or None for plain ±LIMIT sliders) and the attribute
    sliders (name, unit direction, range, q, p) drawn after the per-dim ones."""

    histograms: dict[str, list] | None = None
    attributes: tuple[dict, ...] = ()


def render(run: RunDir) -> None:
    """The slider panel for `run` (waits for the first snapshot)."""
    explain.what_am_i_looking_at(WHAT, "Latent sliders")
    if waiting.until_snapshot(run, "The sliders"):
        st.session_state[state.SLIDERS_RESORT] = True  # a full run, not a slider step
        _panel(str(run.path))
        attributes.render(str(run.path), run.snapshot_version())


def decode_model(run: RunDir) -> tuple[LatentVariableModel, int]:
    """The model to decode with: the newest snapshot, or the frozen one if the toggle is on.

    Freezing pins the model object itself in the session: the caches may evict it and the
    folder only keeps the newest snapshot, so a version number alone would silently load
    newer weights.
    """
    frozen = st.session_state.get(state.SLIDERS_FROZEN)
    if st.session_state.get(state.SLIDERS_FREEZE):
        if frozen is None or frozen[0] != str(run.path):
            version = run.snapshot_version()
            frozen = (str(run.path), version, cache.model(str(run.path), version))
            st.session_state[state.SLIDERS_FROZEN] = frozen
        return frozen[2], frozen[1]
    st.session_state[state.SLIDERS_FROZEN] = None
    version = run.snapshot_version()
    return cache.model(str(run.path), version), version


@st.fragment
@guard.shows_run_errors
def _panel(run_path: str) -> None:
    run = RunDir(run_path)
    net, version = decode_model(run)
    spatial = net.config.card is not None and net.config.card.spatial
    if spatial:
        z, order = _spatial_sliders(run_path, net, version), []
    else:
        z, order = _dimension_sliders(run_path, net, version)
    state.follow_latent_z(z)
    holes.manifold_badge(run_path, version, z)
    st.toggle("Freeze weights", key=state.SLIDERS_FREEZE, help="keep decoding with this snapshot")
    _copy_state(run_path, net, version, z, order)
    if not spatial and st.toggle("Traversal grid", key=state.SLIDERS_TRAVERSAL):
        _traversal(net, z, order)


def _dimension_sliders(
    run_path: str, net: LatentVariableModel, version: int
) -> tuple[list[float], list[int]]:
    """One slider per latent dimension, strongest first: (z, display order)."""
    D = net.config.latent_dim
    z = state.latent_z(run_path, D)
    latest_kl = cache.metrics_log(run_path).refresh().latest_kl_per_dim
    kl = list(latest_kl) if latest_kl is not None and len(latest_kl) == D else [0.0] * D
    _buttons(run_path, D)
    tracks, problems = _tracks(run_path, version, D)
    order = _focused_first(run_path, display_order(kl))
    payload = _browser_decoder(run_path, version, net)
    if payload is not None:
        z = _live_sliders(run_path, payload, z, kl, order, tracks)
    else:
        z = _server_sliders(run_path, net, version, z, kl, order, tracks)
    attributes.show_problems(problems)
    return z, order


def _spatial_sliders(run_path: str, net: LatentVariableModel, version: int) -> list[float]:
    """A spatial latent (C, H, W): sliders along the top principal directions of the encoded
    test set's means (in their standard deviations), and one offset per channel."""
    assert net.config.card is not None
    shape = net.config.card.latent_shape
    axes = cache.principal_axes(run_path, version, SPATIAL_DIRECTIONS)
    col_sliders, col_image = st.columns([3, 2], gap="large")
    with col_sliders:
        st.caption(
            f"A {'×'.join(map(str, shape))} latent: the sliders start at the mean code of the "
            "test set and move along its principal directions (±3 standard deviations); "
            "a channel offset adds the same value at every position of that channel."
        )
        along = [
            st.slider(
                f"direction {i + 1} · {share:.1%} of the variance",
                -LIMIT,
                LIMIT,
                0.0,
                0.1,
                key=state.spatial_slider_key("direction", i),
            )
            for i, share in enumerate(axes.share)
            if share > 0
        ]
        offsets = [
            st.slider(
                f"channel {c} offset",
                -LIMIT,
                LIMIT,
                0.0,
                0.1,
                key=state.spatial_slider_key("channel", c),
            )
            for c in range(shape[0])
        ]
    z = latent.spatial_point(axes, along, offsets, shape)
    with col_image:
        _server_image(net, z, version)
    return z.tolist()


def _copy_state(
    run_path: str, net: LatentVariableModel, version: int, z: list[float], order: list[int]
) -> None:
    """A URL, a JSON, a Python snippet and z.npy that reproduce this decoded image."""
    view = reproduce.ViewState(
        run_ref=state.open_run_ref() or run_path,
        run_dir=str(Path(run_path).resolve()),
        snapshot_version=version,
        frozen=bool(st.session_state.get(state.SLIDERS_FREEZE)),
        z=tuple(z),
        slider_order=tuple(order),
        projection=st.session_state.get(state.SCATTER_PROJECTION) or "PCA",
        seed=st.session_state[state.SLIDERS_SEED],
    )
    with st.expander("Copy state"):
        image = latent.decode_latents(net, view.z32)[0]  # (H, W, C): the server-side decode
        st.code(reproduce.url(st.context.url, view), language=None)
        st.code(reproduce.state_json(view, image), language="json")
        st.code(reproduce.python_snippet(view), language="python")
        st.download_button(
            "Download z.npy",
            reproduce.z_npy(z),
            "z.npy",
            "application/octet-stream",
            on_click="ignore",
            key=state.SLIDERS_Z_NPY,
        )
        st.caption(
            "The run folder keeps only its newest snapshot: the snippet gives this exact image "
            f"while the folder still holds v{version} (a finished run keeps its last one)."
        )


def _tracks(run_path: str, version: int, D: int) -> tuple[Tracks, list[str]]:
    """The range preset's control, then the cached histograms and attribute sliders."""
    label = st.segmented_control(
        "Slider range",
        list(RANGE_PRESETS),
        default="Prior ±3σ",
        required=True,
        key=state.SLIDERS_RANGE,
        help="the prior's ±3σ, or where the encoded test set's codes lie (1–99 % of q(z_d))",
    )
    preset = RANGE_PRESETS[label]
    histograms = cache.slider_histograms(run_path, version, preset)
    specs, problems = attributes.slider_specs(run_path, version, preset, D)
    return Tracks(histograms, tuple(specs)), problems


def display_order(kl: Sequence[float]) -> list[int]:
    """Dimensions by decreasing KL, sorted again only on a full script run: a slider step
    reruns just the fragment, and a re-sort then would move the sliders (and the keyboard
    focus) out from under the user while training shifts the KL ranking."""
    order = st.session_state.get(state.SLIDERS_ORDER)
    if st.session_state.pop(state.SLIDERS_RESORT, False) or order is None or len(order) != len(kl):
        order = latent.kl_order(kl)
        st.session_state[state.SLIDERS_ORDER] = order
    return list(order)


def _focused_first(run_path: str, order: list[int]) -> list[int]:
    """The dimension picked on the disentanglement heat map leads the sliders."""
    focus = st.session_state.get(state.SLIDERS_FOCUS_DIM)
    if not focus or focus[0] != run_path or focus[1] not in order:
        return order
    return [focus[1], *(d for d in order if d != focus[1])]


def _browser_decoder(run_path: str, version: int, net: LatentVariableModel) -> OnnxDecoder | None:
    """The decoder for in-browser live drag, or None: the toggle is off, the component is
    missing, or this decoder cannot run in the browser (then one line says why)."""
    if not live_sliders.is_available() or not st.toggle(
        "Live drag",
        value=True,
        key=state.SLIDERS_LIVE,
        help="decode in the browser while a slider moves; off: server-side sliders",
    ):
        return None
    decoder = cache.decoder_onnx(run_path, version, net)  # or why it cannot be exported
    blocker = live_sliders.live_sliders_blocker(decoder, key=state.SLIDERS_LIVE_WIDGET)
    if blocker is None and isinstance(decoder, OnnxDecoder):
        return decoder
    st.caption(
        f"Live drag is off for this model: {access.plain(blocker or '')}. "
        "The sliders decode on the server when released."
    )
    return None


def _live_sliders(
    run_path: str,
    payload: OnnxDecoder,
    z: list[float],
    kl: list[float],
    order: list[int],
    tracks: Tracks,
) -> list[float]:
    """Sliders and image in one browser component: the image follows the thumb mid-drag."""
    committed = live_sliders.live_sliders(
        payload,
        z,
        kl,
        order,
        key=state.SLIDERS_LIVE_WIDGET,
        limit=LIMIT,
        image_px=IMAGE_PX,
        top_dims=TOP_DIMS,
        histograms=tracks.histograms,
        attributes=tracks.attributes,
    )
    if committed is None:
        return z
    state.set_latent_z(run_path, committed)  # scatter marker and interpolation follow
    return committed


def _server_sliders(
    run_path: str,
    net: LatentVariableModel,
    version: int,
    z: list[float],
    kl: list[float],
    order: list[int],
    tracks: Tracks,
) -> list[float]:
    """st.slider grid (reports on release) and a server-side decode of the point."""
    col_sliders, col_image = st.columns([3, 2], gap="large")
    with col_sliders:
        z = slider_grid(z, order, latent.active_dims(kl), kl, tracks, run_path)
    with col_image:
        _server_image(net, np.asarray(z), version)
    return z


def _server_image(net: LatentVariableModel, z: np.ndarray, version: int) -> None:
    """Decode z (D,) here and show it, with the time the decode took."""
    t0 = time.perf_counter()
    decoded = latent.decode_latents(net, z)[0]  # (H, W, C) uint8
    ms = 1000 * (time.perf_counter() - t0)
    st.image(
        images.png_bytes(decoded, IMAGE_PX),
        caption=f"decoded on the server in {ms:.0f} ms, snapshot v{version}",
        output_format="PNG",
    )


def _buttons(run_path: str, D: int) -> None:
    """Reset / random / from-selection; callbacks run before the sliders are drawn."""
    cols = st.columns(3)
    cols[0].button("Reset to zero", on_click=_reset, args=(run_path, D), width="stretch")
    cols[1].button("Random from prior", on_click=_random, args=(run_path, D), width="stretch")
    selected = state.selected_index()
    cols[2].button(
        "From selected point",
        on_click=_from_selection,
        args=(run_path,),
        disabled=selected is None,
        help="select a point on the scatter first"
        if selected is None
        else f"test image #{selected}",
        width="stretch",
    )


def _reset(run_path: str, D: int) -> None:
    state.set_latent_z(run_path, [0.0] * D)


def _random(run_path: str, D: int) -> None:
    st.session_state[state.SLIDERS_SEED] += 1
    z = latent.sample_prior(1, D, 1.0, st.session_state[state.SLIDERS_SEED])[0]
    state.set_latent_z(run_path, z)


def _from_selection(run_path: str) -> None:
    index = state.selected_index()
    if index is not None:
        latent_points.load_code(run_path, index)


def slider_grid(
    z: Sequence[float],
    order: Sequence[int],
    active: Sequence[bool],
    kl: Sequence[float],
    tracks: Tracks = Tracks(),  # frozen: a safe default
    run_path: str = "",
) -> list[float]:
    """One slider per dimension in KL order (top ones in a grid, the rest in an expander),
    then one per attribute vector; returns the new z. The server-side fallback for the
    live-drag component."""
    z = list(z)
    ranges = _ranges(tracks, len(z))
    for d in order:
        key = state.slider_key(d)
        st.session_state.setdefault(key, z[d])  # after a widget-state cleanup
        st.session_state[key] = _clamp(st.session_state[key], ranges[d])  # range may shrink
    top, rest = list(order[:TOP_DIMS]), list(order[TOP_DIMS:])
    _slider_rows(top, z, active, kl, tracks)
    if rest:
        with st.expander(f"{len(rest)} more dimensions (lower KL)"):
            _slider_rows(rest, z, active, kl, tracks)
    if tracks.attributes:
        _attribute_rows(run_path, z, tracks.attributes)
    return z


def _ranges(tracks: Tracks, D: int) -> list[tuple[float, float]]:
    if tracks.histograms is None:
        return [(-LIMIT, LIMIT)] * D
    return [(round(lo, 2), round(hi, 2)) for lo, hi in tracks.histograms["ranges"]]


def _clamp(value: float, bounds: Sequence[float]) -> float:
    return min(max(float(value), bounds[0]), bounds[1])


def _track_image(col, q: Sequence[float], p: Sequence[float]) -> None:
    col.image(charts.histogram_svg(q, p), width="stretch")


def _slider_rows(
    dims: list[int], z: list[float], active: Sequence[bool], kl: Sequence[float], tracks: Tracks
):
    ranges = _ranges(tracks, len(z))
    for start in range(0, len(dims), GRID_COLUMNS):
        cols = st.columns(GRID_COLUMNS)
        for col, d in zip(cols, dims[start : start + GRID_COLUMNS], strict=False):
            if tracks.histograms is not None:
                _track_image(col, tracks.histograms["q"][d], tracks.histograms["p"][d])
            label = f"z{d} · {kl[d]:.2f} nats" if active[d] else f"z{d} · inactive"
            z[d] = col.slider(
                label,
                *ranges[d],
                step=0.05,
                key=state.slider_key(d),
                help=None if active[d] else "KL ≈ 0: the decoder ignores this dimension",
            )


def _attribute_rows(run_path: str, z: list[float], specs: Sequence[dict]) -> None:
    """A slider per attribute vector v showing z . v; moving it moves z along v."""
    st.caption("Attribute vectors")
    for start in range(0, len(specs), GRID_COLUMNS):
        cols = st.columns(GRID_COLUMNS)
        for col, spec in zip(cols, specs[start : start + GRID_COLUMNS], strict=False):
            key = state.attribute_slider_key(spec["name"])
            lo, hi = (round(v, 2) for v in spec["range"])
            position = float(np.dot(z, spec["direction"]))
            st.session_state[key] = _clamp(round(position, 2), (lo, hi))  # follows z
            _track_image(col, spec["q"], spec["p"])
            col.slider(
                spec["name"],  # widget labels are shown as text
                lo,
                hi,
                step=0.05,
                key=key,
                on_change=_move_along,
                args=(run_path, key, tuple(spec["direction"])),
                help="z · v for this attribute's unit vector v; moving it moves z along v",
            )


def _move_along(run_path: str, key: str, direction: tuple[float, ...]) -> None:
    """Slider callback: move z along the unit `direction` until z . v is the slider's value."""
    z = np.asarray(st.session_state[state.SLIDERS_Z], dtype=np.float64)
    v = np.asarray(direction, dtype=np.float64)
    z = z + (st.session_state[key] - z @ v) * v
    state.set_latent_z(run_path, z)


def _traversal(net: LatentVariableModel, z: list[float], order: list[int]) -> None:
    """Decode along -3..3 in each chosen dimension, the others held at the current point."""
    dims = st.multiselect(
        "Dimensions (rows)",
        list(range(len(z))),
        default=order[: min(4, len(order))],
        format_func=lambda d: f"z{d}",
        key=state.SLIDERS_TRAVERSAL_DIMS,
    )
    if not dims:
        return
    values = np.linspace(-LIMIT, LIMIT, TRAVERSAL_VALUES)
    codes = latent.traversal_grid(np.asarray(z), dims, values)  # (len(dims) * V, D)
    grid = latent.image_grid(latent.decode_latents(net, codes), nrow=TRAVERSAL_VALUES)
    st.image(
        images.png_bytes(grid, target_px=90 * TRAVERSAL_VALUES),
        caption="rows: " + ", ".join(f"z{d}" for d in dims) + f"; columns: {-LIMIT:g} … {LIMIT:g}",
        output_format="PNG",
    )
