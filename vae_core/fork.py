"""Fork a run: a new run folder that starts from a parent's weights at one step.

The fork keeps the parent's architecture and dataset and may change beta, lr, warm-up,
epochs and seed. Its steps continue from the branch point, and its config.json records
`parent: {run, step, id}`. From a checkpoint it also takes the optimizer state; from a
history point (weights only) Adam starts afresh.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from vae_core import history
from vae_core.checkpoint import load_checkpoint, save_checkpoint
from vae_core.models import build_model
from vae_core.process import RunFolderTaken, claim_run_dir
from vae_core.rundir import RunDir

FORKABLE = ("beta", "lr", "epochs", "warmup_steps", "seed")


def fork_run(
    parent: RunDir, new_path: str | Path, step: int | None = None, **changes: Any
) -> RunDir:
    """Create the fork's folder, config and starting checkpoint; nothing is created when
    the parent is not a run, the step is in neither its history nor its checkpoints, the
    new folder exists, or a change is out of range (ValueError / FileNotFoundError)."""
    unknown = sorted(set(changes) - set(FORKABLE))
    if unknown:
        raise ValueError(f"a fork can change {', '.join(FORKABLE)}; not {unknown}")
    model_config, train_config = parent.read_config()  # FileNotFoundError: not a run
    train_config = dataclasses.replace(train_config, **changes)  # validated
    new_path = Path(new_path)
    if new_path.exists():
        raise RunFolderTaken(f"{new_path} already exists; pick a new --run-dir for the fork")
    weights, optimizer_state, step, epoch = _branch_point(parent, step)
    if epoch >= train_config.epochs:
        raise ValueError(
            f"the fork starts in epoch {epoch}: give it --epochs above that (now "
            f"{train_config.epochs})"
        )
    fork = claim_run_dir(new_path)
    # The parent's id finds it again after a rename (vae_core.runfolders.find_parent).
    link = {"run": str(parent.path), "step": step}
    link |= {"id": parent.run_id()} if parent.run_id() else {}
    fork.write_config(model_config, train_config, parent=link)
    model = build_model(model_config)
    model.load_state_dict(weights)
    optimizer = torch.optim.Adam(model.parameters(), lr=train_config.lr, fused=True)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
    extra = {
        "next_batch": 0,  # a fresh pass over the data, shuffled by the fork's seed
        "beta": train_config.beta,
        "lr": train_config.lr,
        "free_bits": train_config.free_bits,
        "beta_schedule": train_config.beta_schedule,
        "warmup_steps": train_config.warmup_steps,
        "warmup_start": 0,
    }
    shuffle = torch.Generator().manual_seed(train_config.seed)
    torch.manual_seed(train_config.seed)
    save_checkpoint(fork, model, optimizer, step, epoch, extra, shuffle.get_state())
    return fork


def _branch_point(
    parent: RunDir, step: int | None
) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None, int, int]:
    """(weights, optimizer state or None, step, epoch) at `step` (None: the newest)."""
    checkpoints = {int(p.stem.removeprefix("step-")): p for p in parent.checkpoints()}
    points = {p.step: p for p in history.list_points(parent)}
    if step is None:
        newest = max([*checkpoints, *points], default=None)
        if newest is None:
            raise ValueError(f"{parent.path} has no history or checkpoint to fork from yet")
        step = newest
    if step in checkpoints:
        ckpt = load_checkpoint(checkpoints[step])
        return ckpt.model_state, ckpt.optimizer_state, ckpt.step, ckpt.epoch
    if step in points:
        return history.load_weights(points[step]), None, step, points[step].epoch
    known = sorted({*checkpoints, *points})[-8:]
    raise ValueError(
        f"step {step} is in neither the history nor the checkpoints of {parent.path}; "
        f"the newest: {', '.join(map(str, known)) or 'none'}"
    )
