"""Start a trainer as its own process (what the UI and tests do) and wait for it.

The child is `python -m vae_core train --resume --run-dir DIR`: it reads the
config.json written here, so UI, CLI and tests share one code path.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from vae_core.config import ModelConfig, TrainConfig
from vae_core.rundir import RunDir


def start_training(
    model_config: ModelConfig, train_config: TrainConfig, run_dir: str | Path
) -> subprocess.Popen:
    """Write config.json into a new run directory and launch a trainer on it."""
    run = RunDir(run_dir)
    if run.exists():
        raise FileExistsError(f"{run.path} already holds a run; pick a new name or resume it")
    run.write_config(model_config, train_config)
    return resume_training(run)


def resume_training(run: RunDir) -> subprocess.Popen:
    """Launch a trainer that continues `run` from its newest checkpoint (or its start)."""
    status = run.read_status()
    if status is not None and status.is_alive():
        raise RuntimeError(f"a trainer (pid {status.pid}) is already running {run.path}")
    with open(run.log_path, "ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "vae_core", "train", "--resume", "--run-dir", str(run.path)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Own session: a Streamlit rerun or Ctrl-C in the UI's terminal leaves it training.
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    # Readers see 'starting' with the child's pid at once, before torch has even imported.
    run.write_status("starting", pid=process.pid, step=status.step if status else 0)
    return process


def wait_for_state(run: RunDir, states: set[str], timeout_s: float = 60.0) -> str:
    """Poll status.json until its state is in `states`; returns it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = run.read_status()
        if status is not None and status.state in states:
            return status.state
        time.sleep(0.05)
    status = run.read_status()
    raise TimeoutError(f"{run.path}: state {status.state if status else None}, wanted {states}")


def kill_trainer(run: RunDir, sig: int = signal.SIGKILL) -> bool:
    """Signal the trainer named in status.json; True if one was running."""
    status = run.read_status()
    if status is None or not status.pid or not status.is_alive(stale_after_s=float("inf")):
        return False
    os.kill(status.pid, sig)
    return True
