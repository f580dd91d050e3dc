"""Real trainer processes driven through the run directory (issue 3)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

from vae_core.checkpoint import load_checkpoint, snapshot_model
from vae_core.config import ModelConfig, TrainConfig
from vae_core.process import (
    RunFolderTaken,
    kill_trainer,
    resume_training,
    start_training,
    wait_for_state,
)
from vae_core.rundir import RunDir

pytestmark = pytest.mark.slow


def long_configs(**overrides) -> tuple[ModelConfig, TrainConfig]:
    model_config = ModelConfig(image_shape=(1, 28, 28), latent_dim=4, hidden_dim=64)
    settings = {
        "dataset": "shapes",
        "dataset_options": {"image_size": 28, "num_samples": 2048},
        "epochs": 1000,
        "batch_size": 32,
        "log_every": 5,
        "num_threads": 1,
    }
    return model_config, TrainConfig(**{**settings, **overrides})


def wait_for(predicate, timeout_s: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(what)


def finish(process, run: RunDir) -> None:
    if process.poll() is None:
        run.send_control("stop")
        try:
            process.wait(timeout=30)
        except Exception:
            process.kill()
            process.wait()


def test_pause_set_beta_resume_and_stop_a_live_trainer(tmp_path):
    run = RunDir(tmp_path / "run")
    process = start_training(*long_configs(), run.path)
    try:
        wait_for(
            lambda: (s := run.read_status()) and s.state == "running" and s.step > 10,
            what="training to start",
        )
        run.send_control("pause")
        assert wait_for_state(run, {"paused"}, timeout_s=5) == "paused"
        frozen = run.read_status().step
        time.sleep(1.0)
        assert run.read_status().step == frozen and process.poll() is None
        assert run.read_status().is_live  # the trainer holds its lock while paused

        run.send_control(beta=4.0, lr=3e-4)
        wait_for(
            lambda: any(
                r.get("event") == "control" and r.get("beta") == 4.0 for r in run.read_metrics()
            ),
            5,
            "the change to be logged",
        )
        run.send_control("resume")
        wait_for(lambda: run.read_status().step > frozen + 20, 20, "steps after resume")
        wait_for(
            lambda: [
                r
                for r in run.read_metrics()
                if r.get("split") == "train" and r["step"] > frozen + 10
            ],
            10,
            "rows after resume",
        )
        after = [r for r in run.read_metrics() if r.get("split") == "train" and r["step"] > frozen]
        assert after and all(r["beta"] == 4.0 and r["lr"] == 3e-4 for r in after)

        run.send_control("stop")
        assert process.wait(timeout=30) == 0
        status = run.read_status()
        assert status.state == "finished" and status.reason == "stopped by user"
        assert load_checkpoint(run.latest_checkpoint()).step == status.step
    finally:
        finish(process, run)


def test_kill_9_at_random_moments_leaves_loadable_checkpoint_and_snapshot(tmp_path):
    run = RunDir(tmp_path / "run")
    # Publish constantly so the kills land in the middle of writes.
    configs = long_configs(snapshot_every_s=0.02, checkpoint_every_s=0.05)
    process = start_training(*configs, run.path)
    rng = random.Random(0)
    last_step = 0
    try:
        for _ in range(5):
            wait_for(
                lambda: (
                    (s := run.read_status())
                    and s.state == "running"
                    and run.latest_checkpoint() is not None
                ),
                what="a running trainer",
            )
            time.sleep(rng.uniform(0.1, 1.0))
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            ckpt = load_checkpoint(run.latest_checkpoint())
            _, version = snapshot_model(run)
            assert version >= 1 and ckpt.step >= last_step
            assert run.read_status().display_state == "dead"
            last_step = ckpt.step
            process = resume_training(run)
        wait_for(
            lambda: any(
                r.get("split") == "train" and r["step"] > last_step for r in run.read_metrics()
            ),
            what="the last resume to log past its checkpoint",
        )
    finally:
        finish(process, run)
    steps = [r["step"] for r in run.read_metrics() if r.get("split") == "train"]
    assert steps[-1] >= last_step
    assert all(p.name.startswith("step-") for p in run.checkpoints())


def test_starting_and_stopping_many_runs_leaks_no_processes_or_threads(tmp_path):
    threads_before = threading.active_count()
    processes = []
    for i in range(4):
        run = RunDir(tmp_path / f"run{i}")
        process = start_training(*long_configs(), run.path)
        processes.append(process)
        wait_for_state(run, {"running"}, timeout_s=30)
        run.send_control("stop")
        assert process.wait(timeout=30) == 0
        assert run.read_status().state == "finished"
    assert all(p.returncode == 0 for p in processes)
    for p in processes:
        with pytest.raises(ProcessLookupError):
            os.kill(p.pid, 0)
    assert threading.active_count() == threads_before


def test_a_second_trainer_on_a_live_run_is_refused(tmp_path):
    run = RunDir(tmp_path / "run")
    process = start_training(*long_configs(), run.path)
    try:
        wait_for_state(run, {"running"}, timeout_s=30)
        with pytest.raises(RuntimeError, match="already running"):
            resume_training(run)
        with pytest.raises(FileExistsError):
            start_training(*long_configs(), run.path)
    finally:
        finish(process, run)
    assert not kill_trainer(run)


def test_a_stop_sent_while_the_trainer_starts_is_obeyed(tmp_path):
    run = RunDir(tmp_path / "run")
    process = start_training(*long_configs(), run.path)
    time.sleep(0.3)  # the child is still importing torch
    run.send_control("stop")
    try:
        assert process.wait(timeout=90) == 0
    finally:
        finish(process, run)
    status = run.read_status()
    assert status.state == "finished" and status.stopped_by_user
    assert status.step < 100  # it stopped at its first look at control.json


def test_a_second_trainer_from_the_cli_is_refused_by_the_lock(tmp_path):
    run = RunDir(tmp_path / "run")
    process = start_training(*long_configs(), run.path)
    try:
        wait_for_state(run, {"running"}, timeout_s=60)
        # The launcher's liveness check is bypassed: the lock itself must refuse.
        result = subprocess.run(
            [sys.executable, "-m", "vae_core", "train", "--resume", "--run-dir", str(run.path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 2
        assert result.stderr.strip().splitlines() == [
            f"error: {run.path} is being written by another trainer (pid {process.pid}); "
            "stop it first, or pick another --run-dir"
        ]
        status = run.read_status()
        assert status.pid == process.pid and status.is_live
    finally:
        finish(process, run)


def test_two_starts_racing_for_one_folder_never_share_it(tmp_path):
    results: list[object] = []

    def start() -> None:
        try:
            results.append(start_training(*long_configs(), tmp_path / "run"))
        except RunFolderTaken as e:
            results.append(e)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    launched = [r for r in results if not isinstance(r, RunFolderTaken)]
    try:
        assert len(launched) == 1 and len(results) == 4
    finally:
        for process in launched:
            finish(process, RunDir(tmp_path / "run"))
