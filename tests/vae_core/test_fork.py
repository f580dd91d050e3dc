"""vae_core.fork: branch a run at a step; same weights at the branch, steps continue."""

from __future__ import annotations

import json
import re

import pytest
import torch

from vae_core import fork as fork_module
from vae_core import history
from vae_core.checkpoint import load_checkpoint
from vae_core.config import ModelConfig
from vae_core.fork import check_fork, fork_run
from vae_core.models import VAE
from vae_core.process import RunFolderTaken, RunInsideRun
from vae_core.run_errors import RunDamaged
from vae_core.rundir import RunDir
from vae_core.train import train

from .test_history import tiny_configs


@pytest.fixture(scope="module")
def parent(tmp_path_factory) -> RunDir:
    run = RunDir(tmp_path_factory.mktemp("fork") / "parent")
    train(*tiny_configs(epochs=2), run)
    return run


def test_a_fork_starts_from_the_parents_weights_and_continues_its_steps(parent, tmp_path):
    point = history.list_points(parent)[3]  # a mid-run history point
    fork = fork_run(parent, tmp_path / "fork", point.step, beta=0.0, epochs=3)
    start = load_checkpoint(fork.latest_checkpoint())
    weights = history.load_weights(point)
    assert start.step == point.step
    assert all(torch.equal(start.model_state[k], weights[k]) for k in weights)
    config = json.loads(fork.config_path.read_text())
    link = {"run": str(parent.path), "step": point.step, "id": parent.run_id()}
    assert config["parent"] == link and len(link["id"]) == 32
    model_config, train_config = fork.read_config()
    assert train_config.beta == 0.0 and model_config == parent.read_config()[0]
    summary = train(model_config, train_config, fork, resume=True)
    steps = [r["step"] for r in fork.read_metrics() if r.get("split") == "train"]
    assert min(steps) > point.step and summary["step"] > point.step
    assert fork.read_parent() == config["parent"]  # kept when the trainer rewrites config


def test_a_fork_of_a_checkpoint_with_unchanged_settings_reproduces_the_parent(parent, tmp_path):
    fork = fork_run(parent, tmp_path / "same", step=32)  # the checkpoint at epoch 1's end
    a = load_checkpoint(parent.checkpoint_dir / "step-000000032.safetensors")
    b = load_checkpoint(fork.latest_checkpoint())
    assert a.step == b.step
    for name in a.model_state:
        torch.testing.assert_close(a.model_state[name], b.model_state[name], rtol=0, atol=0)
    assert b.optimizer_state["state"].keys() == a.optimizer_state["state"].keys()


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ({"step": 7}, ValueError, "step 7 is in neither the history nor the checkpoints"),
        ({"step": None, "lr": float("nan")}, ValueError, "lr must be a finite number"),
        ({"step": None, "hidden_dim": 3}, ValueError, "a fork can change"),
        ({"step": None}, ValueError, "the fork starts in epoch 2: give it --epochs above"),
    ],
)
def test_bad_fork_input_creates_nothing(parent, tmp_path, args, error, message):
    with pytest.raises(error, match=message):
        fork_run(parent, tmp_path / "new", **args)
    assert not (tmp_path / "new").exists()


def test_a_fork_into_an_existing_folder_or_from_a_non_run_is_refused(parent, tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(RunFolderTaken, match="already exists"):
        fork_run(parent, tmp_path / "taken")
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        fork_run(RunDir(tmp_path / "taken"), tmp_path / "new")
    assert not (tmp_path / "new").exists() and list((tmp_path / "taken").iterdir()) == []


def _foreign_weights_in_history(parent: RunDir, tmp_path) -> int:
    """A history file of another model (other hidden size) copied into the parent's history."""
    other = VAE(ModelConfig(image_shape=(1, 28, 28), latent_dim=3, hidden_dim=8))
    step = history.list_points(parent)[-1].step + 1
    history.save_point(parent, other, step, epoch=1, test_elbo=-1.0)
    return step


def test_weights_that_do_not_fit_the_model_are_damaged_and_create_nothing(tmp_path_factory):
    parent = RunDir(tmp_path_factory.mktemp("foreign") / "parent")
    train(*tiny_configs(epochs=1), parent)
    new = parent.path.parent / "fork"
    step = _foreign_weights_in_history(parent, tmp_path_factory)
    with pytest.raises(RunDamaged) as damaged:
        fork_run(parent, new, step, epochs=3)
    message = str(damaged.value)
    assert "\n" not in message and f"history/step-{step:09d}.safetensors" in message
    assert "do not fit this run's model" in message and "size mismatch" in message
    assert sorted(p.name for p in parent.path.parent.iterdir()) == ["parent"]  # nothing made


def test_a_fork_failing_midway_leaves_no_folder_behind(parent, tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fork_module, "save_start_checkpoint", full)
    with pytest.raises(OSError, match="No space left"):
        fork_run(parent, tmp_path / "fork", epochs=3)
    assert list(tmp_path.iterdir()) == []  # no half-made fork, no temp folder


def test_a_fork_into_a_claimed_folder_builds_there_and_a_failure_keeps_only_the_log(
    parent, tmp_path, monkeypatch
):
    claimed = tmp_path / "claimed"
    claimed.mkdir()
    (claimed / "trainer.log").write_text("")  # the launcher's (process.start_fork)
    fork = fork_run(parent, claimed, claimed=True, epochs=3)
    built = sorted(p.name for p in claimed.iterdir())
    assert built == ["checkpoints", "config.json", "trainer.log"]
    assert fork.read_parent()["step"] == check_fork(parent, epochs=3).step
    with pytest.raises(RunFolderTaken):  # a run now: never built over
        fork_run(parent, claimed, claimed=True, epochs=3)

    def full(run, *args, **kwargs):
        run.checkpoint_dir.mkdir()
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fork_module, "save_start_checkpoint", full)
    failed = tmp_path / "failed"
    failed.mkdir()
    (failed / "trainer.log").write_text("")
    with pytest.raises(OSError, match="No space left"):
        fork_run(parent, failed, claimed=True, epochs=3)
    assert sorted(p.name for p in failed.iterdir()) == ["trainer.log"]  # its error line's home


@pytest.mark.parametrize("below", ["checkpoints/fork", "history/fork", "deeper/still/fork"])
def test_a_fork_inside_a_run_is_refused(parent, below):
    before = sorted(parent.path.rglob("*"))
    with pytest.raises(RunInsideRun, match=re.escape(f"inside the run {parent.path}")):
        fork_run(parent, parent.path / below, epochs=3)
    assert sorted(parent.path.rglob("*")) == before


def test_steps_come_from_the_header_not_the_file_name(tmp_path):
    run = RunDir(tmp_path / "run")
    train(*tiny_configs(epochs=1), run)
    point = history.list_points(run)[-1]
    renamed = point.path.with_name("step-abc.safetensors")
    point.path.rename(renamed)
    fork = fork_run(run, tmp_path / "fork", point.step, epochs=3)
    assert (fork.read_parent()["run"], fork.read_parent()["step"]) == (str(run.path), point.step)
    # a checkpoint renamed the same way: its step is read from the header too
    newest = run.latest_checkpoint()
    newest.rename(newest.with_name("step-xyz.safetensors"))
    assert fork_run(run, tmp_path / "fork2", epochs=3).read_parent()["step"] == point.step
