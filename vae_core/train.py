"""The training loop, writing a run directory: set-up, the loop, and a rank-aware Publisher
that does every write (on rank 0 only).

    python -m vae_core train --dataset fashion-mnist --run-dir runs/fmnist

The loop does not know who is watching: it publishes metrics, snapshots, status
and checkpoints through `RunDir` and reads live commands from control.json.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm import tqdm

from vae_core import history
from vae_core.atomic import DiskFull
from vae_core.build import build_model
from vae_core.checkpoint import NonFiniteWeightsError, load_checkpoint, save_checkpoint
from vae_core.config import BETA_SCHEDULES, ModelConfig, TrainConfig, check_schedule
from vae_core.control import check_control
from vae_core.data import ImageDataset, load_dataset
from vae_core.distributed import (
    ONE_PROCESS,
    RankLost,
    Ranks,
    Terminated,
    autocast,
    autocast_dtype,
    is_collective_error,
    rank_lost,
    shard,
)
from vae_core.models import LatentVariableModel, pick_device
from vae_core.objectives import elbo_terms, log_likelihood_iwae, terms_from_output
from vae_core.run_errors import RunDamaged
from vae_core.rundir import RunDir
from vae_core.status import STOPPED_BY_USER

log = logging.getLogger(__name__)

CONTROL_POLL_S = 0.2  # how often the loop looks at control.json
HEARTBEAT_S = 1.0  # how often status.json is rewritten, from its own thread
MAX_CONTROL_SEQ = 2**53  # control.json's seq must stay exact as a float64 (the rank broadcast)
MAX_BAD_STEPS = 10  # consecutive non-finite steps before the run fails
ACTIVE_KL_NATS = 0.01  # a dimension with less KL than this is one the decoder ignores


class RunInUse(ValueError):
    """`train` without resume on a folder that already holds a run."""


class TrainingDiverged(RuntimeError):
    """The loss or gradient stayed NaN/inf; the run failed with its last good weights saved."""


def beta_at(
    step: int, beta: float, warmup_steps: int, schedule: str = "linear", cycle_ratio: float = 0.5
) -> float:
    """The KL weight at `step` steps into the schedule.

    linear: 0 -> beta over `warmup_steps`, then beta (Bowman et al. 2016). cyclical: the same
    ramp repeated every `warmup_steps`, rising over the first `cycle_ratio` of each period
    and holding beta for the rest (Fu et al. 2019). constant, or no warm-up: beta.
    """
    if schedule == "constant" or warmup_steps <= 0:
        return beta
    if schedule == "cyclical":
        phase = (step % warmup_steps) / warmup_steps  # in [0, 1)
        return beta * min(1.0, phase / cycle_ratio)
    return beta * min(1.0, step / warmup_steps)


def default_num_threads() -> int:
    """All cores: a standalone run has the machine (the app passes cores - 1 itself)."""
    return os.cpu_count() or 1


@dataclass
class LiveSettings:
    """What control.json can change while the run goes on; all of it is checkpointed."""

    beta: float
    lr: float
    free_bits: float = 0.0
    beta_schedule: str = "linear"
    warmup_steps: int = 0
    warmup_start: int = 0  # the step the current warm-up (or first cycle) began at
    paused: bool = False
    stop: bool = False
    seq: int = 0  # the newest control.json applied; older ones (and this one) are done
    changes: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_config(cls, cfg: TrainConfig, seq: int = 0) -> LiveSettings:
        return cls(
            beta=cfg.beta,
            lr=cfg.lr,
            free_bits=cfg.free_bits,
            beta_schedule=cfg.beta_schedule,
            warmup_steps=cfg.warmup_steps,
            seq=seq,
        )

    def beta_at(self, step: int, cycle_ratio: float) -> float:
        return beta_at(
            step - self.warmup_start, self.beta, self.warmup_steps, self.beta_schedule, cycle_ratio
        )

    def resumable(self) -> dict[str, Any]:
        """The fields a checkpoint keeps so that a resume continues the same schedules."""
        names = ("beta", "lr", "free_bits", "beta_schedule", "warmup_steps", "warmup_start")
        return {name: getattr(self, name) for name in names}

    def as_vector(self) -> list[float]:
        """Every field a rank needs, as numbers: rank 0 broadcasts them to the others."""
        schedule = BETA_SCHEDULES.index(self.beta_schedule)
        fields = (self.beta, self.lr, self.free_bits, schedule, self.warmup_steps)
        return [*map(float, fields), self.warmup_start, self.paused, self.stop, self.seq]

    def load_vector(self, v: list[float]) -> None:
        self.beta, self.lr, self.free_bits = v[0], v[1], v[2]
        self.beta_schedule = BETA_SCHEDULES[int(v[3])]
        self.warmup_steps, self.warmup_start = int(v[4]), int(v[5])
        self.paused, self.stop, self.seq = bool(v[6]), bool(v[7]), int(v[8])

    def update(self, changes: dict[str, Any], step: int) -> None:
        """Apply checked changes; a new warm-up length or schedule starts again at `step`
        (the same value sent again changes nothing)."""
        restart = any(
            changes[name] != getattr(self, name)
            for name in ("warmup_steps", "beta_schedule")
            if name in changes
        )
        for name, value in changes.items():
            setattr(self, name, value)
        if restart:
            self.warmup_start = step


def apply_control(run: RunDir, live: LiveSettings, step: int = 0) -> bool:
    """Fold a new control.json into `live`; True if something changed.

    A command with an unknown key or an out-of-range value is refused whole (and logged):
    control.json is a file anyone can write, so the trainer checks it as the CLI does.
    """
    try:
        control = run.read_control()
    except RunDamaged as e:
        log.warning("%s", e)
        return False
    seq = control.get("seq", 0)
    if type(seq) is not int or not live.seq < seq < MAX_CONTROL_SEQ:
        return False
    live.seq = seq
    command, changes = control.get("command"), control.get("set", {})
    try:
        changes = check_control(command, changes if isinstance(changes, dict) else {"set": 0})
        _check_schedule_after(live, changes)
    except ValueError as e:
        log.warning("control %d refused: %s", seq, e)
        return False
    live.update(changes, step)
    if command == "pause":
        live.paused = True
    elif command == "resume":
        live.paused = False
    elif command == "stop":
        live.stop = True
    live.changes.append({"command": command, "changed": sorted(changes)})
    return True


def _check_schedule_after(live: LiveSettings, changes: dict[str, Any]) -> None:
    """ValueError if `changes` would leave a cyclical schedule with too short a period."""
    schedule = changes.get("beta_schedule", live.beta_schedule)
    check_schedule(schedule, changes.get("warmup_steps", live.warmup_steps))


@dataclass
class Position:
    """Where training stands, and where a resume picks up: the epoch, the next batch in it,
    and the shuffle RNG's state at that epoch's start (to replay the same order)."""

    step: int
    epoch: int
    next_batch: int
    epoch_rng: torch.Tensor


class Every:
    """`due()` is True at most once every `seconds` (monotonic clock); first call: `start`."""

    def __init__(self, seconds: float, start: bool = True) -> None:
        self.seconds = seconds
        self.last = -math.inf if start else time.monotonic()

    def due(self) -> bool:
        now = time.monotonic()
        if now - self.last < self.seconds:
            return False
        self.last = now
        return True


class Heartbeat:
    """Writes status.json every HEARTBEAT_S from its own thread, so that loading a dataset,
    a long test evaluation or a checkpoint never makes a live run look dead.

    The loop updates `fields` (plain dict writes, atomic under the GIL); `write()` publishes
    a state change at once. Writes are serialised, and none happens after `stop()`.
    """

    def __init__(self, run: RunDir, **fields: Any) -> None:
        self.run = run
        self.fields: dict[str, Any] = {"state": "starting", **fields}
        self._write_lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self.write()
        self._thread.start()
        return self

    def write(self, state: str | None = None, **fields: Any) -> None:
        self.fields.update(fields, **({"state": state} if state else {}))
        with self._write_lock:
            if not self._stopped.is_set():
                fields = dict(self.fields)
                self.run.write_status(fields.pop("state"), **fields)

    def stop(self, state: str | None = None, **fields: Any) -> None:
        """Stop beating; then write the final state, if given, as the last word."""
        self.fields.update(fields)
        with self._write_lock:
            self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()
        if state is not None:
            final = dict(self.fields, state=state)
            self.run.write_status(final.pop("state"), **final)

    def _beat(self) -> None:
        while not self._stopped.wait(HEARTBEAT_S):
            try:
                self.write()
            except OSError as e:  # a full disk must not kill the trainer from this thread
                log.warning("heartbeat not written: %s", e)


@torch.no_grad()
def evaluate(
    model: LatentVariableModel,
    data: ImageDataset,
    batch_size: int,
    device: torch.device,
    max_batches: int | None,
    ranks: Ranks = ONE_PROCESS,
) -> dict[str, Any]:
    """Test-set ELBO terms (beta = 1), nats per example. Under torchrun every rank evaluates
    its share of the batches and the sums are added up: no rank waits on another's work."""
    model.eval()
    n, recon, kl_per_dim = 0, 0.0, torch.zeros(model.config.latent_dim, device=device)
    for b, start in enumerate(range(0, len(data), batch_size)):
        if max_batches is not None and b >= max_batches:
            break
        if b % ranks.world_size != ranks.rank:
            continue
        x = data.batch(slice(start, start + batch_size), device)
        terms = elbo_terms(model, x)
        n += x.shape[0]
        recon += terms.recon.sum().item()
        kl_per_dim += terms.kl_per_dim.sum(0)
    model.train()
    sums = torch.tensor([n, recon, *kl_per_dim.tolist()], dtype=torch.float64)
    n, recon, *kl_sums = ranks.sum(sums).tolist()
    kl_per_dim = [k / n for k in kl_sums]
    kl = sum(kl_per_dim)
    return {"elbo": -(recon / n + kl), "recon": recon / n, "kl": kl, "kl_per_dim": kl_per_dim}


@torch.no_grad()
def evaluate_iwae(
    model: LatentVariableModel,
    data: ImageDataset,
    k: int,
    n: int,
    device: torch.device,
    ranks: Ranks = ONE_PROCESS,
) -> dict[str, Any]:
    """The IWAE bound (Burda et al. 2015) beside the ELBO on the first `n` test images
    (shared out among the ranks under torchrun).

    Their gap estimates KL(q(z|x) || p(z|x)): ELBO = log p(x) - KL(q || p(z|x)). Fixed
    images and a bounded k keep its cost the same at every evaluation; {} when off.
    """
    n = min(n, len(data))
    if k < 1 or n < ranks.world_size:
        return {}
    t0 = time.monotonic()
    model.eval()
    x = data.batch(torch.arange(n)[ranks.rank :: ranks.world_size], device)
    local = [elbo_terms(model, x).elbo.sum().item(), log_likelihood_iwae(model, x, k).sum().item()]
    model.train()
    elbo, iwae = (t / n for t in ranks.sum(torch.tensor(local, dtype=torch.float64)).tolist())
    return {
        "iwae": iwae,
        "iwae_elbo": elbo,
        "iwae_gap": iwae - elbo,
        "iwae_k": k,
        "iwae_n": n,
        "iwae_seconds": time.monotonic() - t0,
    }


def train(
    model_config: ModelConfig,
    train_config: TrainConfig,
    run: RunDir,
    resume: bool = False,
    progress: bool = False,
    live_overrides: dict[str, float] | None = None,
    ranks: Ranks | None = None,
    spent_control_seq: int | None = None,
) -> dict[str, Any]:
    """Train a VAE, publishing everything to `run`; returns the final summary.

    The run folder's OS lock is held for the whole call: a second trainer is refused
    (RunLocked) before it changes anything, and so is a fresh start in a used folder
    (RunInUse). With resume=True the newest checkpoint restores weights, optimizer, step and
    RNG; `live_overrides` (beta, lr) then replace the values in force, e.g. a lower lr after
    a divergence. Raises TrainingDiverged when the loss stays NaN/inf. Under torchrun
    (`ranks` from `distributed.init_ranks`) only rank 0 touches the folder: it alone writes
    config.json and status.json. `spent_control_seq`: the newest control.json sent before a
    launcher (vae_core.process) started this process; None: worked out from the folder.
    """
    ranks = ranks or ONE_PROCESS
    overrides = check_control(None, live_overrides or {})
    if model_config.card is not None and model_config.card.not_trainable:
        raise ValueError(
            f"this imported model can be explored, not trained: {model_config.card.not_trainable}"
        )
    if not ranks.is_main:  # trains, and follows rank 0's live settings; writes nothing
        return _train(model_config, train_config, run, resume, False, overrides, None, ranks)
    if not resume and run.exists():
        raise RunInUse(
            f"{run.path} already holds a run; pass --resume to continue it, or pick a new --run-dir"
        )
    with run.acquire_lock():
        spent = _spent_control_seq(run) if spent_control_seq is None else spent_control_seq
        previous = run.read_status() if resume else None
        heartbeat = Heartbeat(
            run,
            step=previous.step if previous else 0,
            epoch=previous.epoch if previous else 0,
            control_seq=spent,
        )
        try:
            return _train(
                model_config, train_config, run, resume, progress, overrides, heartbeat, ranks
            )
        except BaseException as e:
            # Readers (the UI) learn why the trainer died from status.json, not a traceback.
            failure = rank_lost(e) if ranks.distributed and is_collective_error(e) else e
            named = isinstance(failure, TrainingDiverged | RankLost | Terminated | DiskFull)
            heartbeat.stop("failed", reason=str(failure) if named else f"{type(e).__name__}: {e}")
            if failure is not e:
                raise failure from e
            raise
        finally:
            run.close()


def _spent_control_seq(run: RunDir) -> int:
    """The newest command this trainer must not obey: commands sent while no trainer ran are
    discarded (a stale stop must not end a resume). A launcher says so itself, counting from
    its launch (vae_core.process), so commands sent while the trainer imports are kept."""
    previous = run.read_status()
    try:
        pending = run.read_control().get("seq", 0)
    except RunDamaged:
        pending = 0
    pending = pending if type(pending) is int else 0
    return max(previous.control_seq if previous else 0, pending)


def _train(
    model_config: ModelConfig,
    cfg: TrainConfig,
    run: RunDir,
    resume: bool,
    progress: bool,
    overrides: dict[str, float],
    heartbeat: Heartbeat | None,  # None on ranks other than 0: they write nothing
    ranks: Ranks,
) -> dict[str, Any]:
    """Set up, run the loop, finish; every write to the folder goes through a Publisher."""
    publisher = Publisher(run, heartbeat)
    s = _set_up(model_config, cfg, run, resume, overrides, publisher, ranks)
    steps_per_epoch = _steps_per_epoch(len(s.train_data), cfg.batch_size, ranks.world_size)
    total_steps = steps_per_epoch * cfg.epochs
    bar = tqdm(total=total_steps, initial=s.at.step, disable=not progress, unit="step", leave=False)
    pids = ranks.gather_ints(os.getpid())
    publisher.running(s.model, s.at, s.live, s.clock, total_steps=total_steps, pids=pids)
    # The newest history point (rank 0 reads the folder); -1: none, the time-lapse starts
    # from the untrained weights.
    s.last_point = int(ranks.from_main([publisher.last_history_step(s.at)])[0])
    if s.last_point < 0:
        s.last_point = _save_history(s, publisher, ranks)
    s.model.train()
    _loop(s, run, publisher, ranks, steps_per_epoch, bar)
    bar.close()
    return _finish(s, run, publisher, ranks)


@dataclass
class _Session:
    """What the loop works on, as _set_up made it; `at` and the counters move."""

    cfg: TrainConfig
    device: torch.device
    amp_dtype: torch.dtype | None
    live: LiveSettings
    train_data: ImageDataset
    test_data: ImageDataset
    model: LatentVariableModel
    net: torch.nn.Module  # what the step calls: the model, or DDP around it
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    shuffle: torch.Generator  # data order, the same on every rank
    at: Position
    window: _Window
    clock: Throughput = field(default_factory=lambda: Throughput())
    bad_steps: int = 0  # non-finite steps in a row
    last_point: int = -1  # the newest history point's step
    test: dict[str, Any] | None = None  # the newest test evaluation


def _set_up(
    model_config: ModelConfig,
    cfg: TrainConfig,
    run: RunDir,
    resume: bool,
    overrides: dict[str, float],
    publisher: Publisher,
    ranks: Ranks,
) -> _Session:
    """Config, data, model; the newest checkpoint restored on resume, then `overrides`."""
    torch.set_num_threads(cfg.num_threads or default_num_threads())
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device, ranks.local_rank if ranks.distributed else None)
    amp_dtype = autocast_dtype(cfg.precision, device)
    publisher.start(model_config, cfg, ranks, device)
    live = LiveSettings.from_config(cfg, seq=publisher.spent_control_seq)
    options = dict(cfg.dataset_options)
    caching = publisher.caching_progress()  # a first load of a big set builds its disk cache
    train_data = load_dataset(cfg.dataset, "train", cfg.data_dir, progress=caching, **options)
    test_data = load_dataset(cfg.dataset, "test", cfg.data_dir, progress=caching, **options)
    publisher.data_loaded()
    model, optimizer, scaler = _build(model_config, cfg, device, amp_dtype)
    shuffle = torch.Generator().manual_seed(cfg.seed)
    at = Position(step=0, epoch=0, next_batch=0, epoch_rng=shuffle.get_state())
    if resume:
        at = _restore(run, model, optimizer, shuffle, live, publisher) or at
    if ranks.distributed:
        # Each rank draws its own reparameterisation noise; the weights stay rank 0's.
        torch.manual_seed(cfg.seed + 1_000_003 * ranks.rank + at.step)
    net = _parallel(model, ranks, device)  # DDP averages the gradients
    if overrides:
        _check_schedule_after(live, overrides)
        live.update(overrides, at.step)
        live.changes.append({"command": "resume", "changed": sorted(overrides)})
        publisher.control(at, live)
    _set_lr(optimizer, live.lr)
    if cfg.batch_size < ranks.world_size:
        raise ValueError(
            f"--batch-size {cfg.batch_size} is the global batch: it must be at least the "
            f"number of processes ({ranks.world_size})"
        )
    return _Session(
        cfg=cfg,
        device=device,
        amp_dtype=amp_dtype,
        live=live,
        train_data=on_device(train_data, device),
        test_data=test_data,
        model=model,
        net=net,
        optimizer=optimizer,
        scaler=scaler,
        shuffle=shuffle,
        at=at,
        window=_Window(model_config.latent_dim, device),
    )


def _build(
    model_config: ModelConfig, cfg: TrainConfig, device: torch.device, amp_dtype: Any
) -> tuple[LatentVariableModel, torch.optim.Optimizer, torch.amp.GradScaler]:
    """The model on `device`, its optimizer and the fp16 loss scaler (off otherwise)."""
    model = build_model(model_config).to(device)
    if model_config.architecture == "conv":
        # oneDNN convolutions run faster on NHWC: +15 % samples/s measured on this CPU
        model = model.to(memory_format=torch.channels_last)
    # fused: one kernel per parameter tensor for the whole update (profiled: the
    # per-op Adam was a quarter of a CPU step)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=True)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    return model, optimizer, scaler


def _loop(
    s: _Session, run: RunDir, publisher: Publisher, ranks: Ranks, steps_per_epoch: int, bar: tqdm
) -> None:
    """Epochs of steps until the last epoch or a stop; publishes rows, snapshots,
    checkpoints and history points as they fall due."""
    cfg = s.cfg
    control, snapshot = Every(CONTROL_POLL_S), Every(cfg.snapshot_every_s)
    checkpoint = Every(cfg.checkpoint_every_s, start=False)
    while s.at.epoch < cfg.epochs and not s.live.stop:
        order = torch.randperm(len(s.train_data), generator=s.shuffle)
        while s.at.next_batch < steps_per_epoch:
            # live control (pause / stop / beta / lr), a few times a second, on every rank
            if ranks.from_main([control.due()])[0] and not _obey_control(s, run, publisher, ranks):
                break  # stopped
            beta = _step(s, order, run, publisher, ranks)
            if beta is None:
                continue  # a non-finite step, skipped
            bar.update(1)
            if s.at.step % cfg.log_every == 0:
                publisher.train_row(s.at, s.window.flush(ranks, s.live), beta, s.live, s.clock)
            if snapshot.due():
                publisher.snapshot(s.model, s.at)
            if checkpoint.due():
                publisher.checkpoint(s.model, s.optimizer, s.at, s.live)
            if history.due(s.at.step, s.last_point):  # by step: every rank agrees
                s.last_point = _save_history(s, publisher, ranks)
        if s.live.stop:
            break
        _end_epoch(s, publisher, ranks)


def _obey_control(s: _Session, run: RunDir, publisher: Publisher, ranks: Ranks) -> bool:
    """Apply control.json; wait out a pause. False when the run is to stop."""
    _poll_control(run, s.live, s.optimizer, s.at, ranks, publisher)
    while s.live.paused and not s.live.stop:
        publisher.status("paused", s.at, s.live, s.clock)
        time.sleep(CONTROL_POLL_S)
        _poll_control(run, s.live, s.optimizer, s.at, ranks, publisher)
    if s.live.stop:
        return False
    publisher.progress(s.at, s.live, s.clock, state="running")
    return True


def _step(
    s: _Session, order: torch.Tensor, run: RunDir, publisher: Publisher, ranks: Ranks
) -> float | None:
    """One optimisation step on the next batch; the beta it used, None if it was skipped."""
    cfg, at = s.cfg, s.at
    t0 = time.monotonic()
    idx = order[at.next_batch * cfg.batch_size : (at.next_batch + 1) * cfg.batch_size]
    at.next_batch += 1
    x = s.train_data.batch(shard(idx, ranks), s.device)  # (B, C, H, W) float in [0, 1]
    beta = s.live.beta_at(at.step, cfg.cycle_ratio)
    with autocast(s.device, s.amp_dtype):
        out = s.net(x)
    terms = terms_from_output(s.model, x, out)  # the loss in fp32, whatever the forward
    loss = terms.loss(beta, s.live.free_bits)
    s.optimizer.zero_grad(set_to_none=True)
    s.scaler.scale(loss).backward()
    s.scaler.unscale_(s.optimizer)
    # The norm alone: clip_grad_norm_ would also multiply every gradient by 1.
    grads = [p.grad for p in s.model.parameters() if p.grad is not None]
    grad_norm = torch.nn.utils.get_total_norm(grads)
    if not ranks.all_finite(loss, grad_norm):
        _skip_step(s, run, publisher, loss)
        return None
    s.bad_steps = 0
    s.scaler.step(s.optimizer)
    s.scaler.update()
    at.step += 1
    s.clock.add(len(idx), time.monotonic() - t0)  # the global batch: every rank's share
    s.window.add(terms, loss, grad_norm)
    return beta


def _skip_step(s: _Session, run: RunDir, publisher: Publisher, loss: torch.Tensor) -> None:
    """No update (on every rank), so one bad batch cannot poison the weights; too many in a
    row fail the run. With fp16, an overflow is the loss scale's to handle, not a divergence."""
    if s.scaler.is_enabled():
        s.scaler.update()
        return
    s.bad_steps += 1
    s.window.bad_steps += 1
    if s.bad_steps >= MAX_BAD_STEPS:
        _diverge(s, publisher, loss)


def _end_epoch(s: _Session, publisher: Publisher, ranks: Ranks) -> None:
    """Evaluate on the test split (beta = 1, shared out), log it, checkpoint."""
    at, cfg = s.at, s.cfg
    at.epoch, at.next_batch, at.epoch_rng = at.epoch + 1, 0, s.shuffle.get_state()
    publisher.progress(at, s.live, s.clock)
    test = evaluate(s.model, s.test_data, cfg.batch_size, s.device, cfg.eval_batches, ranks)
    test |= evaluate_iwae(s.model, s.test_data, cfg.iwae_k, cfg.iwae_n, s.device, ranks)
    publisher.test_row(at, test)
    publisher.checkpoint(s.model, s.optimizer, at, s.live)
    s.test = test
    if s.last_point != at.step:  # every epoch end is a point of the time-lapse
        s.last_point = _save_history(s, publisher, ranks)


def _finish(s: _Session, run: RunDir, publisher: Publisher, ranks: Ranks) -> dict[str, Any]:
    """Final weights everywhere, state finished; the summary the CLI prints."""
    cfg = s.cfg
    test = s.test
    if test is None:
        test = evaluate(s.model, s.test_data, cfg.batch_size, s.device, cfg.eval_batches, ranks)
    publisher.finished(s.model, s.optimizer, s.at, s.live, s.clock)
    return {
        "test_loss": -test["elbo"],
        "test": test,
        "samples_per_s": s.clock.samples_per_s,
        "step": s.at.step,
        "epoch": s.at.epoch,
        "stopped": s.live.stop,
        "run_dir": str(run.path),
        "rank": ranks.rank,
        "world_size": ranks.world_size,
    }


def _main_only(method: Callable[..., Any]) -> Callable[..., Any]:
    """A Publisher method that does nothing (returns None) on ranks other than 0."""

    @functools.wraps(method)
    def on_main(self: Publisher, *args: Any, **kwargs: Any) -> Any:
        return method(self, *args, **kwargs) if self.heartbeat is not None else None

    return on_main


class Publisher:
    """Everything the trainer writes to the run folder, rank-aware: on rank 0 (which holds
    the heartbeat) each method writes; on the other ranks each does nothing. The loop calls
    it unguarded, so no step of it asks which rank it runs on."""

    def __init__(self, run: RunDir, heartbeat: Heartbeat | None) -> None:
        self.run = run
        self.heartbeat = heartbeat

    @property
    def spent_control_seq(self) -> int:
        """The newest command this trainer must not obey (rank 0's to know)."""
        return self.heartbeat.fields["control_seq"] if self.heartbeat is not None else 0

    @_main_only
    def start(
        self, model_config: ModelConfig, cfg: TrainConfig, ranks: Ranks, device: torch.device
    ) -> None:
        """config.json (the trainer's alone to write), then status.json, beating from now."""
        self.run.write_config(model_config, cfg)
        self.run.remove_temp_files()  # left by a trainer killed mid-write
        self.heartbeat.fields.update(
            world_size=ranks.world_size,
            backend=ranks.backend,
            device=str(device),
            precision=cfg.precision,
        )
        self.heartbeat.start()

    @_main_only
    def caching_progress(self) -> Callable[[int, int], None]:
        """status.json's `caching` field, [done, total], while a dataset cache is being
        built (the heartbeat thread publishes it; the app draws a progress bar)."""

        def report(done: int, total: int) -> None:
            self.heartbeat.fields["caching"] = [done, total]

        return report

    @_main_only
    def data_loaded(self) -> None:
        self.heartbeat.fields.pop("caching", None)

    @_main_only
    def resumed(self, step: int, epoch: int, live: LiveSettings) -> None:
        """A `resume` row: readers drop the rows the previous trainer logged past `step`."""
        self.run.log_metrics(step=step, epoch=epoch, event="resume", beta=live.beta, lr=live.lr)

    @_main_only
    def control(self, at: Position, live: LiveSettings, announce: bool = False) -> None:
        """A control row (the curves mark live changes with a dashed line); `announce`: say
        at once in status.json which command is applied (a sender merges newer ones)."""
        change = live.changes[-1]
        settings = {k: v for k, v in live.resumable().items() if k != "warmup_start"}
        self.run.log_metrics(step=at.step, epoch=at.epoch, event="control", **change, **settings)
        if announce:
            self.heartbeat.write(control_seq=live.seq, beta=live.beta, lr=live.lr)

    @_main_only
    def running(
        self, model: LatentVariableModel, at: Position, live: LiveSettings, clock: Throughput,
        **fields: Any,
    ) -> None:  # fmt: skip
        self.status("running", at, live, clock, **fields)
        self.run.publish_snapshot(model, at.step)

    @_main_only
    def status(
        self, state: str, at: Position, live: LiveSettings, clock: Throughput, **fields: Any
    ) -> None:
        """A state change, written at once."""
        self.heartbeat.write(state, **fields, **_progress(at, live, clock))

    @_main_only
    def progress(self, at: Position, live: LiveSettings, clock: Throughput, **fields: Any) -> None:
        """What the heartbeat thread writes next."""
        self.heartbeat.fields.update(**fields, **_progress(at, live, clock))

    @_main_only
    def train_row(
        self, at: Position, row: dict[str, Any], beta: float, live: LiveSettings, clock: Throughput
    ) -> None:
        self.run.log_metrics(
            step=at.step,
            epoch=at.epoch,
            split="train",
            **row,
            beta=beta,
            free_bits=live.free_bits,
            lr=live.lr,
            samples_per_s=clock.samples_per_s,
        )
        self.progress(at, live, clock)

    @_main_only
    def test_row(self, at: Position, test: dict[str, Any]) -> None:
        self.run.log_metrics(step=at.step, epoch=at.epoch, split="test", **test)

    @_main_only
    def snapshot(self, model: LatentVariableModel, at: Position) -> None:
        self.run.publish_snapshot(model, at.step)

    @_main_only
    def checkpoint(
        self,
        model: LatentVariableModel,
        optimizer: torch.optim.Optimizer,
        at: Position,
        live: LiveSettings,
    ) -> None:
        extra = {"next_batch": at.next_batch, **live.resumable()}
        try:
            save_checkpoint(self.run, model, optimizer, at.step, at.epoch, extra, at.epoch_rng)
        except NonFiniteWeightsError as e:
            log.warning("%s; the previous checkpoint stays the newest", e)

    @_main_only
    def history_point(self, model: LatentVariableModel, at: Position, elbo: float) -> None:
        history.save_point(self.run, model, at.step, at.epoch, elbo)

    def last_history_step(self, at: Position) -> int:
        """The newest history point to continue from (-1: none, a fresh run saves its
        initial weights); 0 on other ranks, which take rank 0's."""
        if self.heartbeat is None:
            return 0
        history.drop_after(self.run, at.step)
        points = history.list_points(self.run)
        return points[-1].step if points else -1

    @_main_only
    def failed_row(self, at: Position, reason: str) -> None:
        self.run.log_metrics(step=at.step, epoch=at.epoch, event="failed", reason=reason)

    @_main_only
    def finished(
        self,
        model: LatentVariableModel,
        optimizer: torch.optim.Optimizer,
        at: Position,
        live: LiveSettings,
        clock: Throughput,
    ) -> None:
        self.checkpoint(model, optimizer, at, live)
        self.run.publish_snapshot(model, at.step)
        reason = STOPPED_BY_USER if live.stop else ""
        self.heartbeat.stop("finished", reason=reason, **_progress(at, live, clock))


def _steps_per_epoch(num_images: int, batch_size: int, world_size: int) -> int:
    """Batches per epoch; a last batch smaller than the number of processes is left out (one
    rank would get no rows), so that total_steps is what the run will reach."""
    full, rest = divmod(num_images, batch_size)
    return full + (rest >= world_size)


def _parallel(model: LatentVariableModel, ranks: Ranks, device: torch.device) -> torch.nn.Module:
    """`model` itself for one process; wrapped in DistributedDataParallel under torchrun
    (which also copies rank 0's initial weights to every rank)."""
    if not ranks.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def on_device(data: ImageDataset, device: torch.device) -> ImageDataset:
    """On CUDA, an in-memory split moves to the GPU once (uint8), so batches are sliced
    there; a memory-mapped one stays on disk and each batch is copied over."""
    if device.type != "cuda" or data.on_disk:
        return data
    return dataclasses.replace(data, images=data.images.to(device), labels=data.labels.to(device))


def _restore(
    run: RunDir,
    model: LatentVariableModel,
    optimizer: torch.optim.Optimizer,
    shuffle: torch.Generator,
    live: LiveSettings,
    publisher: Publisher,
) -> Position | None:
    """Load the newest checkpoint into model, optimizer and RNGs; None if there is none.

    Rows logged after that checkpoint by the previous trainer are about to be logged again:
    a `resume` event at the checkpoint's step tells readers to drop them (rank 0 writes it).
    A checkpoint holds no trace of the world size: the global batch and the data order are
    the same for any number of processes, so any number can resume it.
    """
    path = run.latest_checkpoint()
    if path is None:
        return None
    ckpt = load_checkpoint(path)
    model.load_state_dict(ckpt.model_state)
    optimizer.load_state_dict(ckpt.optimizer_state)
    torch.set_rng_state(ckpt.rng_state)
    shuffle.set_state(ckpt.generator_state)  # the state at the start of ckpt's epoch
    saved = {k: v for k, v in ckpt.extra.items() if k in live.resumable()}
    vars(live).update(saved)  # beta, lr, free bits and the schedule, as they were
    next_batch = ckpt.extra.get("next_batch", 0)
    publisher.resumed(ckpt.step, ckpt.epoch, live)
    log.info("resumed %s at step %d (epoch %d)", run.path, ckpt.step, ckpt.epoch)
    return Position(ckpt.step, ckpt.epoch, next_batch, ckpt.generator_state)


def _save_history(s: _Session, publisher: Publisher, ranks: Ranks) -> int:
    """A history point at the current step (its test ELBO measured on every rank)."""
    batches = math.ceil(history.EVAL_IMAGES / s.cfg.batch_size)
    elbo = evaluate(s.model, s.test_data, s.cfg.batch_size, s.device, batches, ranks)["elbo"]
    publisher.history_point(s.model, s.at, elbo)
    return s.at.step


def _poll_control(
    run: RunDir,
    live: LiveSettings,
    optimizer: torch.optim.Optimizer,
    at: Position,
    ranks: Ranks,
    publisher: Publisher,
) -> None:
    """Rank 0 reads control.json; every rank then holds its settings, from this step on."""
    changed = ranks.is_main and apply_control(run, live, at.step)
    if ranks.distributed:
        *vector, changed = ranks.from_main([*live.as_vector(), changed])
        live.load_vector(vector)
    if changed:
        _set_lr(optimizer, live.lr)
        publisher.control(at, live, announce=True)


def _diverge(s: _Session, publisher: Publisher, loss: torch.Tensor) -> None:
    """Keep the last good weights (no bad step was applied) and fail the run (every rank
    sees the same non-finite steps, so all of them stop here together)."""
    at, live = s.at, s.live
    what = "loss" if not torch.isfinite(loss) else "gradient"
    reason = (
        f"{what} became NaN/inf at step {at.step} ({MAX_BAD_STEPS} steps in a row); "
        f"resume with a lower learning rate (now {live.lr:g}) or beta (now {live.beta:g})"
    )
    log.error(reason)
    publisher.failed_row(at, reason)
    publisher.checkpoint(s.model, s.optimizer, at, live)
    raise TrainingDiverged(reason)


class Throughput:
    """Samples per second of pure training time (no eval, checkpoint or pause)."""

    def __init__(self) -> None:
        self.samples, self.seconds = 0, 0.0

    def add(self, samples: int, seconds: float) -> None:
        self.samples += samples
        self.seconds += seconds

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds if self.seconds else 0.0


def _progress(at: Position, live: LiveSettings, clock: Throughput) -> dict[str, Any]:
    """The status.json fields that move while training runs."""
    return {
        "step": at.step,
        "epoch": at.epoch,
        "samples_per_s": clock.samples_per_s,
        "beta": live.beta,
        "lr": live.lr,
        "control_seq": live.seq,
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
        self.n, self.batches, self.bad_steps = 0, 0, 0
        self.recon = self.loss = self.grad_norm = 0.0
        self.grad_norm_max = torch.zeros(())
        self.kl_per_dim = self.zero()

    def add(self, terms, loss: torch.Tensor, grad_norm: torch.Tensor) -> None:
        B = terms.recon.shape[0]
        self.n += B
        self.batches += 1
        self.recon = self.recon + terms.recon.detach().sum()
        self.loss = self.loss + loss.detach()
        self.grad_norm = self.grad_norm + grad_norm.detach()
        self.grad_norm_max = torch.maximum(self.grad_norm_max, grad_norm.detach())
        self.kl_per_dim = self.kl_per_dim + terms.kl_per_dim.detach().sum(0)

    @property
    def scalars(self) -> tuple:
        return (self.n, self.recon, self.loss, self.bad_steps)

    def flush(self, ranks: Ranks, live: LiveSettings) -> dict[str, Any]:
        """The row since the last flush, over every rank's share of the batches.

        The same sum checks that every rank trains with rank 0's live settings.
        """
        settings = torch.tensor(live.as_vector(), dtype=torch.float64)
        scalars = torch.stack([torch.as_tensor(v, dtype=torch.float64).cpu() for v in self.scalars])
        sums = ranks.sum(torch.cat([settings, scalars, self.kl_per_dim.detach().double().cpu()]))
        if not torch.allclose(sums[: len(settings)], settings * ranks.world_size):
            raise RankLost(f"the training processes disagree on the live settings: {sums}")
        n, recon, loss, bad_steps, *kl_sums = sums[len(settings) :].tolist()
        kl_per_dim = [k / n for k in kl_sums]
        recon /= n
        kl = sum(kl_per_dim)
        row = {
            "elbo": -(recon + kl),
            "recon": recon,
            "kl": kl,
            "kl_per_dim": kl_per_dim,
            "active_units": sum(k > ACTIVE_KL_NATS for k in kl_per_dim),
            "loss": loss / (self.batches * ranks.world_size),
            "grad_norm": float(self.grad_norm) / self.batches,  # the same on every rank
            "grad_norm_max": float(self.grad_norm_max),
            "bad_steps": int(bad_steps) // ranks.world_size,  # skipped since the last row
        }
        self.reset()
        return row
