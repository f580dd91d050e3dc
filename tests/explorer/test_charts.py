"""explorer.charts: figures built from metric rows and arrays."""

from __future__ import annotations

import numpy as np

from explorer import charts

ROWS = [
    {"step": 10, "split": "train", "elbo": -300.0, "recon": 290.0, "kl": 10.0, "beta": 1.0},
    {"step": 20, "split": "train", "elbo": -200.0, "recon": 185.0, "kl": 15.0, "beta": 1.0},
    {"step": 20, "event": "control", "command": None, "beta": 4.0, "lr": 1e-3},
    {"step": 30, "split": "train", "elbo": -190.0, "recon": 180.0, "kl": 10.0, "beta": 4.0},
    {"step": 30, "split": "test", "elbo": -195.0, "recon": 183.0, "kl": 12.0},
    {"step": 35, "event": "failed", "reason": "loss became NaN"},
]


def _trace(fig, name: str, panel: int):
    return [t for t in fig.data if t.name == name][panel]


def test_curves_have_train_and_test_in_each_of_four_panels() -> None:
    fig = charts.curves_figure(ROWS)
    assert len(fig.data) == 8
    assert list(_trace(fig, "train", 0).y) == [-300.0, -200.0, -190.0]
    assert list(_trace(fig, "test", 0).x) == [30]


def test_beta_kl_panel_scales_kl_by_the_beta_in_force() -> None:
    fig = charts.curves_figure(ROWS)
    assert list(_trace(fig, "train", 3).y) == [10.0, 15.0, 40.0]
    assert list(_trace(fig, "test", 3).y) == [48.0]  # test rows carry no beta: the last one


def test_control_changes_and_failures_are_marked_with_vertical_lines() -> None:
    fig = charts.curves_figure(ROWS)
    xs = sorted({shape.x0 for shape in fig.layout.shapes})  # one line per panel
    assert xs == [20, 35]
    assert any("beta=4" in a.text for a in fig.layout.annotations)


def test_curves_of_no_rows_is_an_empty_figure() -> None:
    assert all(len(t.x) == 0 for t in charts.curves_figure([]).data)


def test_kl_bars_grey_out_inactive_dims() -> None:
    fig = charts.kl_bar_figure([0.5, 0.001, 2.0], [True, False, True])
    colors = list(fig.data[0].marker.color)
    assert colors == [charts.ACTIVE_COLOR, charts.INACTIVE_COLOR, charts.ACTIVE_COLOR]
    assert "2 of 3 active" in fig.layout.title.text


def test_scatter_has_one_webgl_trace_per_class_with_dataset_indices() -> None:
    coords = np.arange(12, dtype=np.float32).reshape(6, 2)
    labels = np.array([0, 1, 0, 2, 1, 0])
    indices = np.array([10, 11, 12, 13, 14, 15])
    fig = charts.scatter_figure(
        coords, labels, indices, ("a", "b", "c"), current=np.array([0.0, 1.0]), path=coords[:3]
    )
    classes = [t for t in fig.data if t.type == "scattergl"]
    assert [t.name for t in classes] == ["a", "b", "c"]
    assert list(classes[0].customdata) == [10, 12, 15]
    overlays = {t.name: t for t in fig.data if t.type == "scatter"}
    assert set(overlays) == {"slider point", "interpolation"}
    assert overlays["slider point"].customdata is None
