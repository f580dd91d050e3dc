from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time

import pytest
import torch

from vae_core.config import ModelConfig, TrainConfig
from vae_core.models import VAE
from vae_core.rundir import (
    RunDir,
    UnsafeCheckpointError,
    atomic_write_bytes,
    list_runs,
    load_checkpoint,
    load_safetensors,
    snapshot_model,
)


def test_config_round_trips_through_the_run_directory(tmp_run_dir):
    model_config = ModelConfig(latent_dim=7)
    train_config = TrainConfig(dataset="shapes", dataset_options={"image_size": 28}, beta=2.0)
    tmp_run_dir.write_config(model_config, train_config)
    assert tmp_run_dir.read_config() == (model_config, train_config)


def test_read_config_of_a_non_run_folder_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        RunDir(tmp_path).read_config()


def test_rundir_reader_sees_only_new_lines(tmp_run_dir):
    reader = tmp_run_dir.metrics_reader()
    assert reader.read_new() == []
    tmp_run_dir.log_metrics(step=1, elbo=-100.0)
    tmp_run_dir.log_metrics(step=2, elbo=-90.0)
    assert [r["step"] for r in reader.read_new()] == [1, 2]
    assert reader.read_new() == []
    tmp_run_dir.log_metrics(step=3, elbo=-80.0)
    assert [r["step"] for r in reader.read_new()] == [3]


def test_reader_leaves_a_half_written_row_for_the_next_read(tmp_run_dir):
    tmp_run_dir.log_metrics(step=1)
    with open(tmp_run_dir.metrics_path, "a") as f:
        f.write('{"step": 2, "el')
    reader = tmp_run_dir.metrics_reader()
    assert [r["step"] for r in reader.read_new()] == [1]
    with open(tmp_run_dir.metrics_path, "a") as f:
        f.write('bo": -5.0}\n')
    assert reader.read_new() == [{"step": 2, "elbo": -5.0}]


def test_snapshot_versions_increase_and_load_into_a_fresh_model(tmp_run_dir):
    config = ModelConfig(latent_dim=3, hidden_dim=16)
    tmp_run_dir.write_config(config, TrainConfig())
    model = VAE(config)
    assert tmp_run_dir.snapshot_version() == 0
    assert tmp_run_dir.publish_snapshot(model, step=10) == 1
    assert RunDir(tmp_run_dir.path).publish_snapshot(model, step=20) == 2  # a new writer continues
    loaded, version = snapshot_model(tmp_run_dir)
    assert version == 2 == tmp_run_dir.snapshot_version()
    for name, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value)
    assert not any(p.name.endswith(".tmp") for p in tmp_run_dir.path.iterdir())


def test_checkpoint_round_trips_weights_optimizer_and_rng(tmp_run_dir):
    model = VAE(ModelConfig(latent_dim=2, hidden_dim=8))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.rand(4, 1, 28, 28)).decoded.sum().backward()
    optimizer.step()
    generator_state = torch.Generator().manual_seed(9).get_state()
    path = tmp_run_dir.save_checkpoint(
        model, optimizer, step=42, epoch=3, extra={"beta": 2.0}, generator_state=generator_state
    )
    ckpt = load_checkpoint(path)
    assert (ckpt.step, ckpt.epoch, ckpt.extra) == (42, 3, {"beta": 2.0})
    restored = torch.optim.Adam(VAE(ModelConfig(latent_dim=2, hidden_dim=8)).parameters())
    restored.load_state_dict(ckpt.optimizer_state)
    expected = optimizer.state_dict()
    got = restored.state_dict()
    assert got["param_groups"] == expected["param_groups"]
    for pid, state in expected["state"].items():
        for name, value in state.items():
            torch.testing.assert_close(
                torch.as_tensor(got["state"][pid][name]), torch.as_tensor(value)
            )
    torch.testing.assert_close(ckpt.generator_state, generator_state)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(ckpt.model_state[name], value)


def test_only_the_newest_checkpoints_are_kept(tmp_run_dir):
    model = VAE(ModelConfig(latent_dim=2, hidden_dim=8))
    optimizer = torch.optim.Adam(model.parameters())
    for step in range(5):
        tmp_run_dir.save_checkpoint(model, optimizer, step=step, epoch=0)
    assert [p.name for p in tmp_run_dir.checkpoints()] == [
        "step-000000002.safetensors",
        "step-000000003.safetensors",
        "step-000000004.safetensors",
    ]
    assert tmp_run_dir.latest_checkpoint().name == "step-000000004.safetensors"


class _WritesAFileWhenUnpickled:
    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


@pytest.mark.parametrize("name", ["evil.pt", "evil.safetensors"])
def test_a_pickle_checkpoint_is_refused_and_never_runs(tmp_path, name):
    marker = tmp_path / "pwned"
    path = tmp_path / name
    path.write_bytes(pickle.dumps(_WritesAFileWhenUnpickled(str(marker))))
    with pytest.raises(UnsafeCheckpointError, match=r"only \.safetensors|not a valid safetensors"):
        load_checkpoint(path)
    assert not marker.exists()


def test_a_torch_save_zip_is_refused_with_a_conversion_hint(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2)}, path)
    with pytest.raises(UnsafeCheckpointError, match="save_file"):
        load_safetensors(path)


def test_atomic_write_leaves_the_old_file_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "status.json"
    atomic_write_bytes(path, b"old")

    def fail(*_args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [path]


def test_control_commands_are_sequenced_and_validated(tmp_run_dir):
    first = tmp_run_dir.send_control("pause")
    second = tmp_run_dir.send_control(beta=4.0, lr=3e-4)
    assert (first["seq"], second["seq"]) == (1, 2)
    assert tmp_run_dir.read_control()["set"] == {"beta": 4.0, "lr": 3e-4}
    with pytest.raises(ValueError, match="only beta and lr"):
        tmp_run_dir.send_control(epochs=3)
    with pytest.raises(ValueError, match="unknown command"):
        tmp_run_dir.send_control("explode")
    with pytest.raises(ValueError, match="out of range"):
        tmp_run_dir.send_control(lr=-1.0)


def test_status_tells_a_dead_trainer_from_a_live_one(tmp_run_dir):
    tmp_run_dir.write_status("running", step=5)
    status = tmp_run_dir.read_status()
    assert status.state == "running" and status.step == 5 and status.pid == os.getpid()
    assert status.is_alive() and status.display_state == "running"
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    tmp_run_dir.write_status("running", pid=child.pid)
    assert tmp_run_dir.read_status().display_state == "dead"
    tmp_run_dir.write_status("running", heartbeat=time.time() - 60)
    assert tmp_run_dir.read_status().display_state == "dead"


def test_list_runs_finds_run_directories_newest_first(tmp_path):
    for name in ["a", "b"]:
        RunDir(tmp_path / name).write_config(ModelConfig(), TrainConfig())
        time.sleep(0.01)
    (tmp_path / "not-a-run").mkdir()
    os.utime(tmp_path / "a" / "config.json")
    assert [r.path.name for r in list_runs(tmp_path)] == ["a", "b"]
    assert json.loads((tmp_path / "a" / "config.json").read_text())["model"]["latent_dim"] == 20
