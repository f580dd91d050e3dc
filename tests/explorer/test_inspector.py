"""The Inspect image and Disentanglement views under AppTest, and the interpolation's "Your
image" endpoint: picking, metrics and table, uploads good and bad, the MI heat map."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from explorer import charts, state
from explorer.components.canvas import new_drawing

OWN = "Your own image"


def _button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def _figures(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def _array(value) -> np.ndarray:
    """A figure JSON array: a plain list, or plotly's typed {"dtype", "bdata", "shape"}."""
    if not isinstance(value, dict):
        return np.asarray(value)
    flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
    shape = [int(n) for n in str(value.get("shape", len(flat))).split(",")]
    return flat.reshape(shape)


def _trace_names(at: AppTest) -> set[str]:
    return {trace.get("name") for fig in _figures(at) for trace in fig["data"]}


def _png(size: tuple[int, int] = (40, 30), mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, 200 if mode == "L" else (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def _upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.file_uploader(key=state.OWN_UPLOAD).set_value((name, data, "image/png"))
    return at.run()


def test_a_test_image_shows_its_elbo_terms_and_dimension_table(
    app, runs_root, run_name, latent_dim
) -> None:
    at = app(run_name, "Inspect image")
    assert not at.exception
    metrics = {m.label: float(m.value) for m in at.metric}
    elbo = metrics["ELBO (nats)"]
    recon, kl = metrics["Reconstruction −log p(x|z=μ)"], metrics["KL(q(z|x) ‖ p(z))"]
    assert elbo == pytest.approx(-(recon + kl), abs=0.02) and kl >= 0
    assert any("z = μ for the reconstruction term" in c.value for c in at.caption)
    (table,) = at.dataframe
    assert len(table.value) == latent_dim
    assert {"μ", "σ", "KL, this image (nats)", "collapsed"} <= set(table.value.columns)
    assert at.session_state[state.SCATTER_SELECTED] == 0  # inspected = selected
    assert any("Test image #0" in m.value for m in at.markdown)
    at.run()
    assert {m.label: float(m.value) for m in at.metric}["ELBO (nats)"] == elbo  # no flicker


def test_index_random_and_scatter_selection_pick_the_same_image(app, runs_root, run_name) -> None:
    at = app(run_name, "Inspect image")
    at.number_input(key=state.INSPECT_INDEX).set_value(7).run()
    assert any("Test image #7" in m.value for m in at.markdown)
    assert at.session_state[state.SCATTER_SELECTED] == 7
    _button(at, "Random test image").click().run()
    picked = at.session_state[state.SCATTER_SELECTED]
    assert any(f"Test image #{picked}" in m.value for m in at.markdown)
    at.session_state[state.SCATTER_SELECTED] = 11  # what a click on the scatter does
    at.run()
    assert at.number_input(key=state.INSPECT_INDEX).value == 11
    at.session_state[state.APP_VIEW] = "Scatter"
    at.run()
    assert not at.exception and "inspected #11" in _trace_names(at)


def test_open_in_sliders_moves_the_sliders_to_mu(app, runs_root, run_name) -> None:
    at = app(run_name, "Inspect image", **{state.SCATTER_SELECTED: 4})
    mu = at.dataframe[0].value["μ"].to_numpy()
    _button(at, "Open in sliders").click().run()
    assert not at.exception
    assert at.session_state[state.APP_VIEW] == "Latent sliders"
    np.testing.assert_allclose(at.session_state[state.SLIDERS_Z], mu, rtol=1e-6)


def test_an_upload_is_converted_inspected_sampled_and_placed(app, runs_root, run_name) -> None:
    at = app(run_name, "Inspect image", **{state.INSPECT_MODE: OWN})
    assert any("Upload a PNG or JPEG, or draw" in i.value for i in at.info)
    at = _upload(at, "red.png", _png())
    assert not at.exception and not at.error
    notes = " ".join(c.value for c in at.caption)
    assert "converted RGB → grayscale to match the run's 1 channel" in notes
    assert "resized 40×30 → 28×28" in notes
    assert any("decodes of z ~ q(z|x)" in c.value for c in at.caption)
    assert sum(len(e.proto.imgs) for e in at.get("image")) >= 2 + 8  # input, recon, K samples
    assert {"your image", "your image: 1σ"} <= _trace_names(at)
    # the same point on the Scatter view, and as an interpolation endpoint
    at.session_state[state.APP_VIEW] = "Scatter"
    at.run()
    assert {"your image", "your image: 1σ"} <= _trace_names(at)
    at.session_state[state.APP_VIEW] = "Interpolation"
    at.run()
    at.radio(key="interpolation.source.A").set_value(state.OWN_SOURCE).run()
    assert not at.exception
    assert any(c.value == "its posterior mean μ" for c in at.caption)


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("notes.png", b"this is text, not a picture", "not an image"),
        ("cut.png", _png((1, 1), "L")[:20], "truncated or damaged"),
    ],
)
def test_a_bad_upload_shows_one_message_and_nothing_else(
    app, runs_root, run_name, name, data, message
) -> None:
    at = app(run_name, "Inspect image", **{state.INSPECT_MODE: OWN})
    at = _upload(at, name, data)
    assert not at.exception
    (error,) = at.error
    text = error.value.replace("\\", "")  # markdown escapes of the plain-text message
    assert text.startswith("Upload refused:") and message in text
    assert not at.metric and not at.get("plotly_chart")


def test_a_good_upload_after_a_bad_one_clears_the_message(app, runs_root, run_name) -> None:
    at = app(run_name, "Inspect image", **{state.INSPECT_MODE: OWN})
    at = _upload(at, "bad.png", b"nope")
    assert at.error
    at = _upload(at, "good.png", _png((28, 28), "L"))
    assert not at.error and at.metric


def test_the_mi_heat_map_is_computed_on_demand_and_opens_a_dimension(
    app, runs_root, run_name, latent_dim
) -> None:
    at = app(run_name, "Disentanglement")
    assert not at.exception and not at.metric
    _button(at, "Compute MIG").click().run()
    assert not at.exception
    mig = float(next(m.value for m in at.metric if m.label == "MIG"))
    assert 0.0 <= mig <= 1.0
    (fig,) = _figures(at)
    heat = fig["data"][0]
    assert heat["type"] == "heatmap" and _array(heat["z"]).shape == (5, latent_dim)
    cells = _array(fig["data"][1]["customdata"])  # one clickable marker per cell: its dim
    np.testing.assert_array_equal(cells, np.tile(np.arange(latent_dim), 5))
    at.selectbox(key="disentanglement.dim").set_value(2).run()
    _button(at, "Open in sliders").click().run()
    assert not at.exception
    assert at.session_state[state.APP_VIEW] == "Latent sliders"
    assert at.session_state[state.SLIDERS_TRAVERSAL_DIMS] == [2]
    assert any("rows: z2" in img.caption for e in at.get("image") for img in e.proto.imgs)
    at.toggle(key=state.SLIDERS_LIVE).set_value(False).run()  # the server-side grid
    dims = [s.key for s in at.slider if (s.key or "").startswith("sliders.dim.")]
    assert dims[0] == "sliders.dim.2"  # the picked dimension leads


def test_a_drawing_is_reported_once_per_stroke() -> None:
    memo: dict = {}
    stroke = {"event": "abc:1", "png": "data:image/png;base64,AAAA"}
    assert new_drawing(memo, None) == (False, None)
    assert new_drawing(memo, stroke) == (True, stroke["png"])
    assert new_drawing(memo, stroke) == (False, None)  # the same report again
    assert new_drawing(memo, {"event": "abc:2", "png": None}) == (True, None)  # Clear


def test_disentanglement_without_factors_is_a_one_line_note(
    app, runs_root, run_name, monkeypatch
) -> None:
    from types import SimpleNamespace

    from explorer import cache

    mnist = SimpleNamespace(info=SimpleNamespace(name="mnist", factor_names=()))
    monkeypatch.setattr(cache, "test_data", lambda run_path: mnist)
    at = app(run_name, "Disentanglement")
    assert not at.exception
    notes = [c.value for c in at.caption if "ground-truth factors" in c.value]
    assert len(notes) == 1 and "this run uses mnist" in notes[0]
    assert not any(b.label == "Compute MIG" for b in at.button)


def test_the_mi_heat_map_greys_inactive_dimensions_and_calls_their_mi_bias(
    app, runs_root, run_name, latent_dim
) -> None:
    at = app(run_name, "Disentanglement", **{state.TRAINING_ACTIVE_THRESHOLD: 0.0})
    _button(at, "Compute MIG").click().run()
    (fig,) = _figures(at)
    assert not [s for s in fig["layout"].get("shapes", []) if s.get("fillcolor")]
    assert not any("estimator" in c.value for c in at.caption)  # every dim is active
    at.session_state[state.TRAINING_ACTIVE_THRESHOLD] = 1e6  # now every dim is inactive
    at.run()
    (fig,) = _figures(at)
    greys = [s for s in fig["layout"]["shapes"] if s.get("fillcolor") == charts.INACTIVE_COLOR]
    assert sorted(s["x0"] + 0.5 for s in greys) == list(range(latent_dim))
    assert all("off" in t for t in fig["layout"]["xaxis"]["ticktext"])
    assert all("estimator bias" in h for h in fig["data"][1]["hovertext"])
    (note,) = [c.value for c in at.caption if "estimator" in c.value]
    assert note.startswith("Grey: inactive dimensions (z0, z1")


def _pen_drawing(size: int = 28) -> bytes:
    """A dark stroke on white, as drawn on paper: the opposite of MNIST and shapes."""
    pixels = np.full((size, size), 255, np.uint8)
    pixels[6:22, 12:16] = 0
    buffer = io.BytesIO()
    Image.fromarray(pixels, "L").save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_dark_on_white_upload_is_inverted_by_default_and_says_so(
    app, runs_root, run_name
) -> None:
    at = app(run_name, "Inspect image", **{state.INSPECT_MODE: OWN})
    at = _upload(at, "pen.png", _pen_drawing())
    assert not at.exception and not at.error
    own = at.session_state[state.OWN_IMAGE]
    assert own["inverted"] and own["as_taken"][0, 0, 0] == 255  # the paper, as uploaded
    np.testing.assert_array_equal(own["pixels"], 255 - own["as_taken"])
    assert own["pixels"][0, 0, 0] == 0 and own["pixels"][0, 14, 13] == 255  # white on black
    (toggle,) = [t for t in at.toggle if t.label == "Invert"]
    assert toggle.value is True
    assert any(
        "dark on light; this run's images are light on dark: inverted it" in c.value
        for c in at.caption
    )
    before = [m.value for m in at.metric]
    toggle.set_value(False).run()  # undo: encoded as uploaded
    own = at.session_state[state.OWN_IMAGE]
    np.testing.assert_array_equal(own["pixels"], own["as_taken"])
    assert any("it is encoded as it is" in c.value for c in at.caption)
    assert [m.value for m in at.metric] != before  # another input, other ELBO terms


def test_an_upload_with_the_datas_polarity_is_taken_as_it_is(app, runs_root, run_name) -> None:
    at = app(run_name, "Inspect image", **{state.INSPECT_MODE: OWN})
    drawing = 255 - np.asarray(Image.open(io.BytesIO(_pen_drawing())))  # white on black
    buffer = io.BytesIO()
    Image.fromarray(drawing.astype(np.uint8), "L").save(buffer, format="PNG")
    at = _upload(at, "chalk.png", buffer.getvalue())
    own = at.session_state[state.OWN_IMAGE]
    assert not own["inverted"] and own["as_taken"] is None
    assert not [t for t in at.toggle if t.label == "Invert"]
