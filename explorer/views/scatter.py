"""The encoded test set as a 2D scatter (the codes themselves for D <= 2, else PCA, or
t-SNE / UMAP computed on demand in the background while PCA stays on screen).

Selecting a point shows its image, its reconstruction and its nearest neighbours in latent
space, and moves the sliders to its code; a search highlights points by class or index; the
sliders' current point and the last interpolation path are drawn on top.
"""

from __future__ import annotations

import html
from functools import partial

import numpy as np
import streamlit as st

from explorer import access, cache, charts, images, projections, state
from explorer.components import ticker
from explorer.panels import attributes, explain, holes, latent_points, timelapse, waiting
from vae_core.embedding import nearest_codes
from vae_core.latent import EncodedSet, Projection
from vae_core.rundir import RunDir

DETAIL_PX = 160
METHOD_NAMES = {"identity": "the codes themselves", "pca": "PCA", **projections.METHOD_NAMES}
CHOICES = {"PCA": "pca", "t-SNE": "tsne", "UMAP": "umap"}
NEIGHBOUR_PX = 56
WHAT = """
Each point is one test image's posterior mean μ(x): the encoder's output, no sampling. With
D ≤ 2 the axes are z itself; otherwise the D numbers are projected to 2: PCA keeps the two
directions of largest variance (the axis titles give each one's share); t-SNE and UMAP keep
neighbours together but distort distances and densities. The red spokes join the selected
point to its nearest neighbours in the full D-dimensional space, which a 2D view can pull
apart. Colours are the dataset's labels, which the VAE never saw: classes that separate were
found without them.
"""


def render(run: RunDir) -> None:
    """Scatter of mu for the first test images, with selection -> sliders."""
    explain.what_am_i_looking_at(WHAT, "Scatter")
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
    if projection.method == "pca":
        method = _chosen_method()
        if method != "pca":
            codes, projection, shown_version = _embedding(
                run_path, method, version, codes, projection
            )
    class_names = cache.test_data(run_path).info.class_names
    query = st.text_input(
        "Find points",
        key=state.SCATTER_SEARCH,
        placeholder="class or test-image index, e.g. shirt, 12, 40-45",
        help="Comma-separated: part of a class name (any case), an index, or a range of "
        "indices. Matching points are ringed, the others fade.",
    )
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
    found = _mark_found(fig, query, codes, projection, class_names)
    neighbours = _mark_neighbours(fig, codes, projection)
    if holes.toggle(projection.method, codes.mu.shape[1]):
        holes.shade(fig, run_path, version)  # log q_agg - log p behind the points
    col_plot, col_detail = st.columns([3, 1])
    with col_plot:
        st.caption(
            f"{len(codes)} test images encoded with snapshot v{shown_version} "
            f"({METHOD_NAMES[projection.method]}); "
            "click a point to load its code into the sliders (★ = slider point)."
            + (f" {found}" if found else "")
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
        _neighbour_strip(run_path, version, codes, neighbours)
        holes.slider_point_badge(run_path, version)
        attributes.group_buttons(run_path)


def _chosen_method() -> str:
    choice = st.segmented_control(
        "Projection",
        list(CHOICES),
        default="PCA",
        key=state.SCATTER_PROJECTION,
        help="t-SNE and UMAP keep neighbours together but distort distances; they are "
        "computed in the background while PCA stays on screen",
    )
    return CHOICES.get(choice or "PCA", "pca")


def _embedding(
    run_path: str, method: projections.Method, version: int, codes: EncodedSet, pca: Projection
) -> tuple[EncodedSet, Projection, int]:
    """The t-SNE / UMAP view once ready (codes, projection, their snapshot version); PCA
    until then."""
    job = projections.job(run_path, method) or projections.start(run_path, method, version, codes)
    if not job.done:
        st.fragment(_progress)(run_path, method)
        return codes, pca, version
    if job.error is not None:
        st.error(f"{job.name} failed ({access.plain(job.error)}); showing PCA.")
        retry = (run_path, method, version, codes)
        st.button(f"Try {job.name} again", on_click=projections.start, args=retry)
        return codes, pca, version
    if job.version != version:
        st.button(
            f"Recompute {job.name} for snapshot v{version}",
            on_click=projections.start,
            args=(run_path, method, version, codes),
            help=f"this {job.name} embeds the codes of snapshot v{job.version}",
        )
    assert job.projection is not None
    return job.codes, job.projection, job.version


def _progress(run_path: str, method: projections.Method) -> None:
    """How far the job is while it runs, every second while the tab is visible; a full
    rerun swaps the plot in when it is done."""
    ticker.every(1.0, key=state.sub_key(state.SCATTER_JOB_CLOCK, method))
    job = projections.job(run_path, method)
    if job is None or job.done:
        st.rerun()
    text = (
        f"Computing {job.name} of {len(job.codes)} codes (snapshot v{job.version}) in the "
        f"background: {job.elapsed_s:.0f} s so far. PCA meanwhile."
    )
    if job.fraction is not None:
        st.progress(job.fraction, text=text)
    else:
        if method == "umap":
            text += " The first UMAP after the app starts also compiles its kernels."
        st.info(text, icon=":material/hourglass_top:")


def _mark_found(
    fig, query: str, codes: EncodedSet, projection: Projection, class_names: tuple[str, ...]
) -> str:
    """Ring the points the search matches; returns a line saying what it found."""
    if not query.strip():
        return ""
    mask, unmatched = latent_points.find_points(query, codes.labels, codes.indices, class_names)
    if mask.any():
        legend = html.escape(query.strip()[:40])  # plotly renders HTML in legend names
        charts.add_found(fig, projection.coords[mask], legend)
    line = f"Search: {int(mask.sum())} of {len(codes)} points match."
    if unmatched:
        line += f" No point matches {access.plain(', '.join(unmatched))}."
    return line


def _mark_neighbours(
    fig, codes: EncodedSet, projection: Projection
) -> tuple[np.ndarray, np.ndarray]:
    """Spokes to the selected point's nearest neighbours in latent space; returns their
    (rows, distances), empty when no encoded point is selected."""
    index = state.selected_index()
    position = np.flatnonzero(codes.indices == index) if index is not None else []
    k = int(st.session_state.get(state.SCATTER_NEIGHBOURS, 8))
    if len(position) == 0 or k == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    rows, distances = nearest_codes(codes.mu, int(position[0]), k)
    charts.add_neighbours(fig, projection.coords[position[0]], projection.coords[rows])
    return rows, distances


def _neighbour_strip(
    run_path: str, version: int, codes: EncodedSet, neighbours: tuple[np.ndarray, np.ndarray]
) -> None:
    """The selected point's nearest test images in latent space, with their distances."""
    if state.selected_index() is None:
        return
    st.number_input(
        "Nearest neighbours",
        min_value=0,
        max_value=32,
        value=8,
        key=state.SCATTER_NEIGHBOURS,
        help="k nearest test images by Euclidean distance between posterior means μ, "
        "in all D dimensions (not in the 2D view)",
    )
    rows, distances = neighbours
    if len(rows) == 0:
        return
    indices = tuple(int(i) for i in codes.indices[rows])
    originals, _ = cache.reconstructions(run_path, version, indices)
    st.image(
        [images.png_bytes(image, NEIGHBOUR_PX) for image in originals],
        caption=[f"#{i} · {d:.2f}" for i, d in zip(indices, distances, strict=True)],
        output_format="PNG",
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
