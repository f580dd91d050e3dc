"""Runs as a new user meets them in the sidebar: rename, delete (asks first, never a live
run), short names, the picker's state and parent, data that cannot load, a new run's view."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from explorer import access, runs, state
from vae_core import data
from vae_core.process import kill_trainer
from vae_core.run_errors import RunLocked
from vae_core.rundir import RunDir
from vae_core.runfolders import find_parent
from vae_core.status import STOPPED_BY_USER


def _run(path: Path, parent: RunDir | None = None) -> RunDir:
    run = RunDir(path)
    choices = runs.RunChoices(dataset="shapes", latent_dim=2, image_size=28, num_samples=256)
    link = {"run": str(parent.path), "step": 40, "id": parent.run_id()} if parent else None
    run.write_config(*runs.configs_from_choices(choices), parent=link)
    run.write_status("finished", step=90, reason=STOPPED_BY_USER)
    return run


def _picker(at: AppTest):
    (picker,) = [s for s in at.selectbox if s.key == "sidebar.run_select"]
    return picker


def _button(at: AppTest, key: str):
    (button,) = [b for b in at.button if b.key == key]
    return button


def test_rename_in_the_sidebar_keeps_the_forks_parent_and_opens_the_new_name(
    app, empty_runs_root
) -> None:
    parent = _run(empty_runs_root / "parent")
    fork = _run(empty_runs_root / "kid", parent=parent)
    _run(empty_runs_root / "other")
    at = app(
        run="parent", **{state.SIDEBAR_MANAGE_OPEN: True}
    )  # the Rename or delete popover, open
    options = _picker(at).proto.options
    # Newest first, the fork right under its parent, a state mark on each line.
    assert options == ["■ other", "■ parent", "└ ■ kid"]
    key = state.sub_key(state.SIDEBAR_RENAME_TO, "parent")
    next(t for t in at.text_input if t.key == key).input("fmnist-mlp-z10-b1-1")
    _button(at, "sidebar.rename").click().run()
    assert not at.exception and not at.error
    assert at.query_params[state.RUN_PARAM] == "fmnist-mlp-z10-b1-1"
    notice = access.plain("Renamed parent to fmnist-mlp-z10-b1-1")
    assert any(notice in s.value for s in at.success)
    assert at.session_state[state.SIDEBAR_MANAGE_OPEN] is False  # done: the popover closed
    assert not [t for t in at.text_input if (t.key or "").startswith(state.SIDEBAR_RENAME_TO)]
    assert find_parent(fork).path.name == "fmnist-mlp-z10-b1-1"
    assert _picker(at).proto.options[-1] == "└ ■ kid"  # still under its renamed parent
    at.query_params[state.RUN_PARAM] = "kid"
    at.run()
    said = "kid: stopped at step 90, forked from fmnist-mlp-z10-b1-1 at step 40"
    assert _picker(at).help.endswith(access.plain(said))  # the full line, on hover
    branch = access.plain("Forked from fmnist-mlp-z10-b1-1 at step 40")
    assert any(c.value == branch for c in at.caption)  # and under the picker


def test_attach_opens_the_run_says_so_and_closes_its_popover(
    app, empty_runs_root, tmp_path: Path
) -> None:
    outside = _run(tmp_path / "elsewhere" / "kept")
    at = app(**{state.SIDEBAR_ATTACH_OPEN: True})  # the Attach popover, open
    next(t for t in at.text_input if t.key == state.SIDEBAR_ATTACH_PATH).input(str(outside.path))
    _button(at, state.SIDEBAR_ATTACH).click().run()
    assert not at.exception and not at.error
    assert any(access.plain(f"Attached {outside.path}") in s.value for s in at.success)
    assert at.session_state[state.SIDEBAR_ATTACH_OPEN] is False
    assert not [t for t in at.text_input if t.key == state.SIDEBAR_ATTACH_PATH]
    assert _picker(at).value == runs.run_ref(outside)


def test_delete_asks_first_then_removes_the_run(app, empty_runs_root) -> None:
    _run(empty_runs_root / "doomed")
    at = app(
        run="doomed", **{state.SIDEBAR_MANAGE_OPEN: True}
    )  # the Rename or delete popover, open
    assert _button(at, "sidebar.delete").disabled  # not before the user confirms
    sure = state.sub_key(state.SIDEBAR_DELETE_SURE, "doomed")
    next(c for c in at.checkbox if c.key == sure).check().run()
    _button(at, "sidebar.delete").click().run()
    assert not at.exception and not at.error
    assert not (empty_runs_root / "doomed").exists()
    assert any("press **Start**" in m.value for m in at.markdown)  # nothing open now


def test_a_live_run_cannot_be_deleted_or_renamed(app, empty_runs_root) -> None:
    run = _run(empty_runs_root / "busy")
    with run.acquire_lock():  # a trainer holds it
        at = app(
            run="busy", **{state.SIDEBAR_MANAGE_OPEN: True}
        )  # the Rename or delete popover, open
        assert _button(at, "sidebar.delete").disabled and _button(at, "sidebar.rename").disabled
        assert any("stop it first" in c.value for c in at.caption)
        with pytest.raises(RunLocked):  # a hand-made event gets no further
            runs.delete(run)
    assert run.exists()


def test_start_gives_a_short_name_or_the_typed_one_and_opens_training(app, empty_runs_root) -> None:
    try:
        at = app(view="Scatter")
        next(s for s in at.selectbox if s.label == "Dataset").set_value("shapes").run()
        (epochs,) = [n for n in at.number_input if n.label == "Epochs"]
        epochs.set_value(1)
        next(n for n in at.number_input if n.label == "Shapes: images").set_value(256)
        at = next(b for b in at.button if b.label == "Start").click().run()
        assert not at.exception and not at.error
        assert at.query_params[state.RUN_PARAM] == "shapes-mlp-z10-b1-1"
        assert at.session_state[state.APP_VIEW] == "Training"
        kill_trainer(RunDir(empty_runs_root / "shapes-mlp-z10-b1-1"))
        at.session_state[state.APP_VIEW] = "Scatter"
        # Beside the run just opened, New run starts closed: open it.
        at.session_state[state.sub_key(state.SIDEBAR_NEW_RUN_OPEN, "run")] = True
        at.run()
        next(t for t in at.text_input if t.label == "Run name (optional)").input("mine")
        at = next(b for b in at.button if b.label == "Start").click().run()
        assert at.query_params[state.RUN_PARAM] == "mine"
        assert at.session_state[state.APP_VIEW] == "Training"
    finally:
        for child in empty_runs_root.iterdir():
            kill_trainer(RunDir(child))
        for process in list(runs._launches.values()):
            process.kill()
            process.wait(timeout=30)
        runs.reap_children()


def test_run_names_count_up_per_kind_of_run(tmp_path: Path) -> None:
    choices = runs.RunChoices(dataset="fashion-mnist", latent_dim=10, beta=0.5)
    assert runs.name_stem(choices) == "fmnist-mlp-z10-b0.5"
    assert runs.new_run_name("fmnist-mlp-z10-b0.5", tmp_path) == "fmnist-mlp-z10-b0.5-1"
    (tmp_path / "fmnist-mlp-z10-b0.5-3").mkdir()
    (tmp_path / "fmnist-mlp-z10-b0.5-3-fork-100").mkdir()
    assert runs.new_run_name("fmnist-mlp-z10-b0.5", tmp_path) == "fmnist-mlp-z10-b0.5-4"
    folder = runs.RunChoices(dataset="folder", folder="/data/My Faces!", architecture="conv")
    assert runs.name_stem(folder) == "My-Faces-conv-z10-b1"


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No MNIST on disk and no network: a download fails as it does offline."""
    monkeypatch.setenv("VAE_EXPLORER_DATA", str(tmp_path / "no-data"))

    def no_network(name, split, data_dir):
        raise data.DatasetUnavailable("MNIST is not on this machine and could not be downloaded")

    monkeypatch.setattr(data, "_download_idx", no_network)


def test_a_dataset_that_cannot_load_is_refused_before_a_run_exists(
    app, empty_runs_root, offline
) -> None:
    at = app()
    next(s for s in at.selectbox if s.label == "Dataset").set_value("mnist")
    at = next(b for b in at.button if b.label == "Start").click().run()
    assert not at.exception
    assert any(e.value.startswith("Not started: MNIST is not on this machine") for e in at.error)
    assert not empty_runs_root.exists() or not any(empty_runs_root.iterdir())


def test_a_run_failed_for_missing_data_is_not_offered_a_lower_lr(
    app, empty_runs_root, offline
) -> None:
    from vae_core.train import train

    run = RunDir(empty_runs_root / "no-data")
    choices = runs.RunChoices(dataset="mnist", lr=1e-3)
    with pytest.raises(data.DatasetUnavailable):
        train(*runs.configs_from_choices(choices), run)  # what the trainer process does
    assert run.read_status().failed_for_missing_data
    at = app(run="no-data")
    assert not at.exception
    (lr_input,) = [
        n for n in at.number_input if n.form_id == "training.resume_form" and n.label == "lr"
    ]
    assert lr_input.value == pytest.approx(1e-3)  # the lr was never the problem
    assert any("The data is missing" in i.value for i in at.info)


def test_a_fresh_run_waits_for_rows_and_a_stopped_run_says_where_it_stopped(
    app, empty_runs_root, live_charts_of
) -> None:
    run = _run(empty_runs_root / "fresh")
    run.write_status("running", step=2)
    run.log_metrics(step=2, epoch=0, split="train", elbo=-20.0, recon=18.0, kl=2.0, beta=1.0)
    with run.acquire_lock():  # its trainer lives
        at = app(run="fresh")
        assert any(i.value.startswith("Waiting for the first rows") for i in at.info)
        assert "curves" not in live_charts_of(at)
        run.log_metrics(step=4, epoch=0, split="train", elbo=-19.0, recon=17.0, kl=2.0, beta=1)
        at = app(run="fresh")
        assert "figure" in live_charts_of(at)["curves"]
    _run(empty_runs_root / "halted")  # stopped by the user at step 90, no rows
    at = app(run="halted")
    assert not at.exception
    assert dict(live_charts_of(at)["readouts"]["readouts"])["State"] == "stopped"
    assert any("stopped at step 90" in c.value for c in at.caption)  # the sidebar's line
    assert any(i.value.startswith("No curves") for i in at.info)  # none will come


def test_the_picker_nests_forks_of_forks_and_survives_a_parent_loop(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    top = _run(root / "top")
    kid = _run(root / "kid", parent=top)
    _run(root / "grandkid", parent=kid)
    tree = [(run.path.name, depth) for run, depth in runs.run_tree(root)]
    assert tree == [("top", 0), ("kid", 1), ("grandkid", 2)]
    assert runs.picker_label(RunDir(root / "grandkid"), 2) == "\u00a0\u00a0└ ■ grandkid"
    # Hand-edited configs naming each other as parents: each run is still listed once.
    a, b = _run(root / "a"), _run(root / "b")
    a.write_config(*a.read_config(), parent={"run": str(b.path), "step": 1, "id": b.run_id()})
    b.write_config(*b.read_config(), parent={"run": str(a.path), "step": 1, "id": a.run_id()})
    names = [run.path.name for run, _ in runs.run_tree(root)]
    assert sorted(names) == ["a", "b", "grandkid", "kid", "top"]


def test_at_the_trainer_limit_the_form_names_the_busy_runs_and_offers_stop_and_start(
    app, empty_runs_root, monkeypatch
) -> None:
    monkeypatch.setenv(runs.MAX_TRAINERS_ENV, "1")
    busy = _run(empty_runs_root / "busy-run")
    busy.write_status("running", step=1200)
    with runs.trainer_slot(empty_runs_root) as slot:  # a trainer of another app process
        runs._label_slot(slot, busy)
        holder = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(60)"], pass_fds=(slot,)
        )
    try:
        at = app()
        (warning,) = at.sidebar.warning  # in view before Start is pressed: right under it
        assert warning.value.startswith("All 1 trainer slots are busy")
        assert "busy\\-run" in warning.value and "step 1,200" in warning.value
        (which,) = [s for s in at.selectbox if s.key == state.SIDEBAR_STOP_WHICH]
        assert which.options == ["busy-run"]
        assert any(b.label == "Stop busy-run and start" for b in at.button)
        at = next(b for b in at.button if b.label == "Start").click().run()
        (warning,) = at.sidebar.warning  # Start's own result says the same, in place
        assert warning.value.startswith("Not started: all 1 trainer slots are busy")
        assert [p.name for p in empty_runs_root.iterdir() if not p.name.startswith(".")] == [
            "busy-run"
        ]
    finally:
        holder.kill()
        holder.wait()
    at = app()  # the slot is free again: no warning, Start starts
    assert not at.sidebar.warning
