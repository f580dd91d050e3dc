"""What the live training view costs on a long run: 1,000,000 steps, latent size 256.

    python bench/long_run_ui.py [--steps 1000000] [--log-every 20] [--latent-dim 256] [--keep DIR]

Writes a synthetic run folder (config.json, status.json, a snapshot, and metrics.jsonl with a
train row every --log-every steps, a test row per epoch, a few live-control events and one
kill + resume with orphaned rows), then measures what the training fragment does on the server:

  first open   the first MetricsLog.refresh() of the whole file + both figures + their JSON
  refresh      after ~50 new rows: refresh + the health checks + the curves, schedule,
               ELBO-gap and KL-bar figures + what the live charts send (server CPU), and
               the bytes sent: the new rows only (the first open sends whole figures)

Goals: first open <= 2 s; a refresh <= 100 ms CPU and <= 200 KB sent. The default, a train row
every 20 steps (the trainer's default), is 50,000 rows and ~285 MB. --log-every 1 is the worst
case: 1,000,000 rows, 5.6 GB on disk, ~1 minute to write. Its refreshes meet the goals, but its
first open does not: it parses every row once (~25 s on a 2-core VM), as the file is ~95 %
kl_per_dim lists. The old all-rows log, on the default run and the same VM: first open 16 s,
a refresh 2 s CPU and 5.2 MB.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from explorer import charts
from explorer.components import live_charts
from vae_core import health, latent
from vae_core.config import ModelConfig, TrainConfig
from vae_core.metrics_log import MetricsLog
from vae_core.models import VAE
from vae_core.rundir import RunDir
from vae_core.settings import settings_in_force

GOAL_FIRST_OPEN_MS, GOAL_REFRESH_CPU_MS, GOAL_REFRESH_KB = 2000, 100, 200
NEW_ROWS_PER_REFRESH = 50
REFRESHES = 5
NUM_CONTROLS = 5
KL_VARIANTS = 32  # distinct kl_per_dim lists, reused: json.dumps of 256 floats per row is slow


class _RowWriter:
    """Writes trainer-shaped rows fast: the same key order and float repr as json.dumps(row)."""

    def __init__(
        self, run: RunDir, latent_dim: int, log_every: int, steps_per_epoch: int, seed: int = 0
    ) -> None:
        rng = random.Random(seed)
        self._rng = rng
        self._log_every, self._steps_per_epoch = log_every, steps_per_epoch
        self._kl_json = [
            json.dumps([rng.random() * 0.5 for _ in range(latent_dim)]) for _ in range(KL_VARIANTS)
        ]
        self._file = open(run.metrics_path, "a", encoding="utf-8")
        self.rows = 0
        self.last_step = 0

    def metric_row(self, step: int, epoch: int, split: str, beta: float) -> None:
        progress = step / 1e6
        recon = 100.0 + 200.0 * (1 - progress) ** 4 + self._rng.random()
        kl = 20.0 + 10.0 * progress + self._rng.random()
        head = {"step": step, "epoch": epoch, "split": split, "elbo": -(recon + kl)}
        head |= {"recon": recon, "kl": kl}
        tail = {"loss": recon + beta * kl, "grad_norm": 10 * self._rng.random()}
        if split == "train":
            tail |= {"beta": beta, "lr": 1e-3, "samples_per_s": 20000.0 + self._rng.random()}
            tail |= {"free_bits": 0.0, "grad_norm_max": 20.0, "bad_steps": 0}
            tail |= {"active_units": 200}
        else:  # the IWAE bound beside the ELBO on a fixed test subset
            gap = 5.0 + self._rng.random()
            tail |= {"iwae": -(recon + kl) + gap, "iwae_elbo": -(recon + kl), "iwae_gap": gap}
            tail |= {"iwae_k": 100, "iwae_n": 256, "iwae_seconds": 0.1}
        tail["time"] = time.time()
        kl_json = self._kl_json[step % KL_VARIANTS]
        # json.dumps(head | {"kl_per_dim": ...} | tail), spliced from three pieces
        self._write(f'{json.dumps(head)[:-1]}, "kl_per_dim": {kl_json}, {json.dumps(tail)[1:]}')
        self.last_step = step

    def event_row(self, **row: object) -> None:
        self._write(json.dumps({**row, "time": time.time()}))

    def _write(self, line: str) -> None:
        self._file.write(line + "\n")
        self.rows += 1

    def more_train_rows(self, n: int) -> None:
        """n more train rows after the last one, flushed: what a live trainer appends."""
        for _ in range(n):
            step = self.last_step + self._log_every
            self.metric_row(step, step // self._steps_per_epoch, "train", 1.0)
        self.flush()

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def write_run(
    path: Path, steps: int, log_every: int, latent_dim: int, steps_per_epoch: int
) -> tuple[RunDir, _RowWriter]:
    """A finished-looking run folder with `steps` steps of metrics; returns the open writer."""
    run = RunDir(path)
    model_config = ModelConfig(latent_dim=latent_dim)
    train_config = TrainConfig(
        dataset="shapes", log_every=log_every, epochs=steps // steps_per_epoch
    )
    run.write_config(model_config, train_config)
    run.publish_snapshot(VAE(model_config), steps)
    writer = _RowWriter(run, latent_dim, log_every, steps_per_epoch)
    control_steps = {steps * (i + 1) // (NUM_CONTROLS + 2) for i in range(NUM_CONTROLS)}
    # A trainer killed at 60 % and resumed from a checkpoint 30 logged rows back.
    killed_at = (steps * 3 // 5) // log_every * log_every
    resumed_from = killed_at - 30 * log_every
    beta, step = 1.0, log_every
    while step <= steps:
        epoch = step // steps_per_epoch
        if any(step - log_every < c <= step for c in control_steps):
            beta *= 1.5
            writer.event_row(step=step, epoch=epoch, event="control", beta=beta, lr=1e-3)
        writer.metric_row(step, epoch, "train", beta)
        if step % steps_per_epoch < log_every:
            writer.metric_row(step, epoch, "test", beta)
        if step == killed_at and resumed_from > 0:
            writer.event_row(
                step=resumed_from, epoch=resumed_from // steps_per_epoch, event="resume"
            )
            killed_at, step = -1, resumed_from
        step += log_every
    writer.flush()
    run.write_status("finished", step=steps, epoch=steps // steps_per_epoch, total_steps=steps)
    return run, writer


def _timed(fn: Callable[[], int]) -> tuple[int, float, float]:
    """(fn's result, CPU ms of this process, wall ms)."""
    cpu, wall = time.process_time(), time.perf_counter()
    result = fn()
    return result, 1000 * (time.process_time() - cpu), 1000 * (time.perf_counter() - wall)


def _refresh_and_draw(log: MetricsLog, memo: dict) -> int:
    """What the live feed does for a watching tab each second; returns the bytes sent to the
    browser: the update, whole figures the first time, then only the new rows."""
    view = log.refresh()
    health.check_view(view, settings_in_force(None, view.events_of("control")), latent_dim=256)
    slots = {
        "curves": live_charts.Figure(charts.curves_spec(view)),
        "schedule": live_charts.Figure(charts.schedule_spec(view)),
        "gap": live_charts.Figure(charts.elbo_gap_spec(view, num_pixels=784)),
    }
    kl = view.latest_kl_per_dim
    if kl is not None:
        slots["kl"] = live_charts.Figure(charts.kl_bar_spec(kl, latent.active_dims(kl)))
    update = live_charts.next_update(memo, memo.get("seq", 0), slots, 1000)
    return len(json.dumps(update))


def _verdict(value: float, goal: float) -> str:
    return "ok" if value <= goal else "OVER"


def _measure(run: RunDir, writer: _RowWriter, max_points: int) -> None:
    """Print the first open and the median of REFRESHES refreshes of NEW_ROWS_PER_REFRESH."""
    log = MetricsLog(run.metrics_path, max_points=max_points)
    memo: dict = {}  # the session's live charts memo: what the browser holds
    sent, cpu_ms, wall_ms = _timed(lambda: _refresh_and_draw(log, memo))
    view = log.refresh()
    points = view.points("train", "elbo").steps.size
    print(
        f"  first open        {wall_ms:7.0f} ms wall {cpu_ms:7.0f} ms CPU {sent / 1024:6.0f} KB"
        f"  [{_verdict(wall_ms, GOAL_FIRST_OPEN_MS)}]"
        f"  ({view.num_rows:,} rows read, {points:,} points per train curve)"
    )
    cpu, wall, sizes = [], [], []
    for _ in range(REFRESHES):
        writer.more_train_rows(NEW_ROWS_PER_REFRESH)
        sent, cpu_ms, wall_ms = _timed(lambda: _refresh_and_draw(log, memo))
        cpu.append(cpu_ms)
        wall.append(wall_ms)
        sizes.append(sent / 1024)
    cpu_ms, kb = statistics.median(cpu), statistics.median(sizes)
    print(
        f"  refresh +{NEW_ROWS_PER_REFRESH} rows   {statistics.median(wall):7.0f} ms wall"
        f" {cpu_ms:7.0f} ms CPU {kb:6.0f} KB"
        f"  [{_verdict(cpu_ms, GOAL_REFRESH_CPU_MS)}, {_verdict(kb, GOAL_REFRESH_KB)}]"
        f"  (median of {REFRESHES})"
    )
    _, cpu_ms, _ = _timed(lambda: len(log.refresh().series))
    print(f"  refresh, nothing new: {cpu_ms:.1f} ms CPU (the same view object, no figures)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--log-every", type=int, default=20, help="1 = the 1M-row worst case")
    parser.add_argument("--latent-dim", type=int, default=256)
    parser.add_argument("--steps-per-epoch", type=int, default=1000)
    parser.add_argument("--no-baseline", action="store_true", help="skip the unthinned figures")
    parser.add_argument("--keep", type=Path, help="write the run here and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "long-run"
        t0 = time.perf_counter()
        run, writer = write_run(
            path, args.steps, args.log_every, args.latent_dim, args.steps_per_epoch
        )
        size_mb = run.metrics_path.stat().st_size / 1e6
        print(
            f"{path}: {writer.rows:,} rows, {size_mb:,.0f} MB, latent {args.latent_dim}, "
            f"written in {time.perf_counter() - t0:.0f} s"
        )
        print(
            f"goals: first open <= {GOAL_FIRST_OPEN_MS} ms; a refresh <= "
            f"{GOAL_REFRESH_CPU_MS} ms CPU and <= {GOAL_REFRESH_KB} KB sent"
        )
        print("thinned (MetricsLog's default, at most 2000 points per curve):")
        _measure(run, writer, max_points=2000)
        if not args.no_baseline:
            # Every point kept and sent: the chart cost of the old all-rows log. Its scan of
            # every row on each refresh, and its parse of every kl_per_dim, came on top.
            print("baseline, no thinning (every point sent):")
            _measure(run, writer, max_points=10**9)
        writer.close()


if __name__ == "__main__":
    main()
