"""explorer.runs: names, configs from the sidebar's choices, control, metrics reading."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from explorer import runs
from vae_core.process import kill_trainer, wait_for_state
from vae_core.rundir import RunDir

SHAPES = runs.RunChoices(dataset="shapes", latent_dim=3, epochs=1, image_size=28, num_samples=256)


def test_run_names_sort_by_time_and_never_collide(tmp_path: Path) -> None:
    now = time.mktime((2026, 11, 24, 19, 30, 0, 0, 0, -1))
    name = runs.new_run_name("shapes", "mlp", tmp_path, now)
    assert name == "20261124-193000-shapes-mlp"
    (tmp_path / name).mkdir()
    assert runs.new_run_name("shapes", "mlp", tmp_path, now) == f"{name}-2"


def test_runs_root_comes_from_the_environment(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv(runs.RUNS_ROOT_ENV, str(tmp_path))
    assert runs.runs_root() == tmp_path
    monkeypatch.delenv(runs.RUNS_ROOT_ENV)
    assert runs.runs_root() == Path("runs")


def test_choices_build_the_same_dataclasses_the_cli_builds() -> None:
    model_config, train_config = runs.build_configs(SHAPES)
    assert model_config.image_shape == (1, 28, 28)
    assert model_config.latent_dim == 3
    assert train_config.dataset_options == {"image_size": 28, "num_samples": 256}


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
        runs.build_configs(runs.RunChoices(dataset="folder", folder=str(tmp_path / "nope")))
    with pytest.raises(ValueError, match="needs the path"):
        runs.build_configs(runs.RunChoices(dataset="folder"))


def _fake_run(path: Path) -> RunDir:
    run = RunDir(path)
    run.write_config(*runs.build_configs(SHAPES))
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
    runs.apply_live(run, beta=4.0, lr=3e-4)
    runs.pause_run(run)
    control = run.read_control()
    assert control["command"] == "pause" and control["seq"] == 2
    with pytest.raises(ValueError):
        runs.apply_live(run, beta=-1.0, lr=1e-3)


def test_live_settings_fall_back_to_the_config(tmp_path: Path) -> None:
    run = _fake_run(tmp_path / "r")
    assert runs.live_settings(run) == (1.0, 1e-3)
    run.write_status("running", beta=2.0, lr=5e-4)
    assert runs.live_settings(run) == (2.0, 5e-4)


def test_metrics_log_reads_only_new_rows(tmp_path: Path) -> None:
    run = _fake_run(tmp_path / "r")
    log = runs.MetricsLog(run)
    run.log_metrics(step=1, split="train", kl_per_dim=[1.0, 0.0, 0.5])
    assert len(log.refresh()) == 1
    run.log_metrics(step=2, split="test", kl_per_dim=[2.0, 0.0, 0.1])
    rows = log.refresh()
    assert [r["step"] for r in rows] == [1, 2]
    assert log._reader.offset == run.metrics_path.stat().st_size
    assert runs.latest_kl_per_dim(rows) == [2.0, 0.0, 0.1]
    assert runs.latest_kl_per_dim([]) is None


def test_trainer_log_tail_keeps_the_last_redraw_of_progress_lines(tmp_path: Path) -> None:
    run = _fake_run(tmp_path / "r")
    run.log_path.write_text("start\n 10%|#\r 50%|###\r100%|#####\nValueError: boom\n")
    assert runs.trainer_log_tail(run) == "start\n100%|#####\nValueError: boom"


def test_status_of_a_run_without_status_is_starting(tmp_path: Path) -> None:
    run = _fake_run(tmp_path / "r")
    assert runs.display_state(run.read_status()) == "starting"
    run.write_status("finished")
    assert not runs.is_live(run.read_status())
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
