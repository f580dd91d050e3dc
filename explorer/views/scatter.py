"""The encoded test set as a 2D scatter (the codes themselves for D <= 2, else PCA, or
t-SNE computed on demand in the background while PCA stays on screen).

Selecting a point shows its image and reconstruction and moves the sliders to its code;
the sliders' current point and the last interpolation path are drawn on top.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import streamlit as st

from explorer import access, cache, charts, images, projections, state
from explorer.panels import attributes, holes, latent_points, timelapse, waiting
from vae_core.latent import EncodedSet, Projection
from vae_core.rundir import RunDir

DETAIL_PX = 160
METHOD_NAMES = {"identity": "the codes themselves", "pca": "PCA", "tsne": "t-SNE"}
WHAT = """
Each point is one test image's posterior mean μ(x): the encoder's output, no sampling. With
D ≤ 2 the axes are z itself; otherwise the D numbers are projected to 2: PCA keeps the two
directions of largest variance (the axis titles give each one's share), t-SNE keeps
neighbours together but distorts distances and densities. Colours are the dataset's labels,
which the VAE never saw: classes that separate were found without them.
"""


def render(run: RunDir) -> None:
    """Scatter of mu for the first test images, with selection -> sliders."""
    with st.popover("What am I looking at?", icon=":material/help:"):
        st.markdown(WHAT)
    if not waiting.until_snapshot(run, "The scatter and its points"):
        return
    mode = st.segmented_control(
        "Scatter mode",
        ["Snapshot", "Time-lapse"],
        default="Snapshot",
        required=True,
        key=state.SCATTER_TIMELAPSE,
        label_visibility="collapsed",
        help="Time-lapse replays the latent space across the run's history of weights",
    )
    if mode == "Time-lapse":
        timelapse.render(run)
        return
    version = run.snapshot_version()
    run_path = str(run.path)
    codes, projection = cache.encoded(run_path, version)
    shown_version = version
    if projection.method == "pca" and _wants_tsne():
        codes, projection, shown_version = _tsne(run_path, version, codes, projection)
    class_names = cache.test_data(run_path).info.class_names
    fig = charts.scatter_figure(
        projection.coords,
        codes.labels,
        codes.indices,
        class_names,
        current=_current_point(run_path, projection),
        path=_path(run_path, projection),
        axis_titles=latent_points.axis_titles(projection),
    )
    latent_points.decorate_scatter(fig, run_path, version, codes, projection)  # ring, your image
    if holes.toggle(projection.method, codes.mu.shape[1]):
        holes.shade(fig, run_path, version)  # log q_agg - log p behind the points
    col_plot, col_detail = st.columns([3, 1])
    with col_plot:
        st.caption(
            f"{len(codes)} test images encoded with snapshot v{shown_version} "
            f"({METHOD_NAMES[projection.method]}); "
            "click a point to load its code into the sliders (★ = slider point)."
        )
        st.plotly_chart(
            fig,
            key=state.SCATTER_CHART,
            on_select=partial(_on_select, run_path),
            selection_mode=("points", "box", "lasso"),  # box / lasso: attribute groups
            width="stretch",
        )
    with col_detail:
        _selected_detail(run_path, version, class_names)
        holes.slider_point_badge(run_path, version)
        attributes.group_buttons(run_path)


def _wants_tsne() -> bool:
    choice = st.segmented_control(
        "Projection",
        ["PCA", "t-SNE"],
        default="PCA",
        key=state.SCATTER_PROJECTION,
        help="t-SNE keeps neighbours together but distorts distances; "
        "it is computed in the background (seconds to tens of seconds)",
    )
    return choice == "t-SNE"


def _tsne(
    run_path: str, version: int, codes: EncodedSet, pca: Projection
) -> tuple[EncodedSet, Projection, int]:
    """The t-SNE view once ready (codes, projection, their snapshot version); PCA until then."""
    job = projections.tsne_job(run_path) or projections.start_tsne(run_path, version, codes)
    if not job.done:
        st.fragment(_tsne_progress, run_every=1.0)(run_path)
        return codes, pca, version
    if job.error is not None:
        st.error(f"t-SNE failed ({access.plain(job.error)}); showing PCA.")
        retry = (run_path, version, codes)
        st.button("Try t-SNE again", on_click=projections.start_tsne, args=retry)
        return codes, pca, version
    if job.version != version:
        st.button(
            f"Recompute t-SNE for snapshot v{version}",
            on_click=projections.start_tsne,
            args=(run_path, version, codes),
            help=f"this t-SNE embeds the codes of snapshot v{job.version}",
        )
    assert job.projection is not None
    return job.codes, job.projection, job.version


def _tsne_progress(run_path: str) -> None:
    """Elapsed time while t-SNE runs; a full rerun swaps the plot in when it is done."""
    job = projections.tsne_job(run_path)
    if job is None or job.done:
        st.rerun()
    st.info(
        f"Computing t-SNE of {len(job.codes)} codes (snapshot v{job.version}) in the "
        f"background: {job.elapsed_s:.0f} s so far. PCA meanwhile.",
        icon=":material/hourglass_top:",
    )


def _current_point(run_path: str, projection: Projection) -> np.ndarray | None:
    z = st.session_state.get(state.SLIDERS_Z)
    if z is None or st.session_state.get(state.SLIDERS_RUN) != (run_path, len(z)):
        return None
    return projection.transform(np.asarray(z))[0]


def _path(run_path: str, projection: Projection) -> np.ndarray | None:
    """The last interpolation path built for this run, projected: (steps, 2)."""
    saved = st.session_state.get(state.INTERP_PATH)
    if not saved or saved["run"] != run_path:
        return None
    return projection.transform(np.asarray(saved["path"]))


def _on_select(run_path: str) -> None:
    # Runs before the rerun, so the sliders (drawn earlier in the page) can still be moved.
    chart_state = st.session_state.get(state.SCATTER_CHART)
    selection = chart_state.get("selection", {}) if chart_state else {}
    if attributes.remember_group(run_path, selection):
        return  # a box / lasso group, not one point
    index = latent_points.selected_dataset_index(selection)
    if index is not None:
        state.set_selected_index(index)
        latent_points.load_code(run_path, index)


def _selected_detail(run_path: str, version: int, class_names: tuple[str, ...]) -> None:
    index = state.selected_index()
    if index is None:
        st.caption("No point selected.")
        return
    originals, recons = cache.reconstructions(run_path, version, (index,))
    label = int(cache.test_data(run_path).labels[index])
    name = class_names[label] if label < len(class_names) else str(label)
    st.markdown(f"**Test image #{index}** ({access.plain(name)})")  # names from folders
    st.image(images.png_bytes(originals[0], DETAIL_PX), caption="input", output_format="PNG")
    st.image(images.png_bytes(recons[0], DETAIL_PX), caption="reconstruction", output_format="PNG")
