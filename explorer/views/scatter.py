"""The encoded test set as a 2D scatter (the codes themselves for D <= 2, else PCA).

Selecting a point shows its image and reconstruction and moves the sliders to its code;
the sliders' current point and the last interpolation path are drawn on top.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import streamlit as st

from explorer import cache, charts, images, state
from explorer.views import sliders, waiting
from vae_core.latent import Projection
from vae_core.rundir import RunDir

DETAIL_PX = 160


def render(run: RunDir) -> None:
    """Scatter of mu for the first test images, with selection -> sliders."""
    if not waiting.until_snapshot(run, "The scatter and its points"):
        return
    version = run.snapshot_version()
    run_path = str(run.path)
    codes, projection = cache.encoded(run_path, version)
    class_names = cache.test_data(run_path).info.class_names
    fig = charts.scatter_figure(
        projection.coords,
        codes.labels,
        codes.indices,
        class_names,
        current=_current_point(run_path, projection),
        path=_path(run_path, projection),
        axis_titles=axis_titles(projection),
    )
    col_plot, col_detail = st.columns([3, 1])
    with col_plot:
        st.caption(
            f"{len(codes)} test images encoded with snapshot v{version} "
            f"({'the codes themselves' if projection.method == 'identity' else 'PCA'}); "
            "click a point to load its code into the sliders (★ = slider point)."
        )
        st.plotly_chart(
            fig,
            key=state.SCATTER_CHART,
            on_select=partial(_on_select, run_path),
            selection_mode="points",
            width="stretch",
        )
    with col_detail:
        _selected_detail(run_path, version, class_names)


def axis_titles(projection: Projection) -> tuple[str, str]:
    """z0 / z1 for the codes themselves, PC1 / PC2 with explained variance for PCA."""
    if projection.method != "pca":
        return "z0", "z1"
    ratio = projection.explained_variance_ratio
    return f"PC1 ({ratio[0]:.0%} of variance)", f"PC2 ({ratio[1]:.0%})"


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


def selected_dataset_index(selection: dict) -> int | None:
    """The dataset index (customdata) of the first selected point, if any."""
    for point in selection.get("points", []):
        data = point.get("customdata")
        if isinstance(data, list):
            data = data[0] if data else None
        if data is not None:
            return int(data)
    return None


def _on_select(run_path: str) -> None:
    # Runs before the rerun, so the sliders (drawn earlier in the page) can still be moved.
    chart_state = st.session_state.get(state.SCATTER_CHART)
    index = selected_dataset_index(chart_state.get("selection", {}) if chart_state else {})
    if index is not None:
        state.set_selected_index(index)
        sliders.load_code(run_path, index)


def _selected_detail(run_path: str, version: int, class_names: tuple[str, ...]) -> None:
    index = state.selected_index()
    if index is None:
        st.caption("No point selected.")
        return
    originals, recons = cache.reconstructions(run_path, version, (index,))
    label = int(cache.test_data(run_path).labels[index])
    name = class_names[label] if label < len(class_names) else str(label)
    st.markdown(f"**Test image #{index}** ({name})")
    st.image(images.png_bytes(originals[0], DETAIL_PX), caption="input", output_format="PNG")
    st.image(images.png_bytes(recons[0], DETAIL_PX), caption="reconstruction", output_format="PNG")
