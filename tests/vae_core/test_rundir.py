from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from vae_core.atomic import atomic_write_bytes
from vae_core.checkpoint import (
    NonFiniteWeightsError,
    load_checkpoint,
    load_run_model,
    save_checkpoint,
    snapshot_model,
)
from vae_core.config import ModelConfig, TrainConfig
from vae_core.models import VAE
from vae_core.run_errors import RunDamaged, RunLocked
from vae_core.rundir import RunDir, list_runs
from vae_core.safetensors_io import UnsafeCheckpointError, load_safetensors
from vae_core.status import STOPPED_BY_USER


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
    path = save_checkpoint(
        tmp_run_dir,
        model,
        optimizer,
        step=42,
        epoch=3,
        extra={"beta": 2.0},
        generator_state=generator_state,
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
        save_checkpoint(tmp_run_dir, model, optimizer, step=step, epoch=0)
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


def test_a_full_disk_names_the_file_and_the_space_it_needed(tmp_path, monkeypatch):
    import errno

    from vae_core import atomic

    def full(*_args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    path = tmp_path / "status.json"
    with pytest.raises(atomic.DiskFull) as error:
        atomic_write_bytes(path, b"x" * 2500)
    assert str(error.value).startswith(f"disk full: writing {path} needed about 2.5 KB, ")
    assert str(error.value).endswith(" free; free some space") and list(tmp_path.iterdir()) == []
    assert error.value.errno == errno.ENOSPC  # still an OSError for every caller


def test_a_full_disk_under_the_safetensors_writer_is_a_disk_full_error(tmp_path, monkeypatch):
    from safetensors import SafetensorError

    from vae_core import atomic

    def full(*_args, **_kwargs):  # what safetensors raises on ENOSPC (seen on a tmpfs)
        raise SafetensorError(
            "Error while serializing: I/O error: No space left on device (os error 28)"
        )

    monkeypatch.setattr("safetensors.torch.save_file", full)
    path = tmp_path / "snapshot.safetensors"
    with pytest.raises(atomic.DiskFull, match=f"writing {path} needed about 4.1 KB"):
        atomic.atomic_save_tensors(path, {"w": torch.zeros(1000)}, {"step": "1"})
    assert list(tmp_path.iterdir()) == []


def test_control_commands_are_sequenced_and_validated(tmp_run_dir):
    first = tmp_run_dir.send_control("pause")
    second = tmp_run_dir.send_control(beta=4.0, lr=3e-4)
    assert second["seq"] > first["seq"] > 0
    assert tmp_run_dir.read_control()["set"] == {"beta": 4.0, "lr": 3e-4}
    with pytest.raises(ValueError, match="only beta, lr"):
        tmp_run_dir.send_control(epochs=3)
    with pytest.raises(ValueError, match="unknown command"):
        tmp_run_dir.send_control("explode")
    for bad in (-1.0, float("nan"), float("inf"), 5.0):
        with pytest.raises(ValueError, match="lr must be a finite number in"):
            tmp_run_dir.send_control(lr=bad)
    with pytest.raises(ValueError, match="beta must be a finite number"):
        tmp_run_dir.send_control(beta=float("nan"))
    assert tmp_run_dir.read_control()["seq"] == second["seq"]  # nothing refused was written


def test_quick_sends_merge_until_the_trainer_applies_them(tmp_run_dir):
    tmp_run_dir.send_control("pause")
    tmp_run_dir.send_control(beta=2.5)
    merged = tmp_run_dir.send_control("resume", lr=1e-4)
    assert (merged["command"], merged["set"]) == ("resume", {"beta": 2.5, "lr": 1e-4})
    tmp_run_dir.send_control("stop")
    assert tmp_run_dir.send_control("resume")["command"] == "stop"  # a stop is never undone
    # Once the trainer has applied a message, the next one starts afresh.
    tmp_run_dir.write_status("running", control_seq=tmp_run_dir.read_control()["seq"])
    fresh = tmp_run_dir.send_control(lr=3e-4)
    assert (fresh["command"], fresh["set"]) == (None, {"lr": 3e-4})


def test_senders_at_the_same_moment_both_get_through(tmp_run_dir):
    import threading

    for trial in range(10):
        tmp_run_dir.write_status("running", control_seq=tmp_run_dir.read_control().get("seq", 0))
        start = threading.Barrier(2)

        def send(start=start, **change):
            start.wait()
            tmp_run_dir.send_control(**change)

        senders = [
            threading.Thread(target=send, kwargs={"beta": 2.0 + trial}),
            threading.Thread(target=send, kwargs={"lr": 0.01}),
        ]
        for t in senders:
            t.start()
        for t in senders:
            t.join()
        assert tmp_run_dir.read_control()["set"] == {"beta": 2.0 + trial, "lr": 0.01}


def test_control_seq_keeps_rising_after_control_json_is_damaged(tmp_run_dir):
    before = tmp_run_dir.send_control("pause")["seq"]
    tmp_run_dir.control_path.write_bytes(b"\xff\xfe{")
    with pytest.raises(RunDamaged, match=r"control.json: is not UTF-8"):
        tmp_run_dir.read_control()
    assert tmp_run_dir.send_control("stop")["seq"] > before  # a trainer at `before` obeys it


def test_liveness_is_the_lock_not_the_pid_or_heartbeat(tmp_run_dir):
    tmp_run_dir.write_status("running", step=5)  # our own pid, a fresh heartbeat, no lock
    status = tmp_run_dir.read_status()
    assert (status.state, status.step, status.host) == ("running", 5, socket.gethostname())
    assert not status.is_live and status.display_state == "dead" and status.is_resumable
    with tmp_run_dir.acquire_lock():
        tmp_run_dir.write_status("running", heartbeat=time.time() - 3600)  # an old heartbeat
        status = tmp_run_dir.read_status()
        assert status.locked and status.is_live and status.display_state == "running"
        assert not status.is_resumable
        with pytest.raises(RunLocked, match="another trainer"):
            tmp_run_dir.acquire_lock()
    assert not tmp_run_dir.read_status().is_live  # the lock goes with its holder


def test_a_launched_trainer_counts_as_live_until_it_takes_the_lock(tmp_run_dir):
    tmp_run_dir.write_status("starting")  # written by the launcher, pid = a live process
    assert tmp_run_dir.read_status().is_live
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    tmp_run_dir.write_status("starting", pid=child.pid)
    assert tmp_run_dir.read_status().display_state == "dead"


def test_a_run_live_on_another_host_is_judged_by_heartbeat_and_never_resumed(tmp_run_dir):
    tmp_run_dir.write_status("running", host="gpu-box-7", pid=1)
    status = tmp_run_dir.read_status()
    assert status.on_other_host and status.is_live and not status.is_resumable
    tmp_run_dir.write_status("running", host="gpu-box-7", heartbeat=time.time() - 60)
    status = tmp_run_dir.read_status()
    assert status.display_state == "dead" and not status.is_resumable


def test_status_answers_paused_and_stopped_by_user(tmp_run_dir):
    with tmp_run_dir.acquire_lock():
        tmp_run_dir.write_status("paused", beta=2.0, lr=1e-4, total_steps=90)
        status = tmp_run_dir.read_status()
        assert status.is_paused and status.is_resumable
        assert (status.beta, status.lr, status.total_steps) == (2.0, 1e-4, 90)
    tmp_run_dir.write_status("finished", reason=STOPPED_BY_USER)
    assert tmp_run_dir.read_status().stopped_by_user and tmp_run_dir.read_status().is_resumable
    tmp_run_dir.write_status("finished")
    assert not tmp_run_dir.read_status().is_resumable


def test_a_torn_metrics_line_is_cut_before_the_next_append(tmp_run_dir):
    tmp_run_dir.log_metrics(step=1)
    tmp_run_dir.close()
    with open(tmp_run_dir.metrics_path, "a") as f:
        f.write('{"step": 2, "el')  # a kill -9 mid-append
    writer = RunDir(tmp_run_dir.path)
    writer.log_metrics(step=2, elbo=-5.0)
    writer.close()
    lines = tmp_run_dir.metrics_path.read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2]


def _damage(path, data: bytes) -> None:
    path.write_bytes(data)


JSON_CORRUPTIONS = [
    b"",
    b"{",
    b"null",
    b"[1, 2]",
    b'"state"',
    b"\xff\xfe\x00garbage",
    b'{"state": "running"' + b"\x00" * 10,
    b"[" * 100_000,
    b'{"state": 7}',
    b'{"state": "running", "step": "many"}',
    b'{"state": "running", "pid": "me"}',
    b'{"state": "running", "heartbeat": null}',
    b'{"state": "exploded"}',
    b'{"model": 3, "train": {}}',
    b'{"model": {"latent_dim": "x"}, "train": {}}',
    b'{"model": {}, "train": {"epochs": -4}}',
    b'{"model": {}}',
    b'{"seq": "x", "command": "stop"}',
]


@pytest.mark.parametrize("data", JSON_CORRUPTIONS, ids=range(len(JSON_CORRUPTIONS)))
@pytest.mark.parametrize("name", ["status.json", "control.json", "config.json"])
def test_a_damaged_json_file_gives_one_clear_message(tmp_path, name, data):
    run = RunDir(tmp_path / "run")
    run.write_config(ModelConfig(), TrainConfig())
    run.write_status("running")
    _damage(run.path / name, data)
    readers = {
        "status.json": run.read_status,
        "control.json": run.read_control,
        "config.json": run.read_config,
    }
    try:
        readers[name]()  # some corruptions are still valid for a given file
    except RunDamaged as e:
        assert str(e).startswith(f"run run is damaged: {name}: ")
        assert "\n" not in str(e)


SNAPSHOT_CORRUPTIONS = [
    b"",
    b"\x00" * 4,
    (5).to_bytes(8, "little") + b"[1,2]",
    (4).to_bytes(8, "little") + b'"x"',
    (2).to_bytes(8, "little") + b"{}",
    (40).to_bytes(8, "little") + b'{"__metadata__": {"version": 3}}'.ljust(40),
    (40).to_bytes(8, "little") + b'{"__metadata__": ["version"]}'.ljust(40),
    (40).to_bytes(8, "little") + b'{"__metadata__": {"version": "v3"}}'.ljust(40),
    (2**40).to_bytes(8, "little") + b"{}",
    (10).to_bytes(8, "little") + b"\xff" * 10,
    (20).to_bytes(8, "little") + b"{",
]


@pytest.mark.parametrize("data", SNAPSHOT_CORRUPTIONS, ids=range(len(SNAPSHOT_CORRUPTIONS)))
def test_a_damaged_snapshot_header_gives_one_clear_message(tmp_run_dir, data):
    tmp_run_dir.write_config(ModelConfig(latent_dim=2, hidden_dim=8), TrainConfig())
    _damage(tmp_run_dir.snapshot_path, data)
    with pytest.raises(RunDamaged, match=r"run run is damaged: snapshot\.safetensors: "):
        tmp_run_dir.snapshot_version()
        tmp_run_dir.load_snapshot()  # reached only when the header happens to parse
    model_config = ModelConfig(latent_dim=2, hidden_dim=8)
    assert tmp_run_dir.publish_snapshot(VAE(model_config), 1) == 1  # the writer replaces it


def test_unreadable_files_give_a_message_and_hide_no_other_run(tmp_path, monkeypatch):
    good, bad = RunDir(tmp_path / "good"), RunDir(tmp_path / "bad")
    for run in (good, bad):
        run.write_config(ModelConfig(), TrainConfig())
        run.write_status("finished")
    real_read_bytes, real_stat = Path.read_bytes, Path.stat

    def read_bytes(path):  # root ignores chmod, so deny access the way the kernel would
        if bad.path in path.parents:
            raise PermissionError(13, "Permission denied", str(path))
        return real_read_bytes(path)

    def stat(path, **kwargs):
        if path == bad.config_path:
            raise PermissionError(13, "Permission denied", str(path))
        return real_stat(path, **kwargs)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    with pytest.raises(RunDamaged, match=r"status\.json: cannot be read \(Permission denied\)"):
        bad.read_status()
    with pytest.raises(RunDamaged, match=r"config\.json: cannot be read"):
        bad.read_config()
    assert good.read_status().state == "finished"
    monkeypatch.setattr(Path, "stat", stat)
    assert [r.path.name for r in list_runs(tmp_path)] == ["good"]


def test_metrics_rows_that_are_not_objects_are_skipped(tmp_run_dir):
    tmp_run_dir.metrics_path.write_bytes(b'[1]\n3\n"x"\n\xff\xfe\n{"step": 4}\n')
    assert tmp_run_dir.read_metrics() == [{"step": 4}]


def test_list_runs_finds_run_directories_newest_first(tmp_path):
    for name in ["a", "b"]:
        RunDir(tmp_path / name).write_config(ModelConfig(), TrainConfig())
        time.sleep(0.01)
    (tmp_path / "not-a-run").mkdir()
    os.utime(tmp_path / "a" / "config.json")
    assert [r.path.name for r in list_runs(tmp_path)] == ["a", "b"]
    assert json.loads((tmp_path / "a" / "config.json").read_text())["model"]["latent_dim"] == 20


def test_a_checkpoint_with_non_finite_weights_is_never_written(tmp_run_dir):
    model = VAE(ModelConfig(latent_dim=2, hidden_dim=8))
    optimizer = torch.optim.Adam(model.parameters())
    save_checkpoint(tmp_run_dir, model, optimizer, step=1, epoch=0)
    with torch.no_grad():
        next(model.parameters())[0, 0] = float("nan")
    with pytest.raises(NonFiniteWeightsError, match="not saving step 2"):
        save_checkpoint(tmp_run_dir, model, optimizer, step=2, epoch=0)
    assert [p.name for p in tmp_run_dir.checkpoints()] == ["step-000000001.safetensors"]


def test_load_run_model_takes_the_snapshot_when_it_is_newer(tmp_run_dir):
    model_config = ModelConfig(latent_dim=2, hidden_dim=8)
    tmp_run_dir.write_config(model_config, TrainConfig())
    old, new = VAE(model_config), VAE(model_config)
    with pytest.raises(FileNotFoundError, match="no weights yet"):
        load_run_model(tmp_run_dir)
    tmp_run_dir.publish_snapshot(old, step=3)  # killed before its first checkpoint
    assert torch.equal(_first_weight(load_run_model(tmp_run_dir)), _first_weight(old))
    save_checkpoint(tmp_run_dir, new, torch.optim.Adam(new.parameters()), step=5, epoch=0)
    assert torch.equal(_first_weight(load_run_model(tmp_run_dir)), _first_weight(new))
    tmp_run_dir.publish_snapshot(old, step=9)
    assert torch.equal(_first_weight(load_run_model(tmp_run_dir)), _first_weight(old))


def _first_weight(model: torch.nn.Module) -> torch.Tensor:
    return next(model.parameters()).detach()


def test_a_safetensors_file_whose_header_length_starts_with_0x80_loads(tmp_path):
    """The first byte is the header length's low byte: 0x80 there is not a pickle."""
    from safetensors.torch import save_file

    from vae_core.safetensors_io import load_safetensors

    for pad in range(0, 300):  # metadata of varying length moves the header length through 0x80
        path = tmp_path / f"w{pad}.safetensors"
        save_file({"w": torch.ones(2)}, path, metadata={"pad": "x" * pad})
        if path.read_bytes()[0] == 0x80:
            break
    else:
        pytest.fail("no header length with low byte 0x80 in the range tried")
    tensors, meta = load_safetensors(path)
    assert tensors["w"].tolist() == [1.0, 1.0] and meta["pad"] == "x" * pad
