"""The explorer script under streamlit.testing's AppTest: each view's logic and bad input."""

from __future__ import annotations

import json
import threading

import numpy as np
import onnx
import pytest
from streamlit.testing.v1 import AppTest

from explorer import access, cache, projections, runs, state
from vae_core.catalog import MAX_SHAPES_IMAGES
from vae_core.config import BETA_RANGE, LR_RANGE, MAX_BATCH_SIZE, MAX_EPOCHS, MAX_LATENT_DIM
from vae_core.export import ExportError
from vae_core.process import wait_for_state
from vae_core.rundir import RunDir


def _new_run_open(with_run: bool) -> str:
    """The session key that opens the New run expander (one for the first page, one beside
    an open run)."""
    return state.sub_key(state.SIDEBAR_NEW_RUN_OPEN, "run" if with_run else "none")


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


def test_new_run_widgets_take_their_limits_from_the_config(app, empty_runs_root) -> None:
    at = app()
    bounds = {n.label: (n.min, n.max) for n in at.number_input}
    assert bounds["Learning rate"] == LR_RANGE and bounds["beta"] == BETA_RANGE
    assert bounds["Epochs"] == (1, MAX_EPOCHS) and bounds["Batch size"] == (1, MAX_BATCH_SIZE)
    assert bounds["Latent size"] == (1, MAX_LATENT_DIM)
    assert "Shapes: images" not in bounds  # another dataset's field
    next(s for s in at.selectbox if s.label == "Dataset").set_value("shapes").run()
    bounds = {n.label: (n.min, n.max) for n in at.number_input}
    assert bounds["Shapes: images"][1] == MAX_SHAPES_IMAGES


def test_new_run_form_shows_only_the_chosen_datasets_fields(app, empty_runs_root) -> None:
    at = app()
    dataset = next(s for s in at.selectbox if s.label == "Dataset")
    fields = {"Image folder", "Image size", "Shapes: images"}

    def shown() -> set[str]:
        return {w.label for w in [*at.text_input, *at.selectbox, *at.number_input]} & fields

    dataset.set_value("fashion-mnist").run()
    assert shown() == set()
    next(s for s in at.selectbox if s.label == "Dataset").set_value("shapes").run()
    assert shown() == {"Image size", "Shapes: images"}
    next(s for s in at.selectbox if s.label == "Dataset").set_value("folder").run()
    assert shown() == {"Image folder", "Image size"}


def test_missing_image_folder_shows_an_error_and_starts_nothing(
    app, empty_runs_root, tmp_path
) -> None:
    at = app()
    next(s for s in at.selectbox if s.label == "Dataset").set_value("folder").run()
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


def test_the_step_readout_groups_thousands_and_gives_the_total() -> None:
    from explorer.views.training import _readouts
    from vae_core.status import Status

    readouts = dict(_readouts(Status(state="running", step=1180, total_steps=4_690_000)))
    assert readouts["Step"] == "1,180 / 4,690,000"
    assert dict(_readouts(Status(state="running", step=7)))["Step"] == "7"  # no total known


def test_open_run_shows_readouts_curves_and_reconstructions(
    app, runs_root, run_name, live_charts_of
) -> None:
    at = app(run=run_name)
    assert not at.exception
    ops = live_charts_of(at)
    readouts = dict(ops["readouts"]["readouts"])
    assert readouts["State"] == "finished"
    assert readouts["Step"].startswith("8")  # 512 images / batch 64, one epoch
    assert "figure" in ops["curves"] and "figure" in ops["kl"]
    assert ops["recon"]["image"]["caption"].startswith("Test images (top)")
    assert ops["recon"]["image"]["src"].startswith("data:image/png;base64,")
    assert f"**{access.plain(run_name)}**: finished · epoch 1" in [
        c.value for c in at.sidebar.caption
    ]


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
    app, runs_root, run_name, latent_dim, components_of
) -> None:
    at = app(run=run_name, view="Latent sliders")
    (live,) = components_of(at, "live_sliders")
    args = json.loads(live.proto.json_args)
    spec = args["decoder"]
    model = next(a.bytes for a in live.proto.special_args if a.key == "model")
    assert spec["latent_dim"] == latent_dim and len(args["z"]) == latent_dim
    assert len(model) == spec["num_bytes"]
    assert [i.name for i in onnx.load_from_string(model).graph.input] == ["z"]
    assert not _latent_sliders(at)  # the st.slider fallback is not drawn

    z = [0.5, -1.0, 2.0, 0.0, 1.5][:latent_dim]
    at.session_state[state.SLIDERS_LIVE_WIDGET] = {"event": 1, "z": z}  # a browser release
    at.run()
    assert not at.exception
    assert at.session_state[state.SLIDERS_Z] == z
    (live,) = components_of(at, "live_sliders")
    args = json.loads(live.proto.json_args)
    assert args["decoder"] is None  # same snapshot version: the model is not sent again
    assert args["z"] == z


def test_a_decoder_that_cannot_export_gets_server_sliders_and_one_line_why(
    app, runs_root, run_name, latent_dim, monkeypatch, components_of
) -> None:
    def refuse(*args, **kwargs):
        raise ExportError("cannot export the decoder to ONNX: UnsupportedOperatorError: aten::x")

    monkeypatch.setattr(cache, "onnx_decoder", refuse)
    cache.decoder_onnx.clear()  # an earlier test may have cached this version's export
    try:
        at = app(run=run_name, view="Latent sliders")
        assert not at.exception
        assert not components_of(at, "live_sliders")  # no live-drag component...
        assert len(_latent_sliders(at)) == latent_dim  # ...the server-side sliders instead
        (line,) = [c.value for c in at.caption if c.value.startswith("Live drag is off")]
        shown = line.replace("\\", "")  # as rendered: access.plain escapes Markdown
        assert "UnsupportedOperatorError: aten::x" in shown and "\n" not in line
    finally:
        cache.decoder_onnx.clear()


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
    job = projections.job(str(runs_root / run_name), "tsne")
    job.future.result(timeout=60)
    at.run()
    assert not at.exception and not at.info
    assert any("(t-SNE)" in c.value for c in at.caption)
    (scatter,) = [c for c in at.get("plotly_chart") if "t-SNE 1" in c.proto.spec]
    assert len(json.loads(scatter.proto.spec)["data"][0]["x"]) > 0


# -- an app that only its user can drive --
SIDEBAR_CONTROLS = ("Pause", "Resume", "Stop", "Apply live")


def _served_remotely(monkeypatch, **opt_ins: str) -> access.Policy:
    """As if started with --server.address 0.0.0.0, with the operator's opt-ins."""
    monkeypatch.setattr(access, "server_address", lambda: "0.0.0.0")
    for name, value in opt_ins.items():
        monkeypatch.setenv(name, value)
    return access.current()


def _fake_run(path) -> RunDir:
    run = RunDir(path)
    choices = runs.RunChoices(dataset="shapes", latent_dim=2, image_size=28, num_samples=256)
    run.write_config(*runs.configs_from_choices(choices))
    return run


def _attach(at: AppTest, path: str) -> AppTest:
    at.session_state[state.SIDEBAR_ATTACH_OPEN] = True  # the popover, opened
    at.run()
    next(t for t in at.text_input if t.key == "sidebar.attach_path").input(path)
    return next(b for b in at.button if b.key == "sidebar.attach").click().run()


@pytest.mark.parametrize(
    "ref", ["[x](http://evil)", "![img](http://evil/x.png)", "../../etc", "/etc", "www.evil.com"]
)
def test_a_hostile_run_in_the_url_is_refused_and_shown_as_text(app, runs_root, ref) -> None:
    at = app(run=ref)
    assert not at.exception
    (error,) = at.error
    assert "not a run directory" in error.value and access.plain(ref) in error.value
    assert "](" not in error.value and "http://" not in error.value
    assert any("press **Start**" in m.value for m in at.markdown)  # no run was opened


def test_a_failure_reason_from_the_run_is_shown_as_text(app, empty_runs_root) -> None:
    run = _fake_run(empty_runs_root / "failed-run")
    reason = "RuntimeError: ![img](http://evil/x.png) [click](https://evil)"
    run.write_status("failed", reason=reason)
    at = app(run="failed-run")
    assert not at.exception
    (error,) = [e for e in at.error if e.value.startswith("Training")]
    assert error.value.endswith(access.plain(reason))
    assert "![img](" not in error.value and "](https://" not in error.value


def test_a_torchrun_run_shows_its_processes_backend_and_precision(app, empty_runs_root) -> None:
    run = _fake_run(empty_runs_root / "ddp-run")
    placement = {"world_size": 2, "backend": "gloo", "device": "cpu", "precision": "bf16"}
    run.write_status("finished", step=40, epoch=1, **placement)
    at = app(run="ddp-run")
    assert not at.exception
    captions = [c.value for c in at.caption]
    assert access.plain("Trained by 2 processes (torchrun, gloo) on cpu, bf16") + "." in captions
    sidebar = [c.value for c in at.sidebar.caption]
    assert f"**ddp\\-run**: {access.plain('finished, 2 processes')} · epoch 1" in sidebar


def test_a_run_caching_its_dataset_shows_a_progress_bar(app, empty_runs_root) -> None:
    run = _fake_run(empty_runs_root / "caching-run")
    run.write_status("starting", caching=[50_000, 200_000])  # this pid: a live trainer
    at = app(run="caching-run")
    assert not at.exception
    (bar,) = at.get("progress")
    assert bar.proto.value == 25
    assert "50,000 / 200,000 images" in bar.proto.text


def test_served_remotely_nothing_can_start_or_control_a_trainer(
    app, runs_root, run_name, monkeypatch
) -> None:
    policy = _served_remotely(monkeypatch)
    at = app(run=run_name, view="Prior samples", **{_new_run_open(with_run=True): True})
    assert not at.exception
    assert _button(at, "Start").disabled
    for label in SIDEBAR_CONTROLS:
        assert _button(at, label).disabled, label
    captions = [c.value for c in at.sidebar.caption]
    assert access.plain(policy.train_refusal) in captions  # says why, and what turns it on
    assert access.REMOTE_TRAIN_ENV in policy.train_refusal


def test_served_remotely_the_operator_can_allow_training(app, empty_runs_root, monkeypatch) -> None:
    _served_remotely(monkeypatch, **{access.REMOTE_TRAIN_ENV: "1"})
    at = app()
    assert not _button(at, "Start").disabled
    assert not any(access.REMOTE_TRAIN_ENV in c.value for c in at.sidebar.caption)


def test_served_remotely_an_image_folder_outside_the_allow_list_is_refused(
    app, empty_runs_root, monkeypatch, tmp_path
) -> None:
    allowed = tmp_path / "shared-images"
    _served_remotely(
        monkeypatch, **{access.REMOTE_TRAIN_ENV: "1", access.IMAGE_FOLDERS_ENV: str(allowed)}
    )
    at = app()
    next(s for s in at.selectbox if s.label == "Dataset").set_value("folder").run()
    next(t for t in at.text_input if t.label.startswith("Image folder")).input(str(tmp_path))
    _button(at, "Start").click().run()
    assert not at.exception
    (error,) = at.error
    assert error.value.startswith("Not started") and "Image folder not allowed" in error.value
    assert not empty_runs_root.exists() or not any(empty_runs_root.iterdir())


def test_served_remotely_attach_outside_the_root_is_refused(
    app, runs_root, monkeypatch, tmp_path
) -> None:
    outside = _fake_run(tmp_path / "outside")
    _served_remotely(monkeypatch)
    at = _attach(app(), str(outside.path))
    assert not at.exception
    assert any(access.plain(access.REMOTE_ATTACH_ENV) in e.value for e in at.error)
    assert state.RUN_PARAM not in at.query_params
    assert state.SIDEBAR_ATTACHED not in at.session_state


def test_a_run_attached_here_opens_by_url_only_in_this_session(app, runs_root, tmp_path) -> None:
    outside = _fake_run(tmp_path / "outside")
    at = _attach(app(view="Prior samples"), str(outside.path))
    ref = str(outside.path.resolve())
    assert not at.exception and not at.error
    assert at.query_params[state.RUN_PARAM] == ref
    assert at.session_state[state.SIDEBAR_ATTACHED] == (ref,)
    other = app(run=ref, view="Prior samples")  # the same link in another browser session
    assert any("nor one attached" in e.value for e in other.error)


def _copy_run(runs_root, run_name, root, name: str) -> RunDir:
    import shutil

    shutil.copytree(runs_root / run_name, root / name)
    return RunDir(root / name)


DAMAGE = {
    "status.json": b'{"state": "running", "step": "many"}',
    "control.json": b"\xff\xfe",
    "config.json": b"[1, 2]",
    "snapshot.safetensors": (40).to_bytes(8, "little") + b'{"__metadata__": ["v"]}'.ljust(40),
}


@pytest.mark.parametrize("name", list(DAMAGE))
@pytest.mark.parametrize("view", ["Training", "Latent sliders", "Scatter", "Prior samples"])
def test_a_damaged_run_gives_one_message_and_leaves_other_runs_alone(
    app, runs_root, run_name, empty_runs_root, name, view
) -> None:
    good = _copy_run(runs_root, run_name, empty_runs_root, "good")
    bad = _copy_run(runs_root, run_name, empty_runs_root, "bad")
    (bad.path / name).write_bytes(DAMAGE[name])
    at = app(run="bad", view=view)
    assert not at.exception
    messages = [e.value for e in at.error]
    if name == "control.json":  # only the trainer reads it; the app has nothing to show
        assert messages == []
    else:
        assert messages and all(
            m.startswith(access.plain(f"run bad is damaged: {name}: ")) for m in messages
        )
    assert good.exists()
    at = app(run="good", view=view)
    assert not at.exception and not at.error


@pytest.mark.slow
def test_a_failed_run_is_offered_a_lower_lr_and_resumes_with_it(
    app, runs_root, run_name, empty_runs_root
) -> None:
    run = _copy_run(runs_root, run_name, empty_runs_root, "diverged")
    reason = "loss became NaN/inf at step 8 (10 steps in a row); resume with a lower lr"
    run.write_status("failed", reason=reason, beta=1.0, lr=1e-3)
    at = app(run="diverged")
    (lr_input,) = [
        n for n in at.number_input if n.form_id == "training.resume_form" and n.label == "lr"
    ]
    assert lr_input.value == pytest.approx(1e-4)  # ten times lower, offered
    _button(at, "Resume training").click().run()
    assert not at.exception and not at.error
    wait_for_state(run, {"finished"}, timeout_s=90)  # the run had one epoch left: none
    status = run.read_status()
    assert status.lr == pytest.approx(1e-4) and status.step > 0
    runs.reap_children()


# -- "what am I looking at" and the gradient-variance panel --
@pytest.mark.parametrize(
    ("view", "phrases"),
    [
        ("Training", ("E_q[log p(x|z)] − KL(q(z|x) ‖ p(z))", "summed over pixels", "nats")),
        ("Latent sliders", ("N(0, I)", "Bernoulli probabilities", "nats, averaged")),
        ("Scatter", ("posterior mean μ(x)", "PCA")),
        ("Interpolation", ("slerp", "√D")),
        ("Prior samples", ("N(0, T² I)", "β = 0")),
    ],
)
def test_each_view_explains_its_quantity_in_a_popover(
    app, runs_root, run_name, view, phrases
) -> None:
    at = app(run=run_name, view=view, live=False)
    assert not at.exception
    (closed,) = [p for p in at.get("popover") if p.proto.popover.label == "What am I looking at?"]
    assert not closed.markdown  # drawn only once opened
    at.session_state[state.sub_key(state.HELP_OPEN, view)] = True  # what a click sets
    at.run()
    (popover,) = [p for p in at.get("popover") if p.proto.popover.label == "What am I looking at?"]
    text = " ".join(m.value for m in popover.markdown)
    assert all(phrase in text for phrase in phrases), text


def test_gradient_variance_button_measures_the_current_snapshot(app, runs_root, run_name) -> None:
    at = app(run=run_name, **{state.TRAINING_GRADVAR_OPEN: True})
    version = RunDir(runs_root / run_name).snapshot_version()
    _button(at, f"Measure on snapshot v{version}").click().run()
    assert not at.exception
    readouts = {m.label: m for m in at.metric}
    variances = [
        float(readouts[label].value)
        for label in ("Reparameterisation", "Score function", "Score function + baseline")
    ]
    assert 0 < variances[0] < variances[1]
    assert readouts["Score function"].proto.delta.endswith("× reparam.")
    path, measured_version, summary = at.session_state[state.TRAINING_GRADVAR]
    assert path == str(runs_root / run_name) and measured_version == version
    assert summary["samples"] == 100
    assert any(c.value.startswith("Why it matters") for c in at.caption)


def test_the_run_picker_follows_a_run_opened_by_url_or_start(app, runs_root, run_name) -> None:
    at = app(run=run_name)
    (picker,) = [s for s in at.selectbox if s.key == "sidebar.run_select"]
    assert picker.value == run_name
    at.query_params[state.RUN_PARAM] = ""  # e.g. the run was closed elsewhere
    at.run()
    at.query_params[state.RUN_PARAM] = run_name
    at.run()
    (picker,) = [s for s in at.selectbox if s.key == "sidebar.run_select"]
    assert picker.value == run_name and not at.exception and not at.warning
