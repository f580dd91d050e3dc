"""The encoded test set's points, shared by the scatter, inspector, interpolation,
disentanglement and sliders views: axis titles, the clicked point, the marks drawn over a
scatter (the inspected image, the user's image), the code a point loads into the sliders,
and the search that highlights points.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from explorer import cache, charts, state
from vae_core.inspect_image import Inspection, ellipse_2d
from vae_core.latent import EncodedSet, Projection
from vae_core.rundir import RunDir


def axis_titles(projection: Projection) -> tuple[str, str]:
    """z0 / z1 for the codes themselves, PC1 / PC2 with explained variance for PCA."""
    if projection.method in ("tsne", "umap"):
        name = "t-SNE" if projection.method == "tsne" else "UMAP"
        return f"{name} 1", f"{name} 2"
    if projection.method != "pca":
        return "z0", "z1"
    ratio = projection.explained_variance_ratio
    return f"PC1 ({ratio[0]:.0%} of variance)", f"PC2 ({ratio[1]:.0%})"


def selected_dataset_index(selection: dict) -> int | None:
    """The dataset index (customdata) of the first selected point, if any."""
    for point in selection.get("points", []):
        data = point.get("customdata")
        if isinstance(data, list):
            data = data[0] if data else None
        if data is not None:
            return int(data)
    return None


def own_position(
    projection: Projection, result: Inspection
) -> tuple[np.ndarray, np.ndarray | None]:
    """μ (2,) in the projection's view, and the 1-σ ellipse (P, 2) when it is linear."""
    return projection.transform(result.mu)[0], ellipse_2d(projection, result.mu, result.sigma)


def decorate_scatter(
    fig: go.Figure, run_path: str, version: int, codes: EncodedSet, projection: Projection
) -> None:
    """Ring the inspected (selected) test image and add the user's image with its ellipse."""
    selected = state.selected_index()
    if selected is not None:
        position = np.flatnonzero(codes.indices == selected)
        if len(position):
            charts.add_inspected(fig, projection.coords[position[0]], selected)
    net = cache.model(run_path, version)
    own = state.own_image(run_path, tuple(net.config.image_shape))
    if own is not None:
        result = cache.inspection(run_path, version, own["pixels"])
        charts.add_own_image(fig, *own_position(projection, result))


def own_code(run_path: str, version: int) -> np.ndarray | None:
    """μ (D,) of the user's image for this run, or None (the interpolation endpoint)."""
    net = cache.model(run_path, version)
    own = state.own_image(run_path, tuple(net.config.image_shape))
    if own is None:
        return None
    return cache.inspection(run_path, version, own["pixels"]).mu


def load_code(run_path: str, index: int) -> None:
    """Move the sliders to the posterior mean of test image `index` (newest weights)."""
    codes, _ = cache.encoded(run_path, RunDir(run_path).snapshot_version())
    position = np.flatnonzero(codes.indices == index)
    if len(position):
        state.set_latent_z(run_path, codes.mu[position[0]])


def find_points(
    query: str, labels: np.ndarray, indices: np.ndarray, class_names: Sequence[str]
) -> tuple[np.ndarray, list[str]]:
    """The points a search matches, as the Embedding Projector's search box does.

    `query` holds comma-separated terms: a test-image index (`12` or `#12`), a range of
    indices (`40-45`), or part of a class name, any case (`shirt` finds "T-shirt/top" and
    "Shirt"). Returns (mask over the points (N,), the terms that matched nothing).
    """
    mask = np.zeros(len(indices), dtype=bool)
    unmatched = []
    names = [charts.class_name(int(label), class_names).lower() for label in labels]
    for term in (t.strip() for t in query.split(",")):
        if not term:
            continue
        hit = _term_mask(term.lstrip("#"), labels, indices, names)
        if hit.any():
            mask |= hit
        else:
            unmatched.append(term)
    return mask, unmatched


def _term_mask(
    term: str, labels: np.ndarray, indices: np.ndarray, names: Sequence[str]
) -> np.ndarray:
    bounds = term.split("-")
    if len(bounds) == 2 and all(b.strip().isdigit() for b in bounds):
        lo, hi = sorted(int(b) for b in bounds)
        return (indices >= lo) & (indices <= hi)
    if term.isdigit():
        return indices == int(term)
    return np.array([term.lower() in name for name in names], dtype=bool)
