"""Start a trainer as its own process: the one start path of the app, the benches and the
tests. The trainer is the CLI's own `python -m vae_core train`, so app and CLI train alike.

Who writes what: the trainer alone writes config.json and status.json (it gets a new run's
configuration on its stdin, `train --config -`, and continues a run with `--resume`). The
launcher claims a new run's folder (an empty mkdir, so two Starts never share a name) and
writes one file, trainer.log: the child's stdout and stderr, opened before the child runs,
so that a trainer that dies before its first status.json still leaves its one error line.
Whether a trainer is alive is the run folder's OS lock's answer (RunDir.is_locked); the app
itself knows the children it launched (explorer.runs: 'starting' until their first status).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vae_core.config import ModelConfig, TrainConfig
from vae_core.run_errors import RunDamaged, RunLocked
from vae_core.rundir import RunDir

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
    model_config: ModelConfig,
    train_config: TrainConfig,
    run_dir: str | Path,
    pass_fds: tuple[int, ...] = (),
) -> subprocess.Popen:
    """Claim a new run folder (RunFolderTaken if it exists) and launch a trainer that starts
    the run there from these configs. `pass_fds` are inherited by the trainer (the app's
    flock-ed trainer slot: held while it lives)."""
    run = claim_run_dir(run_dir)
    config = {"model": model_config.to_dict(), "train": train_config.to_dict()}
    return _launch(run, "train", ["--config", "-"], json.dumps(config), pass_fds)


def start_fork(
    parent: RunDir,
    run_dir: str | Path,
    step: int,
    changes: Mapping[str, Any],
    pass_fds: tuple[int, ...] = (),
) -> subprocess.Popen:
    """Claim a new run folder (RunFolderTaken if it exists) and launch `python -m vae_core
    fork` to build the fork of `parent` at `step` there and train it: the child writes the
    fork's config.json and first checkpoint, as a trainer writes a new run's. Check the fork
    first (vae_core.fork.check_fork): a refusal here only shows in trainer.log."""
    run = claim_run_dir(run_dir)
    args = ["--from", str(parent.path), f"--step={step}", "--into-claimed"]
    args += [f"--{name.replace('_', '-')}={value!r}" for name, value in sorted(changes.items())]
    return _launch(run, "fork", args, None, pass_fds)


def resume_training(
    run: RunDir,
    beta: float | None = None,
    lr: float | None = None,
    pass_fds: tuple[int, ...] = (),
) -> subprocess.Popen:
    """Launch a trainer that continues `run` from its newest checkpoint (or its start),
    optionally with a new beta / lr (e.g. lower, after a divergence)."""
    if not run.exists():
        raise FileNotFoundError(f"{run.path} holds no run to resume (no config.json)")
    if run.is_locked():
        raise RunLocked(f"a trainer (pid {run.lock_holder()}) is already running {run.path}")
    args = ["--resume"]
    args += [f"--beta={beta!r}"] if beta is not None else []
    args += [f"--lr={lr!r}"] if lr is not None else []
    return _launch(run, "train", args, None, pass_fds)


def _launch(
    run: RunDir,
    command_name: str,
    args: list[str],
    stdin_text: str | None,
    pass_fds: tuple[int, ...],
) -> subprocess.Popen:
    """`python -m vae_core COMMAND --run-dir RUN ARGS` (train, or fork), its output in
    trainer.log. Commands
    sent before this launch are spent (a stale stop must not end it); any sent from now on,
    even while the child still imports torch, are obeyed: the child is told which."""
    spent = _spent_control_seq(run)
    _rotate_log(run.log_path)
    command = [sys.executable, "-m", "vae_core", command_name, "--run-dir", str(run.path), *args]
    command.append(f"--spent-control-seq={spent}")
    with open(run.log_path, "ab") as log_file:
        process = subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL if stdin_text is None else subprocess.PIPE,
            # Own session: a Streamlit rerun or Ctrl-C in the UI's terminal leaves it training.
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            pass_fds=pass_fds,
        )
    if stdin_text is not None and process.stdin is not None:
        try:
            with process.stdin:  # a few KB: fits the pipe's buffer, never blocks
                process.stdin.write(stdin_text.encode())
        except BrokenPipeError:
            pass  # the child died at once; trainer.log says why
    return process


def _spent_control_seq(run: RunDir) -> int:
    """The newest command a trainer launched now must not obey: what the last trainer
    applied, or control.json's (sent while none ran)."""
    try:
        previous = run.read_status()
    except RunDamaged:
        previous = None
    try:
        seq = run.read_control().get("seq", 0)
    except RunDamaged:
        seq = 0
    seq = seq if type(seq) is int else 0
    return max(previous.control_seq if previous else 0, seq)


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
