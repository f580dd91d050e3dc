"""explorer.runs: names, configs from the sidebar's choices, control, metrics reading."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import pytest

from explorer import runs
from vae_core.config import ModelCard, ModelConfig
from vae_core.control import NoTrainer
from vae_core.metrics_log import MetricsLog
from vae_core.process import kill_trainer, start_training, wait_for_state
from vae_core.rundir import RunDir
from vae_core.runfolders import MAX_NAME_CHARS, check_run_name

SHAPES = runs.RunChoices(dataset="shapes", latent_dim=3, epochs=1, image_size=28, num_samples=256)


def test_run_names_are_short_and_never_collide(tmp_path: Path) -> None:
    name = runs.new_run_name(runs.name_stem(SHAPES), tmp_path)
    assert name == "shapes-mlp-z3-b1-1"
    (tmp_path / name).mkdir()
    assert runs.claim_new_run(tmp_path, name).path == tmp_path / f"{name}-2"


def test_racing_claims_of_one_name_each_get_their_own_folder(tmp_path: Path) -> None:
    claimed: list[Path] = []
    barrier = threading.Barrier(8)

    def claim() -> None:
        barrier.wait()  # all eight press Start at the same moment
        claimed.append(runs.claim_new_run(tmp_path, "same-second").path)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(claimed)) == 8 and all(p.is_dir() for p in claimed)


def test_runs_root_comes_from_the_environment(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv(runs.RUNS_ROOT_ENV, str(tmp_path))
    assert runs.runs_root() == tmp_path
    monkeypatch.delenv(runs.RUNS_ROOT_ENV)
    assert runs.runs_root() == Path("runs")


def test_choices_build_the_same_dataclasses_the_cli_builds() -> None:
    model_config, train_config = runs.configs_from_choices(SHAPES)
    assert model_config.image_shape == (1, 28, 28)
    assert model_config.latent_dim == 3
    assert train_config.dataset_options == {"image_size": 28, "num_samples": 256}
    assert train_config.num_threads == max(1, os.cpu_count() - 1)  # one core for the UI


@pytest.mark.parametrize(
    ("change", "message"),
    [({"lr": -1.0}, "lr must be"), ({"batch_size": 0}, "batch_size"), ({"epochs": 0}, "epochs")],
)
def test_impossible_hyperparameters_raise_before_anything_is_written(
    tmp_path: Path, change: dict, message: str
) -> None:
    choices = runs.RunChoices(**{**SHAPES.__dict__, **change})
    with pytest.raises(ValueError, match=message):
        runs.start_run(choices, tmp_path / "root")
    assert not (tmp_path / "root").exists()


def test_missing_folder_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not found"):
        runs.configs_from_choices(runs.RunChoices(dataset="folder", folder=str(tmp_path / "nope")))
    with pytest.raises(ValueError, match="needs the path"):
        runs.configs_from_choices(runs.RunChoices(dataset="folder"))


def _fake_run(path: Path) -> RunDir:
    run = RunDir(path)
    run.write_config(*runs.configs_from_choices(SHAPES))
    return run


def test_resolve_run_by_name_or_path(tmp_path: Path) -> None:
    run = _fake_run(tmp_path / "a-run")
    assert runs.resolve_run("a-run", tmp_path).path == run.path
    assert runs.resolve_run(str(run.path), tmp_path / "elsewhere").path == run.path
    assert runs.resolve_run("missing", tmp_path) is None
    assert runs.run_ref(run, tmp_path) == "a-run"
    assert runs.run_ref(run, tmp_path / "elsewhere") == str(run.path.resolve())
    assert runs.run_names(tmp_path) == ["a-run"]


def test_live_changes_are_written_to_control_json(tmp_path: Path) -> None:
    run = _fake_run(tmp_path / "r")
    with run.acquire_lock():  # a trainer holds the run
        runs.apply_live(run, beta=4.0, lr=3e-4)
        runs.pause_run(run)  # before the trainer read the change: both travel together
        control = run.read_control()
        assert control["command"] == "pause" and control["set"] == {"beta": 4.0, "lr": 3e-4}
        for beta, lr in ((-1.0, 1e-3), (float("nan"), 1e-3), (1.0, float("inf")), (1.0, 2.0)):
            with pytest.raises(ValueError, match="must be a finite number in"):
                runs.apply_live(run, beta=beta, lr=lr)
    assert run.read_control() == control


def test_commands_to_a_run_no_trainer_runs_are_refused_like_the_cli(tmp_path: Path) -> None:
    run = _fake_run(tmp_path / "r")
    run.write_status("finished")
    for send in (runs.pause_run, runs.stop_run, lambda r: runs.apply_live(r, 2.0, 1e-3)):
        with pytest.raises(NoTrainer, match=r"no trainer is running .* \(it is finished\)"):
            send(run)
    with pytest.raises(NoTrainer):
        runs.apply_fix(run, {"beta": 2.0})
    assert not run.control_path.exists()


def test_live_settings_fall_back_to_the_config(tmp_path: Path) -> None:
    run = _fake_run(tmp_path / "r")
    in_force = runs.live_settings(run)
    assert (in_force.beta, in_force.lr) == (1.0, 1e-3)
    run.write_status("running", beta=2.0, lr=5e-4)
    in_force = runs.live_settings(run)
    assert (in_force.beta, in_force.lr) == (2.0, 5e-4)


def test_metrics_log_reads_only_new_rows(tmp_path: Path) -> None:
    run = _fake_run(tmp_path / "r")
    log = MetricsLog(run.metrics_path)
    run.log_metrics(step=1, split="train", kl_per_dim=[1.0, 0.0, 0.5])
    assert log.refresh().num_rows == 1
    run.log_metrics(step=2, split="test", kl_per_dim=[2.0, 0.0, 0.1])
    view = log.refresh()
    assert [r["step"] for r in view.latest_rows] == [1, 2]
    assert log._reader.offset == run.metrics_path.stat().st_size
    assert view.latest_kl_per_dim == (2.0, 0.0, 0.1)


def test_trainer_log_tail_keeps_the_last_redraw_of_progress_lines(tmp_path: Path) -> None:
    run = _fake_run(tmp_path / "r")
    run.log_path.write_text("start\n 10%|#\r 50%|###\r100%|#####\nValueError: boom\n")
    assert runs.trainer_log_tail(run) == "start\n100%|#####\nValueError: boom"


def test_a_run_no_trainer_wrote_to_is_dead_and_resumable_unless_locked(tmp_path: Path) -> None:
    run = _fake_run(tmp_path / "r")
    status = runs.run_status(run)
    assert status.display_state == "dead" and status.is_resumable
    with run.acquire_lock():  # a CLI trainer between its lock and its first status write
        assert runs.run_status(run).is_live
    run.write_status("finished")
    assert not runs.run_status(run).is_live
    assert json.loads(run.status_path.read_text())["state"] == "finished"


@pytest.mark.slow
def test_start_run_launches_a_trainer_that_finishes(tmp_path: Path) -> None:
    run = runs.start_run(SHAPES, tmp_path)
    try:
        assert wait_for_state(run, {"finished", "failed"}, timeout_s=90) == "finished"
    finally:
        kill_trainer(run)
    runs.reap_children()
    assert run.snapshot_version() > 0


@pytest.mark.slow
def test_start_writes_nothing_a_trainer_writes_and_shows_starting_until_it_does(
    tmp_path: Path,
) -> None:
    run = runs.start_run(SHAPES, tmp_path)
    process = runs._launch_of(run)
    try:
        # The launch claimed the folder and opened trainer.log, nothing else: the child is
        # still importing torch, and config.json and status.json are the trainer's to write.
        assert sorted(p.name for p in run.path.iterdir()) == ["trainer.log"]
        status = runs.run_status(run)
        assert status.display_state == "starting" and status.is_live and status.pid == process.pid
        assert runs.open_run(run.path.name, root=tmp_path).path == run.path  # no config yet
        runs.stop_run(run)  # obeyed: sent after the launch, while the trainer starts
        assert process.wait(timeout=120) == 0
    finally:
        kill_trainer(run)
    status = run.read_status()
    assert status.pid == process.pid and status.stopped_by_user
    assert run.read_config() == runs.configs_from_choices(SHAPES)
    runs.reap_children()
    assert runs._launch_of(run) is None


@pytest.mark.slow
def test_a_fork_is_built_and_trained_by_its_trainer_child_the_app_writes_only_its_log(
    finished_run_root: Path, run_name: str, tmp_path: Path
) -> None:
    from vae_core import history

    shutil.copytree(finished_run_root / run_name, tmp_path / run_name, ignore=_no_lock)
    parent = RunDir(tmp_path / run_name)
    step = history.list_points(parent)[0].step
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(ValueError, match="neither the history nor the checkpoints"):
        runs.fork_and_start(parent, step + 1, {"epochs": 2}, root=tmp_path)
    with pytest.raises(ValueError, match="a fork can change"):
        runs.fork_and_start(parent, step, {"latent_dim": 2}, root=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # refused: nothing launched
    (tmp_path / f"{run_name}-fork-{step}").mkdir()  # another tab's claim of the name
    fork = runs.fork_and_start(parent, step, {"beta": 0.0, "epochs": 2}, root=tmp_path)
    process = runs._launch_of(fork)
    try:
        assert fork.path.name == f"{run_name}-fork-{step}-2"
        # The app claimed the folder and opened trainer.log; the child builds the rest.
        assert sorted(p.name for p in fork.path.iterdir()) == ["trainer.log"]
        assert runs.run_status(fork).display_state == "starting"
        assert wait_for_state(fork, {"finished", "failed"}, timeout_s=120) == "finished"
    finally:
        kill_trainer(fork)
    assert process.wait(timeout=60) == 0
    assert fork.read_status().pid == process.pid  # status.json is the trainer's
    assert fork.read_parent() == {"run": str(parent.path), "step": step, "id": parent.run_id()}
    assert fork.read_config()[1].beta == 0.0 and fork.read_config()[1].epochs == 2
    assert not list(tmp_path.glob(".*fork*"))  # no temp folder beside it
    runs.reap_children()


def _no_lock(_folder: str, names: list[str]) -> list[str]:
    return [n for n in names if n == "lock"]


@pytest.mark.slow
def test_a_trainer_that_dies_before_its_first_status_says_why_in_one_line(tmp_path: Path) -> None:
    # The trainer refuses this model before it takes the run's lock: it writes nothing.
    card = ModelCard(
        source="mypkg.vae:VAE", latent_shape=(3,), not_trainable="its decoder has no gradient"
    )
    model_config = ModelConfig(
        architecture="imported", image_shape=(1, 28, 28), latent_dim=3, card=card
    )
    train_config = runs.configs_from_choices(SHAPES)[1]
    path = tmp_path / "imported"
    run = runs._remember(path, start_training(model_config, train_config, path))
    assert runs._launch_of(run).wait(timeout=120) == 2
    runs.reap_children()  # kept: its failure is all there is to show
    status = runs.run_status(run)
    assert status.display_state == "failed" and not status.is_live
    why = "this imported model can be explored, not trained: its decoder has no gradient"
    assert status.reason == f"the trainer exited before it started (exit code 2): {why}"
    assert sorted(p.name for p in run.path.iterdir()) == ["trainer.log"]
    runs._launches.clear()  # a fresh app process: the folder alone says what happened
    with pytest.raises(ValueError, match=r"^imported did not start: the trainer exited before"):
        runs.open_run("imported", root=tmp_path)


def test_new_run_choices_carry_the_kl_schedule_and_free_bits_into_the_config() -> None:
    choices = runs.RunChoices(
        dataset="shapes",
        image_size=28,
        beta=4.0,
        beta_schedule="cyclical",
        warmup_steps=400,
        free_bits=0.25,
    )
    _, train_config = runs.configs_from_choices(choices)
    assert (train_config.beta_schedule, train_config.warmup_steps) == ("cyclical", 400)
    assert train_config.free_bits == 0.25 and train_config.beta == 4.0
    with pytest.raises(ValueError, match="free_bits"):
        runs.configs_from_choices(runs.RunChoices(dataset="shapes", free_bits=-1.0))


def test_apply_fix_sends_one_live_change(tmp_path) -> None:
    run = RunDir(tmp_path / "run")
    with run.acquire_lock():
        runs.apply_fix(run, {"beta_schedule": "linear", "warmup_steps": 1000})
        assert run.read_control()["set"] == {"beta_schedule": "linear", "warmup_steps": 1000}
        with pytest.raises(ValueError):
            runs.apply_fix(run, {"epochs": 3})
        with pytest.raises(ValueError, match="at least 10 steps, got 3"):
            runs.apply_fix(run, {"beta_schedule": "cyclical", "warmup_steps": 3})


@pytest.mark.parametrize("ref", ["a" * 5000, "/" + "a/" * 2500, "../" * 1700])
def test_a_long_run_link_is_shortened_in_the_refusal(tmp_path: Path, ref: str) -> None:
    for refuse in (
        lambda: runs.open_run(ref, root=tmp_path),
        lambda: runs.attach_run(ref, root=tmp_path),
    ):
        with pytest.raises(ValueError, match="is not a run directory") as caught:
            refuse()
        message = str(caught.value)
        assert len(message) < 300 + len(str(tmp_path))
        assert f"({len(ref):,} characters)" in message and ref[:40] in message


def test_a_short_run_link_is_shown_whole() -> None:
    assert runs.shown_ref("20261124-193000-shapes-mlp") == "20261124-193000-shapes-mlp"


LONG = runs.RunChoices(dataset="shapes", latent_dim=3, epochs=200, image_size=28, num_samples=256)


def test_at_the_limit_the_slot_holders_are_named_and_one_can_be_stopped_for_a_new_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(runs.MAX_TRAINERS_ENV, "1")
    root = tmp_path / "runs"
    busy = runs.start_run(LONG, root)
    started: list[RunDir] = [busy]
    try:
        assert wait_for_state(busy, {"running"}, timeout_s=90) == "running"
        assert [r.path for r in runs.slot_holders(root)] == [busy.path.resolve()]
        with pytest.raises(RuntimeError, match="trainers already running"):
            runs.start_run(SHAPES, root)
        with pytest.raises(ValueError, match="epochs"):  # refused before anything stops
            runs.stop_and_start(busy, runs.RunChoices(dataset="shapes", epochs=0), root)
        assert busy.read_status().state == "running"
        new = runs.stop_and_start(busy, SHAPES, root)
        started.append(new)
        status = busy.read_status()
        assert status.state == "finished" and status.stopped_by_user  # resumable later
        assert [r.path for r in runs.slot_holders(root)] == [new.path.resolve()]
        assert new.path.name == "shapes-mlp-z3-b1-2" and runs.running_trainers(root) == 1
    finally:
        for run in started:
            kill_trainer(run)
        for process in list(runs._launches.values()):
            process.wait(timeout=30)
        runs.reap_children()


def test_a_fork_of_a_fork_names_its_root_run_and_stays_a_valid_name() -> None:
    assert runs.fork_name("fmnist-mlp-z10-b1-3", 700) == "fmnist-mlp-z10-b1-3-fork-700"
    # Forked again and again (the soak's chain outgrew a file name: Errno 36).
    name = "shapes-mlp-z4-b1-1"
    for step in range(100, 3000, 100):
        name = runs.fork_name(name, step)
    assert name == "shapes-mlp-z4-b1-1-fork-2900"
    assert runs.fork_name("shapes-1-fork-100-2", 200) == "shapes-1-fork-200"  # a taken name's -2
    long = runs.fork_name("x" * 200, 123456789)
    assert len(long) + len("-999") <= MAX_NAME_CHARS and long.endswith("-fork-123456789")
    check_run_name(long)
