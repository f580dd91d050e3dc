"""The latent space across training: the time-lapse subset encoded at every history point,
played as a plotly animation in the browser, with a GIF export and "Fork from here".

For D > 2 each frame is aligned to the newest by orthogonal Procrustes, then projected with
the newest frame's PCA, so points move instead of jumping; axes stay fixed, so a collapsing
posterior visibly shrinks to the origin.
"""

from __future__ import annotations

import time

import numpy as np
import streamlit as st

from explorer import cache, charts, images, state
from explorer.panels import fork
from vae_core import history
from vae_core.latent import TimeLapse
from vae_core.rundir import RunDir

FRAME_MS = 250


def render(run: RunDir) -> None:
    """The animated scatter over the run's history, its GIF, and a fork form."""
    points = history.list_points(run)
    if not points:
        st.info("No history yet: the trainer saves its weights at log-spaced steps.")
        return
    run_path = str(run.path)
    started = time.perf_counter()
    _encode_history(run_path, points)
    lapse = cache.time_lapse(run_path, tuple(p.step for p in points), points)
    labels = cache.test_data(run_path).labels[: lapse.frames.shape[1]].numpy()
    titles = [f"step {p.step} · epoch {p.epoch} · test ELBO {p.test_elbo:.1f} nats" for p in points]
    fig = charts.timelapse_figure(
        lapse.frames,
        labels,
        titles,
        [str(p.step) for p in points],
        cache.test_data(run_path).info.class_names,
        tracks=_tracks(run_path, lapse),
        axis_titles=_axis_titles(lapse),
        frame_ms=FRAME_MS,
    )
    st.caption(
        f"{lapse.frames.shape[1]} test images at {len(points)} history points "
        f"(history uses {history.disk_bytes(run) / 1e6:.1f} MB); built in "
        f"{time.perf_counter() - started:.2f} s. Press Play, or drag the step slider."
    )
    st.plotly_chart(fig, key=state.SCATTER_TIMELAPSE_CHART, width="stretch")
    _gif(run_path, lapse, labels, titles, cache.test_data(run_path).info.class_names)
    with st.expander("Fork from a history point", key=state.SCATTER_FORK_EXPANDER):
        steps = [p.step for p in points]
        step = st.select_slider(
            "History step", steps, value=steps[-1], key=state.SCATTER_TIMELAPSE_STEP
        )
        point = points[steps.index(step)]
        _, train_config = run.read_config()
        fork.render(run, train_config, point.step, point.epoch, key=state.SCATTER_FORK)


def _encode_history(run_path: str, points: list[history.HistoryPoint]) -> None:
    """Encode the test subset at every history point, with a bar saying how far it is (the
    codes are cached per point: a rebuild after a new point encodes only that one)."""
    bar = st.progress(0.0, text="Encoding the history…")
    for i, point in enumerate(points, 1):
        cache.history_codes(run_path, point.step, point)
        bar.progress(i / len(points), text=f"Encoding the history: {i} of {len(points)} points")
    bar.empty()


def _axis_titles(lapse: TimeLapse) -> tuple[str, str]:
    if lapse.projection.method != "pca":
        return "z0", "z1"
    return "PC1 of the newest point (aligned)", "PC2"


def _tracks(run_path: str, lapse: TimeLapse) -> list[tuple[str, np.ndarray]]:
    """(name, (T, 2)): the slider point and the selected test image, in every frame."""
    tracks = []
    T, N, _ = lapse.frames.shape
    z = st.session_state.get(state.SLIDERS_Z)
    D = lapse.rotations.shape[-1]
    if z is not None and st.session_state.get(state.SLIDERS_RUN) == (run_path, D):
        path = np.concatenate([lapse.transform(t, np.asarray(z)) for t in range(T)])  # (T, 2)
        tracks.append(("slider point", path))
    index = state.selected_index()
    if index is not None and 0 <= index < N:
        tracks.append((f"test image #{index}", lapse.frames[:, index]))
    return tracks


def _gif(
    run_path: str,
    lapse: TimeLapse,
    labels: np.ndarray,
    titles: list[str],
    class_names: tuple[str, ...],
) -> None:
    """An animated GIF of the same frames, in the figure's class colours, with a legend;
    rendered only when asked for, then kept (per run and history) so that Download GIF
    stays through other widgets' reruns."""
    made_for = (run_path, tuple(titles))
    if st.button("Make a GIF of the time-lapse", key=state.SCATTER_TIMELAPSE_GIF):
        ranges = charts.fixed_ranges(lapse.frames)
        data = images.scatter_gif(
            lapse.frames,
            labels,
            titles,
            ranges,
            charts.CLASS_COLORS,
            frame_ms=FRAME_MS,
            class_names=class_names,
        )
        st.session_state[state.SCATTER_TIMELAPSE_GIF_MADE] = (*made_for, data)
    made = st.session_state.get(state.SCATTER_TIMELAPSE_GIF_MADE)
    if made is not None and made[:2] == made_for:
        st.download_button("Download GIF", made[2], "timelapse.gif", "image/gif", on_click="ignore")
