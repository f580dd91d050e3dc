"""Where the data lives, in the app (AppTest): histograms on the slider tracks, range presets,
attribute-vector sliders and their file, the prior-hole map, aggregate-posterior samples."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from explorer import state
from vae_core.aggregate import unit
from vae_core.attributes import Attribute, read_attributes, save_attribute


@pytest.fixture
def run_copy(finished_run_root: Path, run_name: str, tmp_path: Path, monkeypatch) -> Path:
    """A writable copy of the finished run, alone in a runs root (attributes.json goes in it)."""
    root = tmp_path / "runs"
    shutil.copytree(finished_run_root / run_name, root / run_name)
    monkeypatch.setenv("VAE_EXPLORER_RUNS", str(root))
    return root / run_name


def _open(run: Path, view: str, live: bool = False, panel_open: bool = True) -> AppTest:
    at = AppTest.from_file(
        str(Path(__file__).resolve().parents[2] / "explorer" / "page.py"), default_timeout=60
    )
    at.session_state[state.SLIDERS_LIVE] = live
    at.session_state[state.ATTRIBUTES_OPEN] = panel_open
    at.query_params[state.RUN_PARAM] = run.name
    at.session_state[state.APP_VIEW] = view
    return at.run()


def _button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def _svg_tracks(at: AppTest) -> int:
    """How many slider-track histograms (SVG images) the page shows."""
    return sum(1 for e in at.get("image") for i in e.proto.imgs if "svg" in i.url)


def test_fallback_sliders_show_histograms_and_take_the_data_range(run_copy, latent_dim) -> None:
    at = _open(run_copy, "Latent sliders")
    assert not at.exception
    assert _svg_tracks(at) == latent_dim
    dims = [s for s in at.slider if (s.key or "").startswith("sliders.dim.")]
    assert {(s.min, s.max) for s in dims} == {(-3.0, 3.0)}
    at.segmented_control(key=state.SLIDERS_RANGE).set_value("Data 1–99 %").run()
    assert not at.exception
    dims = [s for s in at.slider if (s.key or "").startswith("sliders.dim.")]
    assert all(-6 < s.min < 0 < s.max < 6 for s in dims)
    assert {(s.min, s.max) for s in dims} != {(-3.0, 3.0)}  # each dim its own quantiles
    assert any(m.value.startswith((":blue-badge", ":red-badge")) for m in at.markdown)


def test_the_panel_computes_nothing_until_it_is_opened(run_copy) -> None:
    at = _open(run_copy, "Latent sliders", panel_open=False)
    assert not at.exception
    assert not any(m.label == "AUC" for m in at.metric)
    assert not at.get("plotly_chart")  # no loadings chart drawn for a closed panel
    at.session_state[state.ATTRIBUTES_OPEN] = True  # what opening it in the browser sets
    at.run()
    assert any(m.label == "AUC" for m in at.metric)
    assert len(at.get("plotly_chart")) == 1


def test_an_attribute_vector_becomes_a_slider_that_moves_z_along_it(run_copy, latent_dim) -> None:
    at = _open(run_copy, "Latent sliders")
    assert any(m.label == "AUC" for m in at.metric)  # two classes picked by default
    at.text_input(key=state.ATTRIBUTES_NAME).set_value("shape <b>0→1</b>")
    _button(at, "Add slider").click().run()
    assert not at.exception
    (attr,) = [s for s in at.slider if (s.key or "").startswith("sliders.attr.")]
    assert attr.label == "shape <b>0→1</b>"
    assert _svg_tracks(at) == latent_dim + 1
    v = unit(at.session_state[state.SLIDERS_ATTRIBUTES][1]["shape <b>0→1</b>"].vector)
    before = np.asarray(at.session_state[state.SLIDERS_Z])
    attr.set_value(1.5).run()
    assert not at.exception
    moved = np.asarray(at.session_state[state.SLIDERS_Z]) - before
    assert np.linalg.norm(moved) > 0.5
    np.testing.assert_allclose(moved / np.linalg.norm(moved), v, atol=0.02)  # along v only
    assert float(np.asarray(at.session_state[state.SLIDERS_Z]) @ v) == pytest.approx(1.5, abs=0.03)


def test_saved_attributes_come_back_and_bad_ones_are_one_line_each(
    run_copy, latent_dim, components_of
) -> None:
    at = _open(run_copy, "Latent sliders")
    at.text_input(key=state.ATTRIBUTES_NAME).set_value("kept")
    _button(at, "Add and save with the run").click().run()
    assert list(read_attributes(run_copy)) == ["kept"]
    save_attribute(run_copy, Attribute("too long", (1.0,) * (latent_dim + 2)))
    at = _open(run_copy, "Latent sliders", live=True)  # a new session, live sliders
    assert not at.exception
    (live,) = components_of(at, "live_sliders")
    args = json.loads(live.proto.json_args)
    assert [a["name"] for a in args["attributes"]] == ["kept"]
    assert len(args["histograms"]["q"]) == latent_dim
    assert any("too long" in w.value and "refused" in w.value for w in at.warning)

    (run_copy / "attributes.json").write_text('{"attributes": {"x": {"vector": [1, NaN]}}}')
    at = _open(run_copy, "Latent sliders")
    assert not at.exception
    (warning,) = at.warning
    assert "finite numbers" in warning.value and "\n" not in warning.value
    assert not [s for s in at.slider if (s.key or "").startswith("sliders.attr.")]


def test_scatter_groups_make_an_attribute_and_the_hole_map_shades_the_plane(run_copy) -> None:
    at = _open(run_copy, "Scatter")
    (fig,) = at.get("plotly_chart")
    assert not [t for t in json.loads(fig.proto.spec)["data"] if t["type"] == "heatmap"]
    at.toggle(key=state.SCATTER_HOLES).set_value(True).run()
    assert not at.exception
    (fig,) = at.get("plotly_chart")
    traces = json.loads(fig.proto.spec)["data"]
    assert traces[0]["type"] == "heatmap"  # underneath the points
    z = traces[0]["z"]  # plotly sends arrays as {"dtype", "bdata" (base64), "shape"}
    log_ratio = np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"])
    assert log_ratio.max() > 0 > log_ratio.min()  # both data and prior holes in view

    # a lasso around some points, then another (what remember_group keeps): groups A and B
    for group, indices in (("A", range(0, 40)), ("B", range(40, 80))):
        at.session_state[state.SCATTER_GROUP] = (str(run_copy), tuple(indices))
        at.run()
        _button(at, f"Use as group {group}").click().run()
    at.session_state[state.APP_VIEW] = "Latent sliders"
    at.run()
    at.segmented_control(key="attributes.mode").set_value("Scatter selection").run()
    assert any("Group A: 40 points, group B: 40 points" in c.value for c in at.caption)
    assert any(m.label == "AUC" for m in at.metric)


def test_prior_and_aggregate_posterior_samples_side_by_side(run_copy) -> None:
    at = _open(run_copy, "Prior samples")
    assert not at.exception
    captions = [i.caption for e in at.get("image") for i in e.proto.imgs]
    assert any(c.startswith("36 samples") for c in captions)
    assert any(c.startswith("the same noise") for c in captions)
    assert any("Aggregate posterior" in m.value for m in at.markdown)


def _selection_script() -> None:
    import streamlit as st

    from explorer.panels import attributes

    st.session_state["kept"] = [
        attributes.remember_group("run", selection) for selection in st.session_state["sel"]
    ]


def test_box_and_lasso_selections_are_groups_and_a_click_is_not() -> None:
    at = AppTest.from_function(_selection_script, default_timeout=30)
    click = {"points": [{"customdata": 7}], "box": [], "lasso": []}
    lasso = {"points": [{"customdata": [3]}, {"customdata": 5}, {}], "box": [], "lasso": [{}]}
    at.session_state["sel"] = [click, lasso]
    at.run()
    assert at.session_state["kept"] == [False, True]
    assert at.session_state[state.SCATTER_GROUP] == ("run", (3, 5))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"attributes": {"x": {"vector": [1' + "0" * 400 + "]}}}", "finite numbers"),
        ('{"attributes": {"x": {"vector": [1e300, 1e300, 1, 1, 1]}}}', "too long"),
    ],
    ids=["deep-nesting", "huge-int", "norm-overflow"],
)
def test_a_damaged_attributes_file_is_one_line_and_the_sliders_keep_working(
    run_copy, latent_dim, text, message
) -> None:
    (run_copy / "attributes.json").write_text(text)
    at = _open(run_copy, "Latent sliders")
    assert not at.exception, at.exception
    (warning,) = at.warning
    assert message in warning.value and "\n" not in warning.value
    dims = [s for s in at.slider if (s.key or "").startswith("sliders.dim.")]
    assert len(dims) == latent_dim


def test_saved_groups_beyond_the_test_set_are_refused_in_one_line(run_copy, latent_dim) -> None:
    save_attribute(run_copy, Attribute("far", (1.0,) * latent_dim, group_a=(0,), group_b=(10**9,)))
    save_attribute(run_copy, Attribute("near", (1.0,) * latent_dim, group_a=(0,), group_b=(1,)))
    at = _open(run_copy, "Latent sliders")
    assert not at.exception, at.exception
    assert any("'far' names test images beyond" in w.value.replace("\\", "") for w in at.warning)
    attrs = [s.label for s in at.slider if (s.key or "").startswith("sliders.attr.")]
    assert attrs == ["near"]
