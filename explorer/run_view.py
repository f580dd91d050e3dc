"""One reading of a run: status, configuration, snapshot version and the new metrics rows,
read once per rerun (or per fragment tick) and handed to the panels, so a phase and a
readout never come from two versions of the same file.

Imports nothing heavy: the sidebar (first page, before torch) reads runs through it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from explorer import runs
from vae_core.config import ModelConfig, TrainConfig
from vae_core.rundir import RunDir
from vae_core.settings import Settings, settings_in_force
from vae_core.status import Status

if TYPE_CHECKING:
    from vae_core.metrics_log import MetricsLog, MetricsView


@dataclass(frozen=True)
class RunView:
    """What one tick shows of a run; never re-read while drawing it."""

    run: RunDir
    status: Status
    model_config: ModelConfig
    train_config: TrainConfig
    snapshot_version: int  # 0 before the first snapshot
    metrics: MetricsView | None = None  # the metrics log as its reader returns it, if asked

    @property
    def path(self) -> str:
        return str(self.run.path)

    @property
    def phase(self) -> tuple[bool, bool]:
        """(trainer live, snapshot published): when either flips, other views must redraw."""
        return self.status.is_live, self.snapshot_version > 0

    @property
    def controls(self) -> tuple[object, ...]:
        """What the sidebar's run controls show but the epoch: the state line, which buttons
        are enabled, the beta / lr in force. The Training view redraws the page when it
        changes, so the sidebar needs no clock of its own there."""
        status, settings = self.status, self.live_settings
        buttons = (status.is_live, status.is_paused, status.is_resumable)
        return runs.state_line(status), buttons, settings.beta, settings.lr

    @property
    def live_settings(self) -> Settings:
        """The settings the trainer is using now: the config's, then its heartbeat's beta / lr."""
        heartbeat = {"beta": self.status.beta, "lr": self.status.lr}
        return settings_in_force(self.train_config, [heartbeat])


def read(run: RunDir, metrics_log: MetricsLog | None = None) -> RunView:
    """Read `run` once: status.json, config.json, the snapshot header and, given the run's
    incremental metrics reader, the rows appended since its last refresh."""
    status = runs.run_status(run)
    model_config, train_config = run.read_config()
    version = run.snapshot_version()
    metrics = metrics_log.refresh() if metrics_log is not None else None
    return RunView(run, status, model_config, train_config, version, metrics)
