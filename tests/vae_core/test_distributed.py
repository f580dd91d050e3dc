"""The trainer under torchrun: gloo on this CPU, two real processes per run."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from vae_core.config import TrainConfig
from vae_core.distributed import Ranks, autocast_dtype, shard
from vae_core.models import pick_device
from vae_core.rundir import RunDir
from vae_core.train import LiveSettings

# A small shapes set: 3,000 training images, 23 steps an epoch at the global batch of 128.
SMALL_SHAPES = ["--dataset", "shapes", "--image-size", "28", "--num-samples", "3000"]
TRAIN = ["--hidden-dim", "64", "--latent-dim", "4", "--batch-size", "128", "--threads", "1"]


def torchrun(nproc: int, *args: str, log: Path | None = None, timeout: float = 180):
    """`torchrun --standalone --nproc-per-node N -m vae_core ...`: run to the end, or, with
    `log`, started in the background writing there (a pipe nobody reads would fill up and
    block the trainers)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += ["--nproc-per-node", str(nproc), "-m", "vae_core", *args]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if log is not None:
        with log.open("wb") as out:
            return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "vae_core", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def summary(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def raw_status(run: Path) -> dict:
    try:
        return json.loads((run / "status.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def test_shards_of_a_batch_cover_it_once_in_any_world_size() -> None:
    idx = torch.randperm(130)
    for world in (1, 2, 3, 8):
        parts = [shard(idx, Ranks(rank, world)) for rank in range(world)]
        assert sorted(torch.cat(parts).tolist()) == sorted(idx.tolist())
        assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_live_settings_cross_ranks_as_numbers_unchanged() -> None:
    live = LiveSettings(beta=4.0, lr=3e-4, free_bits=0.5, beta_schedule="cyclical")
    live.update({"warmup_steps": 500}, step=40)
    live.paused, live.seq = True, 7
    copy = LiveSettings(beta=1.0, lr=1e-3)
    copy.load_vector(live.as_vector())
    assert copy.as_vector() == live.as_vector()
    assert (copy.beta_schedule, copy.warmup_start, copy.paused, copy.seq) == (
        "cyclical",
        40,
        True,
        7,
    )


def test_device_and_precision_on_a_cpu_machine() -> None:
    assert not torch.cuda.is_available()  # this suite runs on CPU
    assert pick_device("auto") == torch.device("cpu")
    assert pick_device("auto", gpu=1) == torch.device("cpu")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        pick_device("cuda")
    cpu = torch.device("cpu")
    assert autocast_dtype("fp32", cpu) is None
    assert autocast_dtype("bf16", cpu) == torch.bfloat16
    assert autocast_dtype("fp16", torch.device("cuda", 0)) == torch.float16
    with pytest.raises(ValueError, match="fp16 needs a CUDA GPU"):
        autocast_dtype("fp16", cpu)
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig(precision="fp8")


def test_bad_precision_and_fp16_on_cpu_are_one_line_errors(tmp_path: Path) -> None:
    bad = cli("train", "--run-dir", str(tmp_path / "a"), "--precision", "fp8")
    assert bad.returncode == 2 and "invalid choice: 'fp8'" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    run = tmp_path / "b"
    fp16 = cli("train", "--run-dir", str(run), *SMALL_SHAPES, "--precision", "fp16")
    assert fp16.returncode == 2, fp16.stderr
    assert fp16.stderr.strip().splitlines()[-1] == (
        "error: --precision fp16 needs a CUDA GPU; on CPU use bf16 or fp32"
    )
    assert not run.exists()  # a refused start leaves nothing behind


def test_two_processes_match_one_with_the_same_global_batch(tmp_path: Path) -> None:
    """Same seeds, same global batch and data order: only the reparameterisation noise
    differs between the runs (each rank draws its own), so the losses agree within noise."""
    args = ["train", *SMALL_SHAPES, *TRAIN, "--epochs", "2", "--eval-batches", "4"]
    one = summary(cli(*args, "--run-dir", str(tmp_path / "one")))
    two = summary(torchrun(2, *args, "--run-dir", str(tmp_path / "two")))
    assert one["step"] == two["step"] == 2 * 24  # ceil(3000 / 128) steps an epoch
    assert two["world_size"] == 2
    assert abs(one["test_loss"] - two["test_loss"]) < 0.02 * one["test_loss"], (one, two)
    status = RunDir(tmp_path / "two").read_status()
    assert (status.state, status.world_size, status.backend) == ("finished", 2, "gloo")
    assert RunDir(tmp_path / "one").read_status().world_size == 1


def test_control_reaches_both_ranks_and_one_process_resumes_the_run(tmp_path: Path) -> None:
    """Pause, live beta and stop act on both ranks at one step (rank 1 checks its settings
    against rank 0's at every metrics row, and a rank that missed a command would deadlock
    the lock-step loop); then one process resumes the two-process checkpoint."""
    path = tmp_path / "run"
    run = RunDir(path)
    proc = torchrun(
        2,
        "train",
        *SMALL_SHAPES,
        *TRAIN,
        "--epochs",
        "10",
        "--run-dir",
        str(path),
        log=tmp_path / "torchrun.log",
    )
    try:
        wait_for(lambda: raw_status(path).get("step", 0) >= 30, 120, "training to start")
        run.send_control("pause")
        wait_for(lambda: raw_status(path).get("state") == "paused", 30, "the pause")
        paused_at = raw_status(path)["step"]
        time.sleep(1.5)
        assert raw_status(path)["step"] == paused_at
        run.send_control(None, beta=2.5)
        run.send_control("resume")
        wait_for(lambda: raw_status(path).get("step", 0) >= paused_at + 60, 60, "steps")
        assert raw_status(path)["beta"] == 2.5
        run.send_control("stop")
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, (tmp_path / "torchrun.log").read_text()[-3000:]
    status = run.read_status()
    assert (status.state, status.world_size, status.stopped_by_user) == ("finished", 2, True)
    rows = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    after = [r for r in rows if r.get("split") == "train" and r["step"] > paused_at + 20]
    assert after and all(r["beta"] == 2.5 for r in after)

    stopped_at = status.step
    resumed = summary(cli("train", "--resume", "--run-dir", str(path), timeout=300))
    assert resumed["world_size"] == 1
    assert resumed["step"] == 10 * 24 and resumed["step"] > stopped_at
    status = run.read_status()
    assert (status.state, status.world_size, status.reason) == ("finished", 1, "")


@pytest.mark.parametrize(
    ("sig", "timeout"),
    [(signal.SIGKILL, "120"), (signal.SIGSTOP, "5")],
    ids=["killed", "frozen"],
)
def test_a_lost_rank_ends_the_run_with_a_reason(tmp_path: Path, sig: int, timeout: str) -> None:
    """Killed: its sockets close and rank 0's next collective fails at once. Frozen (alive,
    silent): rank 0's collective gives up after --dist-timeout. Either way, no hang."""
    path = tmp_path / "run"
    args = ["train", *SMALL_SHAPES, *TRAIN, "--epochs", "200", "--dist-timeout", timeout]
    proc = torchrun(2, *args, "--run-dir", str(path), log=tmp_path / "torchrun.log")
    try:
        wait_for(lambda: raw_status(path).get("step", 0) >= 20, 120, "training to start")
        rank1 = raw_status(path)["pids"][1]
        lost = time.monotonic()
        os.kill(rank1, sig)
        wait_for(lambda: raw_status(path).get("state") == "failed", 60, "the failed state")
        ended_s = time.monotonic() - lost
        with contextlib.suppress(ProcessLookupError):
            os.kill(rank1, signal.SIGKILL)  # a frozen rank is still there
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode != 0
    assert ended_s < (60 if sig == signal.SIGKILL else 5 + 10)
    reason = RunDir(path).read_status().reason
    # Rank 0 sees the lost peer itself (a collective fails), or torchrun, which saw it first,
    # stops rank 0 with SIGTERM: either way the reason says another process failed.
    assert reason.startswith(
        ("another training process stopped answering: ", "terminated by SIGTERM: under torchrun")
    ), reason
    assert reason.count("stopped answering") <= 1, reason


def test_a_run_trained_anywhere_loads_on_the_cpu(tmp_path: Path) -> None:
    """safetensors files hold raw bytes and no device, so weights written from CUDA tensors
    are these same bytes; every load maps them to the CPU."""
    from vae_core.checkpoint import load_checkpoint, load_run_model, snapshot_model
    from vae_core.config import ModelConfig
    from vae_core.train import train

    run = RunDir(tmp_path / "run")
    model_config = ModelConfig(image_shape=(1, 28, 28), latent_dim=3, hidden_dim=32)
    train_config = TrainConfig(
        dataset="shapes",
        dataset_options={"image_size": 28, "num_samples": 256},
        epochs=1,
        batch_size=64,
        num_threads=1,
        precision="bf16",
        iwae_k=0,
    )
    summary = train(model_config, train_config, run)
    assert math.isfinite(summary["test"]["elbo"])
    status = run.read_status()
    assert (status.device, status.precision, status.world_size) == ("cpu", "bf16", 1)
    model, _ = snapshot_model(run)
    newest = load_run_model(run, device="auto")
    ckpt = load_checkpoint(run.latest_checkpoint())
    tensors = [*model.parameters(), *newest.parameters(), *ckpt.model_state.values()]
    assert {t.device.type for t in tensors} == {"cpu"}
    assert {t.dtype for t in model.parameters()} == {torch.float32}  # bf16 is compute only


def test_an_epoch_leaves_out_only_a_last_batch_too_small_to_share() -> None:
    from vae_core.train import _steps_per_epoch

    assert _steps_per_epoch(3001, 100, 1) == 31  # one process trains the 1-image batch
    assert _steps_per_epoch(3001, 100, 2) == 30  # two cannot share it: total_steps says so
    assert _steps_per_epoch(3002, 100, 2) == 31
    assert _steps_per_epoch(3000, 128, 2) == 24


def test_sigterm_during_a_collective_stays_the_reason() -> None:
    from vae_core.distributed import RankLost, Terminated, _collective

    def interrupted(*_):
        raise Terminated("terminated by SIGTERM")

    def peer_gone(*_):
        raise RuntimeError("[pair.cc:545] Read error: Connection reset by peer")

    with pytest.raises(Terminated):
        _collective(interrupted)
    with pytest.raises(RankLost, match="stopped answering: Read error: Connection reset"):
        _collective(peer_gone)


def test_control_seq_beyond_float64_precision_is_ignored(tmp_path: Path) -> None:
    from vae_core.train import apply_control

    run = RunDir(tmp_path / "run")
    run.create()
    live = LiveSettings(beta=1.0, lr=1e-3)
    for seq in (10**400, 2**53, True):
        run.control_path.write_text(json.dumps({"seq": seq, "command": "pause", "set": {}}))
        assert not apply_control(run, live) and not live.paused and live.seq == 0
    run.control_path.write_text(json.dumps({"seq": 2**53 - 1, "command": "pause", "set": {}}))
    assert apply_control(run, live) and live.paused
    assert LiveSettings(beta=1.0, lr=1e-3, seq=live.seq).as_vector()[-1] == 2**53 - 1


def test_the_same_warmup_sent_again_does_not_restart_it() -> None:
    live = LiveSettings(beta=4.0, lr=1e-3)
    live.update({"warmup_steps": 100}, step=48)
    live.update({"warmup_steps": 100, "beta": 3.0}, step=72)
    assert (live.warmup_start, live.beta) == (48, 3.0)
    live.update({"beta_schedule": "cyclical"}, step=90)
    assert live.warmup_start == 90


def test_a_global_batch_smaller_than_the_world_is_refused_before_a_folder(tmp_path: Path):
    run = tmp_path / "run"
    result = torchrun(2, "train", *SMALL_SHAPES, *TRAIN, "--batch-size", "1", "--run-dir", str(run))
    assert result.returncode != 0
    assert (
        "error: --batch-size 1 is the global batch: it must be at least the number of "
        "processes (2)" in result.stderr
    )
    assert not run.exists()
