"""Checkpoints (full training state for an exact resume) and loading a model from a run.

A checkpoint is one safetensors file: weights, optimizer tensors and RNG states as tensors;
step, epoch, optimizer scalars and trainer extras as JSON in the header. Loading never
unpickles. Only the trainer holding the run's lock writes them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vae_core.atomic import atomic_save_tensors
from vae_core.build import build_model
from vae_core.config import TrainConfig
from vae_core.models import LatentVariableModel, pick_device
from vae_core.run_errors import RunDamaged
from vae_core.rundir import RunDir
from vae_core.safetensors_io import UnsafeCheckpointError, load_safetensors

CHECKPOINTS_KEPT = 3


class NonFiniteWeightsError(ValueError):
    """Weights or optimizer state hold NaN/inf; such a state is never written as a checkpoint."""


@dataclass
class Checkpoint:
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any] | None
    step: int
    epoch: int
    rng_state: torch.Tensor | None
    generator_state: torch.Tensor | None
    extra: dict[str, Any]


def save_checkpoint(
    run: RunDir,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    epoch: int,
    extra: dict[str, Any] | None = None,
    generator_state: torch.Tensor | None = None,
) -> Path:
    """Weights + optimizer state + RNG in one file; keeps the newest CHECKPOINTS_KEPT.

    Raises NonFiniteWeightsError instead of writing NaN/inf: a resume must always start
    from weights that can train.
    """
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt_tensors, opt_meta = _flatten_optimizer_state(optimizer.state_dict())
    tensors.update(opt_tensors)
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not v.isfinite().all()]
    if bad:
        raise NonFiniteWeightsError(f"not saving step {step}: non-finite values in {bad[:3]}")
    tensors["rng.torch"] = torch.get_rng_state()
    if generator_state is not None:
        tensors["rng.generator"] = generator_state
    meta = {
        "step": str(step),
        "epoch": str(epoch),
        "optimizer": json.dumps(opt_meta),
        "extra": json.dumps(extra or {}),
    }
    run.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    path = run.checkpoint_dir / f"step-{step:09d}.safetensors"
    atomic_save_tensors(path, tensors, meta)
    for old in run.checkpoints()[:-CHECKPOINTS_KEPT]:
        old.unlink(missing_ok=True)
    return path


def save_start_checkpoint(
    run: RunDir,
    model: torch.nn.Module,
    train_config: TrainConfig,
    step: int,
    epoch: int,
    optimizer: torch.optim.Optimizer | None = None,
) -> Path:
    """The checkpoint a trainer resumes a new run from (a fork, an imported model): these
    weights at `step` (with `optimizer`'s state, else a fresh Adam), a fresh pass over the
    data, and the config's live settings from step 0."""
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=train_config.lr)
    extra = {
        "next_batch": 0,  # a fresh pass over the data, shuffled by the run's seed
        "beta": train_config.beta,
        "lr": train_config.lr,
        "free_bits": train_config.free_bits,
        "beta_schedule": train_config.beta_schedule,
        "warmup_steps": train_config.warmup_steps,
        "warmup_start": 0,
    }
    shuffle = torch.Generator().manual_seed(train_config.seed)
    torch.manual_seed(train_config.seed)
    return save_checkpoint(run, model, optimizer, step, epoch, extra, shuffle.get_state())


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint (or a bare weights file) written as safetensors; never unpickles."""
    tensors, meta = load_safetensors(path)
    if not any(k.startswith("model.") for k in tensors):
        # A plain state_dict saved by the user: weights only.
        return Checkpoint(tensors, None, 0, 0, None, None, {})
    try:
        model_state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
        optimizer_state = None
        if "optimizer" in meta:
            optimizer_state = _unflatten_optimizer_state(tensors, json.loads(meta["optimizer"]))
        return Checkpoint(
            model_state=model_state,
            optimizer_state=optimizer_state,
            step=int(meta.get("step", 0)),
            epoch=int(meta.get("epoch", 0)),
            rng_state=tensors.get("rng.torch"),
            generator_state=tensors.get("rng.generator"),
            extra=json.loads(meta.get("extra", "{}")),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise UnsafeCheckpointError(f"{Path(path).name} has a damaged header: {e}") from e


def _flatten_optimizer_state(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer state_dict into tensors (safetensors) and JSON scalars."""
    tensors, scalars = {}, {}
    for param_id, param_state in state["state"].items():
        scalars[str(param_id)] = {}
        for name, value in param_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{param_id}.{name}"] = value
            else:
                scalars[str(param_id)][name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer_state(tensors: dict[str, torch.Tensor], meta: dict) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {int(k): dict(v) for k, v in meta["scalars"].items()}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, param_id, name = key.split(".", 2)
            state.setdefault(int(param_id), {})[name] = value
    # JSON turned tuples (Adam's betas) into lists; `params` is the one real list.
    groups = [
        {k: v if k == "params" or not isinstance(v, list) else tuple(v) for k, v in group.items()}
        for group in meta["param_groups"]
    ]
    return {"state": state, "param_groups": groups}


def snapshot_model(run: RunDir) -> tuple[LatentVariableModel, int]:
    """A fresh eval-mode VAE holding `run`'s newest snapshot, and that snapshot's version.

    Readers decode with this copy; they never share tensors with the trainer. Callers
    cache it by (run path, version) and call `run.snapshot_version()` to poll cheaply.
    """
    model_config, _ = run.read_config()
    if not run.snapshot_path.is_file():
        raise FileNotFoundError(f"{run.path} has no snapshot yet; the trainer is still starting")
    state, meta = run.load_snapshot()
    return _model_from_state(run, model_config, state), _int(meta.get("version", 0))


def load_run_model(
    run: RunDir, checkpoint: str | Path | None = None, device: str = "cpu"
) -> LatentVariableModel:
    """The run's model with the newest weights it has: the snapshot when it is at least as new
    as the newest checkpoint (so a run killed before its first checkpoint still loads), else
    that checkpoint; or exactly `checkpoint` when one is given."""
    model_config, _ = run.read_config()
    if checkpoint is not None:
        state = load_checkpoint(checkpoint).model_state
    else:
        state = _newest_weights(run)
    return _model_from_state(run, model_config, state).to(pick_device(device)).eval()


def _newest_weights(run: RunDir) -> dict[str, torch.Tensor]:
    ckpt_path = run.latest_checkpoint()
    try:
        snapshot_step = _int(run.snapshot_metadata().get("step", -1))
    except FileNotFoundError:
        snapshot_step = -1
    ckpt_step = -1 if ckpt_path is None else _int(ckpt_path.stem.removeprefix("step-"))
    if snapshot_step < 0 and ckpt_path is None:
        raise FileNotFoundError(f"{run.path} has no weights yet (no snapshot, no checkpoint)")
    if snapshot_step >= ckpt_step:
        return run.load_snapshot()[0]
    return load_checkpoint(ckpt_path).model_state


def _model_from_state(
    run: RunDir, model_config, state: dict[str, torch.Tensor]
) -> LatentVariableModel:
    model = build_model(model_config)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:  # wrong keys or shapes for this config
        first = str(e).strip().splitlines()[0]
        raise RunDamaged(run.path, "weights do not match config.json", first) from None
    return model.eval()


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1
