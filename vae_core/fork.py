"""Fork a run: a new run folder that starts from a parent's weights at one step.

The fork keeps the parent's architecture and dataset and may change beta, lr, warm-up,
epochs and seed. Its steps continue from the branch point, and its config.json records
`parent: {run, step, id}`. From a checkpoint it also takes the optimizer state; from a
history point (weights only) Adam starts afresh.
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vae_core import history
from vae_core.build import build_model
from vae_core.checkpoint import load_checkpoint, save_start_checkpoint
from vae_core.config import ModelConfig, TrainConfig
from vae_core.process import RunFolderTaken, claim_run_dir, refuse_inside_run
from vae_core.run_errors import RunDamaged
from vae_core.rundir import RunDir
from vae_core.safetensors_io import (
    UnsafeCheckpointError,
    load_safetensors,
    read_safetensors_metadata,
)

FORKABLE = ("beta", "lr", "epochs", "warmup_steps", "seed")


@dataclass(frozen=True)
class ForkPlan:
    """A checked fork: the branch point and the new run's configs (from headers alone)."""

    model_config: ModelConfig
    train_config: TrainConfig
    step: int
    epoch: int
    file: str  # the branch point's file in the parent, e.g. "history/step-000000040.safetensors"


def check_fork(parent: RunDir, step: int | None = None, **changes: Any) -> ForkPlan:
    """What fork_run checks before it loads any weights: the parent is a run
    (FileNotFoundError), the changes are forkable and in range and `step` (None: the newest)
    is in its history or checkpoints, before the fork's last epoch (ValueError)."""
    unknown = sorted(set(changes) - set(FORKABLE))
    if unknown:
        raise ValueError(f"a fork can change {', '.join(FORKABLE)}; not {unknown}")
    model_config, train_config = parent.read_config()  # FileNotFoundError: not a run
    train_config = dataclasses.replace(train_config, **changes)  # validated
    step, epoch, file = _branch_point(parent, step)
    if epoch >= train_config.epochs:
        raise ValueError(
            f"the fork starts in epoch {epoch}: give it --epochs above that (now "
            f"{train_config.epochs})"
        )
    return ForkPlan(model_config, train_config, step, epoch, file)


def fork_run(
    parent: RunDir,
    new_path: str | Path,
    step: int | None = None,
    claimed: bool = False,
    **changes: Any,
) -> RunDir:
    """Create the fork's folder, config and starting checkpoint; nothing is created when
    the parent is not a run, the step is in neither its history nor its checkpoints, its
    weights do not fit the parent's model (RunDamaged), the new folder exists or lies inside
    a run, or a change is out of range (ValueError / FileNotFoundError).

    `claimed`: the launcher has made the folder already (process.claim_run_dir, with only
    its trainer.log in it); the fork is built into it. config.json is written last, so until
    then the folder is no run a listing would show, and a fork failing midway removes what
    it built (a folder it claimed itself, whole).
    """
    new_path = Path(new_path)
    if claimed:
        if not new_path.is_dir() or RunDir(new_path).exists():
            raise RunFolderTaken(f"{new_path} is not an empty claimed folder for the fork")
    elif new_path.exists():
        raise RunFolderTaken(f"{new_path} already exists; pick a new --run-dir for the fork")
    refuse_inside_run(new_path)
    plan = check_fork(parent, step, **changes)
    weights, optimizer_state = _load_branch_point(parent, plan.file)
    model = history.fit_weights(build_model(plan.model_config), weights, parent.path, plan.file)
    optimizer = torch.optim.Adam(model.parameters(), lr=plan.train_config.lr, fused=True)
    if optimizer_state is not None:
        try:
            optimizer.load_state_dict(optimizer_state)
        except (ValueError, KeyError, RuntimeError) as e:
            problem = f"its optimizer state does not fit: {e}"
            raise RunDamaged(parent.path, plan.file, problem) from None
    fork = RunDir(new_path) if claimed else claim_run_dir(new_path)
    try:
        save_start_checkpoint(fork, model, plan.train_config, plan.step, plan.epoch, optimizer)
        # The parent's id finds it again after a rename (vae_core.runfolders.find_parent).
        link = {"run": str(parent.path), "step": plan.step}
        link |= {"id": parent.run_id()} if parent.run_id() else {}
        fork.write_config(plan.model_config, plan.train_config, parent=link)  # last: a run now
    except BaseException:
        shutil.rmtree(fork.checkpoint_dir if claimed else fork.path, ignore_errors=True)
        raise
    return fork


def _load_branch_point(
    parent: RunDir, file: str
) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """(weights, optimizer state or None) of the branch point's file; a history point holds
    weights only (Adam then starts afresh)."""
    path = parent.path / file
    try:
        if file.startswith("checkpoints/"):
            ckpt = load_checkpoint(path)
            return ckpt.model_state, ckpt.optimizer_state
        return load_safetensors(path)[0], None
    except UnsafeCheckpointError as e:
        raise RunDamaged(parent.path, file, e) from None


def _branch_point(parent: RunDir, step: int | None) -> tuple[int, int, str]:
    """(step, epoch, the file's name in the run) at `step` (None: the newest), from the files'
    headers alone, never from their names; a checkpoint wins over a history point."""
    checkpoints = {_checkpoint_step(parent, p): p for p in parent.checkpoints()}
    points = {p.step: p for p in history.list_points(parent)}
    if step is None:
        newest = max([*checkpoints, *points], default=None)
        if newest is None:
            raise ValueError(f"{parent.path} has no history or checkpoint to fork from yet")
        step = newest
    if step in checkpoints:
        path = checkpoints[step]
        return step, _checkpoint_epoch(parent, path), f"checkpoints/{path.name}"
    if step in points:
        return step, points[step].epoch, f"history/{points[step].path.name}"
    known = sorted({*checkpoints, *points})[-8:]
    raise ValueError(
        f"step {step} is in neither the history nor the checkpoints of {parent.path}; "
        f"the newest: {', '.join(map(str, known)) or 'none'}"
    )


def _checkpoint_step(run: RunDir, path: Path) -> int:
    """A checkpoint's step, from its header (RunDamaged naming the file if it has none)."""
    return _header_int(run, path, "step")


def _checkpoint_epoch(run: RunDir, path: Path) -> int:
    return _header_int(run, path, "epoch")


def _header_int(run: RunDir, path: Path, key: str) -> int:
    try:
        return int(read_safetensors_metadata(path)[key])
    except (OSError, ValueError, KeyError) as e:
        problem = f"no {key} in its header ({e})"
        raise RunDamaged(run.path, f"checkpoints/{path.name}", problem) from None
