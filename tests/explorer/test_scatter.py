"""The scatter view's projector tools in AppTest: search, nearest neighbours, UMAP."""

from __future__ import annotations

import base64
import json

import numpy as np

from explorer import cache, projections, state
from explorer.panels.latent_points import find_points
from vae_core.embedding import nearest_codes
from vae_core.rundir import RunDir

NAMES = ("T-shirt/top", "Trouser", "Shirt")


def _scatter_spec(at) -> dict:
    (chart,) = [
        c
        for c in at.get("plotly_chart")
        if '"slider point"' in c.proto.spec
        or "PC1" in c.proto.spec
        or "UMAP 1" in c.proto.spec
        or "t-SNE 1" in c.proto.spec
    ]
    return json.loads(chart.proto.spec)


def _count(values: list | dict) -> int:
    """Length of a plotly array, plain or typed ({"dtype", "bdata"} base64)."""
    if isinstance(values, dict):
        return len(base64.b64decode(values["bdata"])) // np.dtype(values["dtype"]).itemsize
    return len(values)


def _trace(spec: dict, prefix: str) -> dict | None:
    return next((t for t in spec["data"] if t.get("name", "").startswith(prefix)), None)


def test_find_points_takes_class_parts_indices_and_ranges() -> None:
    labels = np.array([0, 1, 2, 2, 1])
    indices = np.array([10, 11, 12, 13, 40])
    mask, unmatched = find_points("shirt", labels, indices, NAMES)
    np.testing.assert_array_equal(mask, [True, False, True, True, False])  # both shirts
    mask, unmatched = find_points("#11, 12-13, Trouser, dress", labels, indices, NAMES)
    np.testing.assert_array_equal(mask, [False, True, True, True, True])
    assert unmatched == ["dress"]
    mask, _ = find_points("13-12", labels, indices, NAMES)  # a range either way round
    np.testing.assert_array_equal(mask, [False, False, True, True, False])


def test_search_rings_the_matching_points_and_fades_the_rest(app, runs_root, run_name) -> None:
    at = app(run=run_name, view="Scatter")
    codes, _ = cache.encoded(
        str(runs_root / run_name), RunDir(runs_root / run_name).snapshot_version()
    )
    class_names = cache.test_data(str(runs_root / run_name)).info.class_names
    wanted = int(codes.labels[0])
    term = class_names[wanted]
    at.text_input(key=state.SCATTER_SEARCH).input(f"{term}, nothing like this").run()
    assert not at.exception
    expected = int((codes.labels == wanted).sum())
    (caption,) = [c.value for c in at.caption if "Search:" in c.value]
    assert f"Search: {expected} of {len(codes)} points match. No point matches nothing" in caption
    spec = _scatter_spec(at)
    found = _trace(spec, "found:")
    assert found is not None and _count(found["x"]) == expected
    faded = [t for t in spec["data"] if t["type"] == "scattergl"]
    assert faded and all(t["marker"]["opacity"] == 0.15 for t in faded)


def test_a_selected_point_shows_its_nearest_neighbours_with_distances(
    app, runs_root, run_name
) -> None:
    run_path = str(runs_root / run_name)
    at = app(run=run_name, view="Scatter")
    at.session_state[state.SCATTER_SELECTED] = 3
    at.session_state[state.SCATTER_NEIGHBOURS] = 5
    at.run()
    assert not at.exception
    codes, _ = cache.encoded(run_path, RunDir(run_path).snapshot_version())
    rows, distances = nearest_codes(codes.mu, int(np.flatnonzero(codes.indices == 3)[0]), 5)
    spokes = _trace(_scatter_spec(at), "5 nearest in latent space")
    assert spokes is not None and _count(spokes["x"]) == 3 * 5  # start, end, gap per spoke
    captions = [f"#{int(i)} · {d:.2f}" for i, d in zip(codes.indices[rows], distances, strict=True)]
    shown = [img.caption for element in at.get("image") for img in element.proto.imgs]
    assert shown[-5:] == captions


def test_umap_is_computed_in_the_background_then_replaces_pca(app, runs_root, run_name) -> None:
    at = app(run=run_name, view="Scatter")
    at.session_state[state.SCATTER_PROJECTION] = "UMAP"
    at.run()
    job = projections.job(str(runs_root / run_name), "umap")
    assert job is not None
    job.future.result(timeout=600)  # the first UMAP in a process compiles numba kernels
    at.run()
    assert not at.exception
    assert any("(UMAP)" in c.value for c in at.caption)
    spec = _scatter_spec(at)
    assert spec["layout"]["xaxis"]["title"]["text"] == "UMAP 1"
