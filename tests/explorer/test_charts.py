"""explorer.charts: figures built from metric views and arrays."""

from __future__ import annotations

import itertools

import numpy as np

from explorer import charts
from vae_core.metrics_log import summarize

ROWS = [
    {"step": 10, "split": "train", "elbo": -300.0, "recon": 290.0, "kl": 10.0, "beta": 1.0},
    {"step": 20, "split": "train", "elbo": -200.0, "recon": 185.0, "kl": 15.0, "beta": 1.0},
    {"step": 20, "event": "control", "command": None, "beta": 4.0, "lr": 1e-3},
    {"step": 30, "split": "train", "elbo": -190.0, "recon": 180.0, "kl": 10.0, "beta": 4.0},
    {"step": 30, "split": "test", "elbo": -195.0, "recon": 183.0, "kl": 12.0},
    {"step": 35, "event": "failed", "reason": "loss became NaN"},
]
VIEW = summarize(ROWS)


def _trace(fig, name: str, panel: int):
    return [t for t in fig.data if t.name == name][panel]


def test_curves_have_train_and_test_in_each_of_four_panels() -> None:
    fig = charts.curves_figure(VIEW)
    assert len(fig.data) == 8
    assert list(_trace(fig, "train", 0).y) == [-300.0, -200.0, -190.0]
    assert list(_trace(fig, "test", 0).x) == [30]


def test_beta_kl_panel_scales_kl_by_the_beta_in_force() -> None:
    fig = charts.curves_figure(VIEW)
    assert list(_trace(fig, "train", 3).y) == [10.0, 15.0, 40.0]
    assert list(_trace(fig, "test", 3).y) == [48.0]  # test rows carry no beta: the last one


def test_control_changes_and_failures_are_marked_with_vertical_lines() -> None:
    fig = charts.curves_figure(VIEW)
    xs = sorted({shape.x0 for shape in fig.layout.shapes})  # one line per panel
    assert xs == [20, 35]
    assert any("beta=4" in a.text for a in fig.layout.annotations)


def test_curves_of_no_rows_is_an_empty_figure() -> None:
    assert all(len(t.x) == 0 for t in charts.curves_figure(summarize([])).data)


def test_a_resume_is_marked_and_its_orphaned_points_are_gone() -> None:
    resumed = [*ROWS, {"step": 20, "event": "resume"}, {"step": 40, "split": "train", "kl": 1.0}]
    fig = charts.curves_figure(summarize(resumed))
    assert list(_trace(fig, "train", 2).x) == [10, 20, 40]
    assert list(_trace(fig, "test", 2).x) == []
    assert sorted({shape.x0 for shape in fig.layout.shapes}) == [20]  # the failure at 35 went


def test_long_curves_are_sent_thinned_and_compact() -> None:
    rows = [{"step": s, "split": "train", "elbo": -float(s), "kl": 1.0} for s in range(50_000)]
    rows += [{"step": s, "event": "control", "beta": 2.0} for s in range(0, 50_000, 100)]
    fig = charts.curves_figure(summarize(rows))
    train = _trace(fig, "train", 0)
    assert len(train.x) <= 2000 and train.x[0] == 0 and train.x[-1] == 49_999
    assert len(fig.layout.shapes) == 4 * charts.MAX_MARKED_EVENTS
    assert len(fig.to_json()) < 200_000


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


def test_a_control_label_names_what_the_change_set() -> None:
    row = {"step": 5, "event": "control", "command": None, "changed": ["free_bits"]}
    row |= {"beta": 4.0, "lr": 1e-3, "free_bits": 0.5, "beta_schedule": "linear"}
    assert charts._control_label(row) == "free_bits=0.5"
    row["changed"] = ["beta_schedule", "warmup_steps"]
    assert charts._control_label(row | {"warmup_steps": 1000}) == (
        "beta_schedule=linear, warmup_steps=1e+03"
    )


def test_schedule_panel_draws_effective_beta_and_the_free_bits_floor_compactly() -> None:
    rows = [
        {"step": s, "split": "train", "kl": 1.0, "beta": min(1.0, s / 100), "free_bits": 0.0}
        for s in range(10, 1001, 10)
    ]
    rows += [{"step": 1000, "event": "control", "changed": ["free_bits"], "free_bits": 0.5}]
    rows += [{"step": s, "split": "train", "beta": 1.0, "free_bits": 0.5} for s in (1010, 1020)]
    beta, floor = charts.schedule_figure(summarize(rows)).data
    assert list(beta.x[:3]) == [10, 20, 30] and beta.y[-1] == 1.0
    assert list(beta.x[-2:]) == [100, 1020]  # a flat stretch is drawn by its two ends
    assert list(floor.x) == [10, 1000, 1010, 1020] and list(floor.y) == [0, 0, 0.5, 0.5]
    assert floor.yaxis == "y2"


def test_elbo_gap_panel_in_nats_and_bits_per_dim() -> None:
    row = {"step": 50, "split": "test", "elbo": -100.0, "iwae": -90.0, "iwae_elbo": -98.0}
    view = summarize([row | {"iwae_gap": 8.0}])
    elbo, iwae, gap = charts.elbo_gap_figure(view, num_pixels=784).data
    assert (elbo.y[0], iwae.y[0], gap.y[0]) == (-98.0, -90.0, 8.0)
    elbo, iwae, gap = charts.elbo_gap_figure(view, num_pixels=784, units="bits/dim").data
    bpd = 1 / (784 * np.log(2))
    np.testing.assert_allclose([elbo.y[0], iwae.y[0], gap.y[0]], [98 * bpd, 90 * bpd, 8 * bpd])
    assert iwae.y[0] < elbo.y[0]  # in bits/dim the tighter bound is the lower one


def test_kl_bars_mark_the_active_threshold_and_the_free_bits_floor() -> None:
    fig = charts.kl_bar_figure([0.5, 0.001], [True, False], threshold=0.1, free_bits=0.25)
    assert sorted(shape.y0 for shape in fig.layout.shapes) == [0.1, 0.25]
    assert charts.kl_bar_figure([0.5], [True]).layout.shapes == ()


def test_control_labels_never_overprint_and_crowded_ones_go_to_hover() -> None:
    rows = [{"step": s, "split": "train", "elbo": -100.0, "kl": 5.0} for s in range(0, 3000, 50)]
    steps = [600, 610, 620, 630, 1500, 2900]
    rows += [{"step": s, "event": "control", "beta": 2.0, "lr": 1e-3} for s in steps]
    layout = charts.curves_spec(summarize(rows))["layout"]
    labels = [a for a in layout["annotations"] if a.get("hovertext")]
    assert sorted(a["x"] for a in labels) == steps  # every line keeps its label, at least on hover
    shown = [a for a in labels if a["text"] != "▾"]
    assert 2 <= len(shown) < len(steps)  # four lines within 30 steps cannot all be printed
    per_px = 3000 / charts.LABEL_PANEL_PX
    for shift in {a["yshift"] for a in shown}:  # on each row, no two labels overlap
        row = sorted((a for a in shown if a["yshift"] == shift), key=lambda a: a["x"])
        for left, right in itertools.pairwise(row):
            half_widths = (len(left["text"]) + len(right["text"])) * charts.LABEL_CHAR_PX / 2
            assert right["x"] - left["x"] > half_widths * per_px
    levels = len({a["yshift"] for a in shown})
    assert layout["margin"]["t"] == charts.MODEBAR_CLEAR_PX + charts.LABEL_ROW_PX * levels


def test_control_labels_late_in_a_run_are_judged_on_the_whole_axis() -> None:
    # Four changes within 30 of 3,000 steps: no room for four labels on two rows, though the
    # events alone span only 30 steps.
    rows = [{"step": s, "split": "train", "elbo": -100.0, "kl": 5.0} for s in range(0, 3000, 50)]
    steps = [2900, 2910, 2920, 2930]
    rows += [{"step": s, "event": "control", "beta": 2.0, "lr": 1e-3} for s in steps]
    layout = charts.curves_spec(summarize(rows))["layout"]
    shown = [a for a in layout["annotations"] if a.get("hovertext") and a["text"] != "▾"]
    assert len(shown) == charts.LABEL_LEVELS  # one per row; the rest on hover


def test_titles_sit_above_the_plot_clear_of_the_modebar() -> None:
    figures = {
        "kl": charts.kl_bar_spec([0.5, 0.0], [True, False])["layout"],
        "schedule": charts.schedule_spec(VIEW)["layout"],
        "pixels": charts.pixel_heatmap(np.zeros((4, 4)), "err").to_dict()["layout"],
    }
    for name, layout in figures.items():
        title = layout["title"]
        assert (title["x"], title["xanchor"], title["y"], title["yanchor"]) == (
            0,
            "left",
            1,
            "bottom",
        ), name
        assert title["yref"] == "paper" and layout["margin"]["t"] >= charts.MODEBAR_CLEAR_PX
    assert charts.curves_spec(VIEW)["layout"]["margin"]["t"] >= charts.MODEBAR_CLEAR_PX


def test_the_kl_bars_speak_of_grey_only_when_bars_are_grey() -> None:
    some = charts.kl_bar_spec([0.5, 0.001, 0.002], [True, False, False], threshold=0.01)
    greys = some["data"][0]["marker"]["color"].count(charts.INACTIVE_COLOR)
    assert greys == 2
    assert some["layout"]["title"]["text"] == (
        "KL per dimension: 1 of 3 active (grey: 2 collapsed below 0.01 nats)"
    )
    none = charts.kl_bar_spec([0.5, 0.7], [True, True], threshold=0.01)
    assert charts.INACTIVE_COLOR not in none["data"][0]["marker"]["color"]
    assert none["layout"]["title"]["text"] == "KL per dimension: 2 of 2 active"


def test_pandas_is_whole_before_any_figure_is_built() -> None:
    """Plotly's validators read pandas from sys.modules without importing it: a figure built
    while another thread is importing pandas met a half-made module (an exception in the
    page, seen with two sessions at once). Importing the charts imports pandas whole."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import explorer.charts\n"
        "assert hasattr(sys.modules['pandas'], 'Series'), 'pandas is not imported whole'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
