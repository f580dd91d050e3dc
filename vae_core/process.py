"""Start a trainer as its own process (what the UI and tests do) and wait for it.

The child is `python -m vae_core train --resume --run-dir DIR`: it reads the config.json
written here, so UI, CLI and tests share one code path. Whether a trainer is alive is the
run folder's OS lock's answer, never the heartbeat's (see RunDir.is_locked).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from vae_core.config import ModelConfig, TrainConfig
from vae_core.rundir import RunDamaged, RunDir, RunLocked

TRAINER_LOG_MAX_BYTES = 1 << 20  # trainer.log is rotated to trainer.log.1 past this at a launch


class RunFolderTaken(FileExistsError):
    """The folder for a new run exists already (another Start, another tab, a double click)."""


class RunInsideRun(ValueError):
    """A new run's folder inside another run (its checkpoints/, history/, or any folder
    below it): the parent's clean-up and listings would then trip over the new run."""


def refuse_inside_run(path: str | Path) -> None:
    """RunInsideRun if a folder above `path` (symlinks resolved) holds a run."""
    path = Path(path)
    for folder in path.resolve().parents:
        if (folder / "config.json").is_file() and (folder / "checkpoints").is_dir():
            raise RunInsideRun(f"{path} is inside the run {folder}; pick a folder outside any run")


def claim_run_dir(path: str | Path) -> RunDir:
    """Create the folder of a new run; exactly one caller wins a race for the same path.
    RunInsideRun, before anything is made, for a folder inside another run."""
    path = Path(path)
    refuse_inside_run(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir()  # atomic: the kernel lets only one mkdir of a name succeed
    except FileExistsError:
        raise RunFolderTaken(f"{path} already exists; pick a new name or resume it") from None
    return RunDir(path)


def start_training(
    model_config: ModelConfig, train_config: TrainConfig, run_dir: str | Path
) -> subprocess.Popen:
    """Claim a new run folder, write its config.json and launch a trainer on it."""
    run = claim_run_dir(run_dir)
    run.write_config(model_config, train_config)
    return resume_training(run)


def resume_training(
    run: RunDir,
    beta: float | None = None,
    lr: float | None = None,
    pass_fds: tuple[int, ...] = (),
) -> subprocess.Popen:
    """Launch a trainer that continues `run` from its newest checkpoint (or its start),
    optionally with a new beta / lr (e.g. lower, after a divergence). `pass_fds` are
    inherited by the trainer (the app's flock-ed trainer slot: held while it lives)."""
    if run.is_locked():
        raise RunLocked(f"a trainer (pid {run.lock_holder()}) is already running {run.path}")
    previous = run.read_status()
    _rotate_log(run.log_path)
    command = [sys.executable, "-m", "vae_core", "train", "--resume", "--run-dir", str(run.path)]
    command += [f"--beta={beta!r}"] if beta is not None else []
    command += [f"--lr={lr!r}"] if lr is not None else []
    with open(run.log_path, "ab") as log_file:
        process = subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Own session: a Streamlit rerun or Ctrl-C in the UI's terminal leaves it training.
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            pass_fds=pass_fds,
        )
    # Readers see 'starting' with the child's pid at once, before torch has even imported.
    # Commands sent before this launch are spent; any sent from now on, even while the
    # child is still importing torch, are obeyed.
    applied = max(previous.control_seq if previous else 0, _control_seq(run))
    run.write_status(
        "starting", pid=process.pid, step=previous.step if previous else 0, control_seq=applied
    )
    return process


def _control_seq(run: RunDir) -> int:
    try:
        seq = run.read_control().get("seq", 0)
    except RunDamaged:
        return 0
    return seq if isinstance(seq, int) else 0


def _rotate_log(path: Path) -> None:
    """Keep trainer.log bounded: past the cap, the old log becomes trainer.log.1."""
    try:
        if path.stat().st_size > TRAINER_LOG_MAX_BYTES:
            os.replace(path, path.with_name(path.name + ".1"))
    except FileNotFoundError:
        pass


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
    """Signal the trainer holding the run's lock (or the one being launched); True if any."""
    status = run.read_status()
    pid = run.lock_holder() if run.is_locked() else None
    if pid is None and status is not None and status.is_live:
        pid = status.pid
    if pid is None:
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True
