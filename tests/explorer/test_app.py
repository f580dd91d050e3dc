"""The explorer script under streamlit.testing's AppTest: each view's logic and bad input."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from explorer import projections, state

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture
def app(app_path: str):
    """Build and run the app, optionally with ?run=... in the URL."""

    def make(run: str | None = None, view: str | None = None, live: bool = True) -> AppTest:
        return _app(app_path, run, view, live)

    return make


def _app(
    app_path: str, run: str | None = None, view: str | None = None, live: bool = True
) -> AppTest:
    """`live=False` turns the live-drag component off: the st.slider fallback is drawn."""
    at = AppTest.from_file(app_path, default_timeout=60)
    at.session_state[state.SLIDERS_LIVE] = live
    if run is not None:
        at.query_params[state.RUN_PARAM] = run
    if view is not None:
        at.session_state[state.APP_VIEW] = view
    return at.run()


def _button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def _image_urls(at: AppTest, caption_start: str) -> list[str]:
    return [
        img.url
        for element in at.get("image")
        for img in element.proto.imgs
        if img.caption.startswith(caption_start)
    ]


def _latent_sliders(at: AppTest) -> list:
    return [s for s in at.slider if (s.key or "").startswith("sliders.dim.")]


def test_app_without_runs_explains_how_to_start(app, empty_runs_root) -> None:
    at = app()
    assert not at.exception
    assert any("press **Start**" in m.value for m in at.markdown)
    assert any(b.label == "Start" for b in at.button)


def test_bad_hyperparameters_show_an_error_and_start_nothing(app, empty_runs_root) -> None:
    at = app()
    next(n for n in at.number_input if n.label == "Learning rate").set_value(-1.0)
    _button(at, "Start").click().run()
    assert not at.exception
    assert any("Not started" in e.value and "lr must be" in e.value for e in at.error)
    assert not empty_runs_root.exists() or not any(empty_runs_root.iterdir())


def test_missing_image_folder_shows_an_error_and_starts_nothing(
    app, empty_runs_root, tmp_path
) -> None:
    at = app()
    next(s for s in at.selectbox if s.label == "Dataset").set_value("folder")
    next(t for t in at.text_input if t.label.startswith("Image folder")).input(
        str(tmp_path / "no-such-folder")
    )
    _button(at, "Start").click().run()
    assert not at.exception
    assert any("image folder not found" in e.value for e in at.error)
    assert not empty_runs_root.exists() or not any(empty_runs_root.iterdir())


def test_unknown_run_in_the_url_is_a_clear_error(app, empty_runs_root) -> None:
    at = app(run="/no/such/run")
    assert not at.exception
    assert any("not a run directory" in e.value for e in at.error)


def test_open_run_shows_readouts_curves_and_reconstructions(app, runs_root, run_name) -> None:
    at = app(run=run_name)
    assert not at.exception
    readouts = {m.label: m.value for m in at.metric}
    assert readouts["State"] == "finished"
    assert readouts["Step"].startswith("8")  # 512 images / batch 64, one epoch
    assert len(at.get("plotly_chart")) >= 2  # curves and per-dim KL (+ scatters)
    assert _image_urls(at, "Test images (top)")
    assert f"**{run_name}**: finished · epoch 1" in [c.value for c in at.sidebar.caption]


def test_one_slider_per_latent_dimension_in_kl_order(app, runs_root, run_name, latent_dim) -> None:
    at = app(run=run_name, view="Latent sliders", live=False)
    sliders = _latent_sliders(at)
    assert len(sliders) == latent_dim
    kl = [float(s.label.split("·")[1].split()[0]) if "nats" in s.label else 0.0 for s in sliders]
    assert kl == sorted(kl, reverse=True)


def test_moving_a_slider_changes_the_decoded_image(app, runs_root, run_name) -> None:
    at = app(run=run_name, view="Latent sliders", live=False)
    before = _image_urls(at, "decoded")
    _latent_sliders(at)[0].set_value(2.5).run()
    assert not at.exception
    after = _image_urls(at, "decoded")
    assert before and after and before != after


def test_random_and_reset_buttons_move_the_sliders(app, runs_root, run_name) -> None:
    at = app(run=run_name, view="Latent sliders", live=False)
    _button(at, "Random from prior").click().run()
    assert any(s.value != 0 for s in _latent_sliders(at))
    _button(at, "Reset to zero").click().run()
    assert all(s.value == 0 for s in _latent_sliders(at))


def test_selected_point_loads_its_code_into_the_sliders(
    app, runs_root, run_name, latent_dim
) -> None:
    at = app(run=run_name, view="Scatter")
    at.session_state[state.SCATTER_SELECTED] = 3
    at.run()
    assert any(m.value.startswith("**Test image #3**") for m in at.markdown)
    at.session_state[state.APP_VIEW] = "Latent sliders"
    at.run()
    _button(at, "From selected point").click().run()
    z = at.session_state[state.SLIDERS_Z]
    assert len(z) == latent_dim and any(v != 0 for v in z)
    assert not at.exception


def test_interpolation_builds_a_path_with_the_chosen_steps(
    app, runs_root, run_name, latent_dim
) -> None:
    at = app(run=run_name, view="Interpolation")
    next(s for s in at.slider if s.key == "interpolation.steps").set_value(5)
    next(r for r in at.radio if r.key == "interpolation.method").set_value("slerp")
    at.run()
    assert not at.exception
    saved = at.session_state[state.INTERP_PATH]
    path = np.asarray(saved["path"])
    assert path.shape == (5, latent_dim)
    assert _image_urls(at, "A → B")


def test_prior_samples_reseed_draws_new_samples(app, runs_root, run_name) -> None:
    at = app(run=run_name, view="Prior samples")
    before = _image_urls(at, "36 samples")
    _button(at, "Reseed").click().run()
    assert at.session_state[state.SAMPLES_SEED] == 1
    assert _image_urls(at, "36 samples") != before


def test_live_sliders_send_the_decoder_once_and_take_the_browsers_z(
    app, runs_root, run_name, latent_dim
) -> None:
    at = app(run=run_name, view="Latent sliders")
    (live,) = at.get("component_instance")
    args = json.loads(live.proto.json_args)
    spec = args["decoder"]
    weights = next(a.bytes for a in live.proto.special_args if a.key == "weights")
    assert spec["latent_dim"] == latent_dim and len(args["z"]) == latent_dim
    assert len(weights) == 4 * sum(size for _, size in spec["offsets"].values())  # float32
    assert not _latent_sliders(at)  # the st.slider fallback is not drawn

    z = [0.5, -1.0, 2.0, 0.0, 1.5][:latent_dim]
    at.session_state[state.SLIDERS_LIVE_WIDGET] = {"event": 1, "z": z}  # a browser release
    at.run()
    assert not at.exception
    assert at.session_state[state.SLIDERS_Z] == z
    (live,) = at.get("component_instance")
    args = json.loads(live.proto.json_args)
    assert args["decoder"] is None  # same snapshot version: weights not sent again
    assert args["z"] == z


def test_tsne_is_computed_in_the_background_then_replaces_pca(app, runs_root, run_name) -> None:
    at = app(run=run_name, view="Scatter")
    assert any("(PCA)" in c.value for c in at.caption)
    executor, _, _ = projections._jobs()
    gate = threading.Event()
    executor.submit(gate.wait, 60)  # hold the worker: the t-SNE job must queue behind it
    at.session_state[state.SCATTER_PROJECTION] = "t-SNE"
    at.run()
    assert any(i.value.startswith("Computing t-SNE") for i in at.info)
    assert any("(PCA)" in c.value for c in at.caption)  # the page did not wait for it
    gate.set()
    job = projections.tsne_job(str(runs_root / run_name))
    job.future.result(timeout=60)
    at.run()
    assert not at.exception and not at.info
    assert any("(t-SNE)" in c.value for c in at.caption)
    (scatter,) = [c for c in at.get("plotly_chart") if "t-SNE 1" in c.proto.spec]
    assert len(json.loads(scatter.proto.spec)["data"][0]["x"]) > 0
