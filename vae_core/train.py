"""The training loop: one function, top to bottom, writing a run directory.

    python -m vae_core train --dataset fashion-mnist --run-dir runs/fmnist

The loop does not know who is watching: it publishes metrics, snapshots, status
and checkpoints through `RunDir` and reads live commands from control.json.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm import tqdm

from vae_core.config import ModelConfig, TrainConfig
from vae_core.data import ImageDataset, load_dataset
from vae_core.models import VAE, pick_device
from vae_core.objectives import elbo_terms
from vae_core.rundir import RunDir, load_checkpoint

log = logging.getLogger(__name__)

CONTROL_POLL_S = 0.2  # how often the loop looks at control.json
HEARTBEAT_S = 1.0  # how often status.json is rewritten
MAX_BAD_STEPS = 10  # consecutive non-finite steps before the run is marked failed


def beta_at(step: int, beta: float, warmup_steps: int) -> float:
    """Linear KL warm-up: 0 -> beta over `warmup_steps` (Bowman et al. 2016)."""
    if warmup_steps <= 0:
        return beta
    return beta * min(1.0, step / warmup_steps)


def default_num_threads() -> int:
    """Leave one core to the UI: cores - 1, at least 1."""
    return max(1, (os.cpu_count() or 1) - 1)


@dataclass
class LiveSettings:
    """What control.json can change while the run goes on."""

    beta: float
    lr: float
    paused: bool = False
    stop: bool = False
    seq: int = 0
    changes: list[dict[str, Any]] = field(default_factory=list)


def apply_control(run: RunDir, live: LiveSettings) -> bool:
    """Fold a new control.json into `live`; True if something changed."""
    control = run.read_control()
    if control.get("seq", 0) <= live.seq:
        return False
    live.seq = control["seq"]
    for name, value in control.get("set", {}).items():
        setattr(live, name, float(value))
    command = control.get("command")
    if command == "pause":
        live.paused = True
    elif command == "resume":
        live.paused = False
    elif command == "stop":
        live.stop = True
    live.changes.append({"command": command, "changed": sorted(control.get("set", {}))})
    return True


@torch.no_grad()
def evaluate(
    model: VAE, data: ImageDataset, batch_size: int, device: torch.device, max_batches: int | None
) -> dict[str, Any]:
    """Test-set ELBO terms (beta = 1), nats per example."""
    model.eval()
    n, recon, kl_per_dim = 0, 0.0, torch.zeros(model.config.latent_dim, device=device)
    for b, start in enumerate(range(0, len(data), batch_size)):
        if max_batches is not None and b >= max_batches:
            break
        x = data.batch(slice(start, start + batch_size), device)
        terms = elbo_terms(model, x)
        n += x.shape[0]
        recon += terms.recon.sum().item()
        kl_per_dim += terms.kl_per_dim.sum(0)
    model.train()
    kl_per_dim = (kl_per_dim / n).tolist()
    kl = sum(kl_per_dim)
    return {"elbo": -(recon / n + kl), "recon": recon / n, "kl": kl, "kl_per_dim": kl_per_dim}


def train(
    model_config: ModelConfig,
    train_config: TrainConfig,
    run: RunDir,
    resume: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Train a VAE, publishing everything to `run`; returns the final summary.

    With resume=True the newest checkpoint in `run` restores weights, optimizer,
    step and RNG, and the curves in metrics.jsonl continue where they stopped.
    """
    cfg = train_config
    # ---- set up ----
    torch.set_num_threads(cfg.num_threads or default_num_threads())
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    run.write_config(model_config, cfg)
    run.remove_temp_files()  # left by a trainer killed mid-write
    run.write_status("starting", step=0, epoch=0)
    options = dict(cfg.dataset_options)
    train_data = load_dataset(cfg.dataset, "train", cfg.data_dir, **options)
    test_data = load_dataset(cfg.dataset, "test", cfg.data_dir, **options)
    model = VAE(model_config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    shuffle = torch.Generator().manual_seed(cfg.seed)  # data order, saved for exact resume
    step, start_epoch, skip_batches = 0, 0, 0
    live = LiveSettings(beta=cfg.beta, lr=cfg.lr)
    if resume and (ckpt_path := run.latest_checkpoint()) is not None:
        ckpt = load_checkpoint(ckpt_path)
        model.load_state_dict(ckpt.model_state)
        optimizer.load_state_dict(ckpt.optimizer_state)
        torch.set_rng_state(ckpt.rng_state)
        shuffle.set_state(ckpt.generator_state)  # the state at the start of ckpt's epoch
        step, start_epoch = ckpt.step, ckpt.epoch
        skip_batches = ckpt.extra.get("next_batch", 0)
        live.beta, live.lr = ckpt.extra.get("beta", cfg.beta), ckpt.extra.get("lr", cfg.lr)
        log.info("resumed %s at step %d (epoch %d)", run.path, step, start_epoch)
    live.seq = run.read_control().get("seq", 0)  # commands sent before this start are stale
    _set_lr(optimizer, live.lr)

    steps_per_epoch = math.ceil(len(train_data) / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    bar = tqdm(total=total_steps, initial=step, disable=not progress, unit="step", leave=False)
    train_time, samples_seen, bad_steps, reason = 0.0, 0, 0, ""
    last = {"snapshot": 0.0, "checkpoint": time.monotonic(), "control": 0.0, "heartbeat": 0.0}
    window = _Window(model_config.latent_dim, device)
    # Where a resumed run picks up: (epoch, next batch in it, shuffle RNG at the epoch's start).
    epoch, next_batch, epoch_rng = start_epoch, skip_batches, shuffle.get_state()
    test: dict[str, Any] | None = None

    def status(state: str) -> None:
        sps = samples_seen / train_time if train_time else 0.0
        run.write_status(
            state,
            step=step,
            epoch=epoch,
            samples_per_s=sps,
            reason=reason,
            beta=live.beta,
            lr=live.lr,
            total_steps=total_steps,
        )

    def checkpoint() -> None:
        extra = {"next_batch": next_batch, "beta": live.beta, "lr": live.lr}
        run.save_checkpoint(model, optimizer, step, epoch, extra, generator_state=epoch_rng)
        last["checkpoint"] = time.monotonic()

    def poll_control() -> None:
        if apply_control(run, live):
            _set_lr(optimizer, live.lr)
            run.log_metrics(
                step=step,
                epoch=epoch,
                event="control",
                **live.changes[-1],
                beta=live.beta,
                lr=live.lr,
            )

    status("running")
    run.publish_snapshot(model, step)
    model.train()
    # ---- the loop ----
    while epoch < cfg.epochs and not live.stop:
        order = torch.randperm(len(train_data), generator=shuffle)
        while next_batch < steps_per_epoch:
            # -- live control (pause / stop / beta / lr), a few times a second --
            if time.monotonic() - last["control"] > CONTROL_POLL_S:
                last["control"] = time.monotonic()
                poll_control()
                while live.paused and not live.stop:
                    status("failed" if reason else "paused")
                    time.sleep(CONTROL_POLL_S)
                    poll_control()
                reason = ""
                if live.stop:
                    break
            # -- one optimisation step --
            t0 = time.monotonic()
            idx = order[next_batch * cfg.batch_size : (next_batch + 1) * cfg.batch_size]
            x = train_data.batch(idx, device)  # (B, C, H, W) float in [0, 1]
            beta = beta_at(step, live.beta, cfg.warmup_steps)
            terms = elbo_terms(model, x)
            loss = terms.loss(beta)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"))
            if not (torch.isfinite(loss) and torch.isfinite(grad_norm)):
                # Skip the update so one bad batch cannot poison the weights.
                bad_steps += 1
                next_batch += 1
                if bad_steps >= MAX_BAD_STEPS:
                    what = "loss" if not torch.isfinite(loss) else "gradient"
                    reason = (
                        f"{what} became NaN/inf at step {step}; lower the learning "
                        "rate (or beta) and resume"
                    )
                    log.warning(reason)
                    run.log_metrics(step=step, epoch=epoch, event="failed", reason=reason)
                    checkpoint()  # the last good weights: no bad step was applied
                    live.paused, bad_steps, last["control"] = True, 0, 0.0
                continue
            bad_steps = 0
            optimizer.step()
            step += 1
            next_batch += 1
            samples_seen += x.shape[0]
            window.add(terms, loss, grad_norm)
            train_time += time.monotonic() - t0
            bar.update(1)
            # -- publish: metrics row, heartbeat, snapshot, checkpoint --
            if step % cfg.log_every == 0:
                run.log_metrics(
                    step=step,
                    epoch=epoch,
                    split="train",
                    **window.flush(),
                    beta=beta,
                    lr=live.lr,
                    samples_per_s=samples_seen / max(train_time, 1e-9),
                )
            now = time.monotonic()
            if now - last["heartbeat"] > HEARTBEAT_S:
                status("running")
                last["heartbeat"] = now
            if now - last["snapshot"] > cfg.snapshot_every_s:
                run.publish_snapshot(model, step)
                last["snapshot"] = now
            if now - last["checkpoint"] > cfg.checkpoint_every_s:
                checkpoint()
        if live.stop:
            break
        # ---- end of epoch: evaluate on the test split (beta = 1), checkpoint ----
        epoch, next_batch, epoch_rng = epoch + 1, 0, shuffle.get_state()
        test = evaluate(model, test_data, cfg.batch_size, device, cfg.eval_batches)
        run.log_metrics(step=step, epoch=epoch, split="test", **test)
        checkpoint()

    # ---- finish: final weights everywhere, state finished ----
    bar.close()
    if test is None:
        test = evaluate(model, test_data, cfg.batch_size, device, cfg.eval_batches)
    checkpoint()
    run.publish_snapshot(model, step)
    reason = "stopped by user" if live.stop else ""
    status("finished")
    run.close()
    return {
        "test_loss": -test["elbo"],
        "test": test,
        "samples_per_s": samples_seen / train_time if train_time else 0.0,
        "step": step,
        "epoch": epoch,
        "stopped": live.stop,
        "run_dir": str(run.path),
    }


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


class _Window:
    """Running sums of the train terms between two metrics rows (no sync per step)."""

    def __init__(self, latent_dim: int, device: torch.device) -> None:
        self.zero = lambda: torch.zeros(latent_dim, device=device)
        self.reset()

    def reset(self) -> None:
        self.n, self.batches = 0, 0
        self.recon = self.loss = self.grad_norm = 0.0
        self.kl_per_dim = self.zero()

    def add(self, terms, loss: torch.Tensor, grad_norm: torch.Tensor) -> None:
        B = terms.recon.shape[0]
        self.n += B
        self.batches += 1
        self.recon = self.recon + terms.recon.detach().sum()
        self.loss = self.loss + loss.detach()
        self.grad_norm = self.grad_norm + grad_norm.detach()
        self.kl_per_dim = self.kl_per_dim + terms.kl_per_dim.detach().sum(0)

    def flush(self) -> dict[str, Any]:
        kl_per_dim = (self.kl_per_dim / self.n).tolist()
        recon = float(self.recon) / self.n
        kl = sum(kl_per_dim)
        row = {
            "elbo": -(recon + kl),
            "recon": recon,
            "kl": kl,
            "kl_per_dim": kl_per_dim,
            "loss": float(self.loss) / self.batches,
            "grad_norm": float(self.grad_norm) / self.batches,
        }
        self.reset()
        return row
