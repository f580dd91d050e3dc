"""Fork a run: a new run folder that starts from a parent's weights at one step.

The fork keeps the parent's architecture and dataset and may change beta, lr, warm-up,
epochs and seed. Its steps continue from the branch point, and its config.json records
`parent: {run, step, id}`. From a checkpoint it also takes the optimizer state; from a
history point (weights only) Adam starts afresh.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from vae_core import history
from vae_core.checkpoint import load_checkpoint, save_start_checkpoint
from vae_core.models import build_model
from vae_core.process import RunFolderTaken, claim_run_dir, refuse_inside_run
from vae_core.run_errors import RunDamaged
from vae_core.rundir import RunDir
from vae_core.safetensors_io import UnsafeCheckpointError, read_safetensors_metadata

FORKABLE = ("beta", "lr", "epochs", "warmup_steps", "seed")


def fork_run(
    parent: RunDir, new_path: str | Path, step: int | None = None, **changes: Any
) -> RunDir:
    """Create the fork's folder, config and starting checkpoint; nothing is created when
    the parent is not a run, the step is in neither its history nor its checkpoints, its
    weights do not fit the parent's model (RunDamaged), the new folder exists or lies inside
    a run, or a change is out of range (ValueError / FileNotFoundError).

    The fork is built in a hidden folder beside `new_path` and renamed into place whole: a
    crash or a kill midway leaves no half-made run that claims a parent.
    """
    unknown = sorted(set(changes) - set(FORKABLE))
    if unknown:
        raise ValueError(f"a fork can change {', '.join(FORKABLE)}; not {unknown}")
    model_config, train_config = parent.read_config()  # FileNotFoundError: not a run
    train_config = dataclasses.replace(train_config, **changes)  # validated
    new_path = Path(new_path)
    if new_path.exists():
        raise RunFolderTaken(f"{new_path} already exists; pick a new --run-dir for the fork")
    refuse_inside_run(new_path)
    weights, optimizer_state, step, epoch, file = _branch_point(parent, step)
    if epoch >= train_config.epochs:
        raise ValueError(
            f"the fork starts in epoch {epoch}: give it --epochs above that (now "
            f"{train_config.epochs})"
        )
    model = history.fit_weights(build_model(model_config), weights, parent.path, file)
    optimizer = torch.optim.Adam(model.parameters(), lr=train_config.lr, fused=True)
    if optimizer_state is not None:
        try:
            optimizer.load_state_dict(optimizer_state)
        except (ValueError, KeyError, RuntimeError) as e:
            raise RunDamaged(parent.path, file, f"its optimizer state does not fit: {e}") from None
    claim = claim_run_dir(new_path)  # the name is ours: built beside it, then swapped in
    building = None
    try:
        building = RunDir(tempfile.mkdtemp(prefix=f".{new_path.name}.", dir=new_path.parent))
        save_start_checkpoint(building, model, train_config, step, epoch, optimizer)
        # config.json last: until the rename, the folder is no run a listing would show
        # The parent's id finds it again after a rename (vae_core.runfolders.find_parent).
        link = {"run": str(parent.path), "step": step}
        link |= {"id": parent.run_id()} if parent.run_id() else {}
        building.write_config(model_config, train_config, parent=link)
        os.replace(building.path, claim.path)  # over the empty claimed folder, in one step
    except BaseException:
        if building is not None:
            shutil.rmtree(building.path, ignore_errors=True)
        with contextlib.suppress(OSError):
            claim.path.rmdir()  # still the empty claim: nothing is left behind
        raise
    return RunDir(new_path)


def _branch_point(
    parent: RunDir, step: int | None
) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None, int, int, str]:
    """(weights, optimizer state or None, step, epoch, the file's name in the run) at `step`
    (None: the newest). Steps come from the files' headers, never from their names."""
    checkpoints = {_checkpoint_step(parent, p): p for p in parent.checkpoints()}
    points = {p.step: p for p in history.list_points(parent)}
    if step is None:
        newest = max([*checkpoints, *points], default=None)
        if newest is None:
            raise ValueError(f"{parent.path} has no history or checkpoint to fork from yet")
        step = newest
    if step in checkpoints:
        path = checkpoints[step]
        try:
            ckpt = load_checkpoint(path)
        except UnsafeCheckpointError as e:
            raise RunDamaged(parent.path, f"checkpoints/{path.name}", e) from None
        return ckpt.model_state, ckpt.optimizer_state, step, ckpt.epoch, f"checkpoints/{path.name}"
    if step in points:
        point = points[step]
        file = f"history/{point.path.name}"
        return history.load_weights(point), None, step, point.epoch, file
    known = sorted({*checkpoints, *points})[-8:]
    raise ValueError(
        f"step {step} is in neither the history nor the checkpoints of {parent.path}; "
        f"the newest: {', '.join(map(str, known)) or 'none'}"
    )


def _checkpoint_step(run: RunDir, path: Path) -> int:
    """A checkpoint's step, from its header (RunDamaged naming the file if it has none)."""
    try:
        return int(read_safetensors_metadata(path)["step"])
    except (OSError, ValueError, KeyError) as e:
        problem = f"no step in its header ({e})"
        raise RunDamaged(run.path, f"checkpoints/{path.name}", problem) from None
