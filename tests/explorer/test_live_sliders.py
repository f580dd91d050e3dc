"""explorer.components.live_sliders: when weights are sent, what comes back, argument checks."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from explorer.components import live_sliders
from vae_core.config import ModelConfig
from vae_core.export import onnx_decoder
from vae_core.models import VAE


def test_weights_are_sent_on_first_render_and_on_a_new_version_only() -> None:
    memo: dict = {}
    assert live_sliders._weights_needed(memo, None, "1")
    memo["sent_version"] = "1"
    assert not live_sliders._weights_needed(memo, {"request": None}, "1")
    assert live_sliders._weights_needed(memo, None, "2")


def test_a_browser_request_for_weights_is_served_once() -> None:
    memo = {"sent_version": "1"}
    value = {"z": [0.0], "event": None, "request": "abc:w1"}
    assert live_sliders._weights_needed(memo, value, "1")
    live_sliders._weights_sent(memo, value, "1")
    assert not live_sliders._weights_needed(memo, value, "1")  # same request: already served
    assert live_sliders._weights_needed(memo, {**value, "request": "abc:w2"}, "1")


def test_weights_count_as_sent_only_once_their_message_went_out() -> None:
    # A run cut short by a rerun request never calls _weights_sent: the next run sends again.
    memo: dict = {}
    assert live_sliders._weights_needed(memo, None, "1")
    assert live_sliders._weights_needed(memo, None, "1")
    live_sliders._weights_sent(memo, None, "1")
    assert not live_sliders._weights_needed(memo, None, "1")
    assert live_sliders._weights_needed(memo, None, "2")


def test_a_user_change_is_returned_until_a_run_has_delivered_it() -> None:
    memo: dict = {}
    value = {"z": [0.5, -1.0], "event": "abc:1", "request": None}
    assert live_sliders._new_user_z(memo, None) is None
    assert live_sliders._new_user_z(memo, value) == [0.5, -1.0]
    assert live_sliders._new_user_z(memo, value) == [0.5, -1.0]  # that run was cut short
    memo["seen_event"] = "abc:1"  # as live_sliders() records once its message went out
    assert live_sliders._new_user_z(memo, value) is None
    assert live_sliders._new_user_z(memo, {**value, "event": "abc:2"}) == [0.5, -1.0]


def test_a_weights_request_alone_is_not_a_user_change() -> None:
    assert live_sliders._new_user_z({}, {"z": [0.0], "event": None, "request": "abc:w1"}) is None


@pytest.mark.parametrize(
    ("z", "kl", "order", "message"),
    [
        ([0.0] * 3, None, None, "z has 3 values"),
        ([0.0] * 2, [1.0], None, "kl_per_dim has 1 values"),
        ([0.0] * 2, None, [0, 0], "permutation"),
    ],
)
def test_arguments_that_do_not_fit_the_decoder_are_refused(z, kl, order, message) -> None:
    with pytest.raises(ValueError, match=message):
        live_sliders._check_args(2, z, kl, order)


def test_frontend_files_ship_with_the_package() -> None:
    assert live_sliders.is_available()


def _app() -> None:
    import streamlit as st

    from explorer.components.live_sliders import live_sliders

    decoder = st.session_state["decoder"]
    reported = live_sliders(decoder, [0.0] * decoder.latent_dim, key="live")
    st.text(f"reported: {reported}")


def test_component_renders_without_a_browser_and_reports_nothing() -> None:
    app = AppTest.from_function(_app)
    app.session_state["decoder"] = onnx_decoder(VAE(ModelConfig(latent_dim=2, hidden_dim=8)))
    app.run(timeout=30)
    assert not app.exception
    assert app.text[0].value == "reported: None"


def test_histograms_and_attributes_that_do_not_fit_the_latent_are_refused() -> None:
    tracks = {"ranges": [[-3, 3]] * 2, "q": [[0.1] * 4] * 2, "p": [[0.1] * 4] * 2}
    live_sliders._check_tracks(2, tracks, [{"name": "a", "direction": [0.6, 0.8]}])
    with pytest.raises(ValueError, match="histograms need 3 rows"):
        live_sliders._check_tracks(3, tracks, [])
    with pytest.raises(ValueError, match="attribute 'a' has 2 values"):
        live_sliders._check_tracks(3, None, [{"name": "a", "direction": [0.6, 0.8]}])


def _blocker_app() -> None:
    import streamlit as st

    from explorer.components.live_sliders import live_sliders_blocker

    st.text(f"blocker: {live_sliders_blocker(st.session_state['decoder'], key='live')}")


def _blocker(app: AppTest, decoder, browser_report=None) -> str:
    app.session_state["decoder"] = decoder
    if browser_report is not None:
        app.session_state["live"] = browser_report  # what the component reported last run
    app.run(timeout=30)
    assert not app.exception
    return app.text[0].value.removeprefix("blocker: ")


def test_a_decoder_that_failed_to_export_blocks_live_sliders_with_its_reason() -> None:
    app = AppTest.from_function(_blocker_app)
    assert _blocker(app, "cannot export the decoder to ONNX: UnsupportedOperatorError: x") == (
        "cannot export the decoder to ONNX: UnsupportedOperatorError: x"
    )


def test_a_graph_the_browser_rejected_stays_blocked_for_later_snapshots_only() -> None:
    model = VAE(ModelConfig(latent_dim=2, hidden_dim=8))
    first = onnx_decoder(model, version=1)
    app = AppTest.from_function(_blocker_app)
    assert _blocker(app, first) == "None"
    report = {"z": [0.0, 0.0], "event": None, "error": "no kernel for Foo", "signature": "x"}
    report["signature"] = first.signature
    assert _blocker(app, first, report) == "the browser cannot run this decoder (no kernel for Foo)"
    newer = onnx_decoder(model, version=2)  # the next snapshot: same graph
    assert "no kernel for Foo" in _blocker(app, newer)
    other = onnx_decoder(VAE(ModelConfig(latent_dim=2, hidden_dim=9)), version=3)
    assert _blocker(app, other) == "None"


def test_without_onnx_runtime_web_installed_live_sliders_says_so(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(live_sliders, "ORT_DIR", tmp_path)
    assert not live_sliders.ort_installed()
    decoder = onnx_decoder(VAE(ModelConfig(latent_dim=2, hidden_dim=8)))
    assert _blocker(AppTest.from_function(_blocker_app), decoder) == live_sliders.NO_ORT


def test_onnx_runtime_web_is_installed_here() -> None:
    """`make setup` ran npm ci: the page's runtime files are on disk, not on a CDN."""
    assert live_sliders.ort_installed(), live_sliders.NO_ORT
