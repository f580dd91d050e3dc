"""control.json: commands (pause / resume / stop) and live changes for the trainer. Written
by the UI and the CLI (ControlFile, mixed into RunDir), read by the trainer; every value is
checked against the config's limits by check_control, on both sides."""

from __future__ import annotations

import fcntl
import time
from typing import Any

from vae_core.atomic import atomic_write_json
from vae_core.config import LIVE_CHOICES, LIVE_SETTINGS, check_live_setting, check_schedule
from vae_core.run_errors import RunDamaged
from vae_core.status import Status, StatusFile

CONTROL_COMMANDS = (None, "pause", "resume", "stop")


class ControlFile:
    """RunDir's control.json methods (it supplies path, control_path, create, read_status
    and _read_json_object). Readers: the trainer; writers: the UI and the CLI."""

    def send_control(self, command: str | None = None, **changes: float) -> dict[str, Any]:
        """Queue a command (pause/resume/stop) and/or live changes (beta, lr) for the trainer.

        control.json holds one message; one the trainer has not applied yet is merged into the
        new one (newer values win, a stop stays a stop), so two quick sends, e.g. set beta then
        resume, both act.
        Values are checked against the same limits as the config (ValueError)."""
        changes = check_control(command, changes)
        self.create()
        # Senders take turns (the app's tabs, the CLI): each merges what the one before wrote.
        with open(self.path / ".control.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            pending = self._pending_control()
            keep_stop = pending.get("command") == "stop"
            control = {
                "seq": self._next_control_seq(),
                "command": "stop" if keep_stop else command or pending.get("command"),
                "set": check_control(None, {**pending.get("set", {}), **changes}),
                "time": time.time(),
            }
            atomic_write_json(self.control_path, control)
        return control

    def _pending_control(self) -> dict[str, Any]:
        """control.json if the trainer has not applied it yet (and it is well formed), else {}."""
        try:
            current, status = self.read_control(), self.read_status()
        except RunDamaged:
            return {}
        applied = status.control_seq if status is not None else 0
        seq, changes = current.get("seq"), current.get("set")
        if not isinstance(seq, int) or seq <= applied or not isinstance(changes, dict):
            return {}
        try:
            return {"command": current.get("command"), "set": check_control(None, changes)}
        except ValueError:
            return {}

    def _next_control_seq(self) -> int:
        """Larger than any earlier command's, even if control.json was damaged or removed."""
        try:
            current = self.read_control()
        except RunDamaged:
            current = {}
        seq = current.get("seq", 0)
        return max(seq + 1 if isinstance(seq, int) else 0, time.time_ns() // 1_000_000)

    def read_control(self) -> dict[str, Any]:
        """control.json ({} if none); RunDamaged when it cannot be parsed."""
        return self._read_json_object(self.control_path) or {}


class NoTrainer(ValueError):
    """A command for a run that no trainer is running: it would never be obeyed (a trainer
    started later discards commands sent before it started)."""


def require_trainer(run: StatusFile) -> Status:
    """The Status of `run` (a RunDir) if a trainer is there to obey a command, else
    NoTrainer (one rule for the app's buttons and the CLI's `control`)."""
    status = run.read_status() or Status("starting", locked=run.is_locked())
    if not status.is_live:
        raise NoTrainer(
            f"no trainer is running {run.path} (it is {status.display_state}); nothing was "
            "sent: resume the run first (a command sent while none runs would be dropped)"
        )
    return status


def check_control(command: str | None, changes: dict[str, Any]) -> dict[str, float]:
    """The validated `set` of a control command; ValueError names what is wrong."""
    if command not in CONTROL_COMMANDS:
        raise ValueError(f"unknown command {command!r}; use pause, resume or stop")
    live = [*LIVE_SETTINGS, *LIVE_CHOICES]
    unknown = sorted(set(changes) - set(live))
    if unknown:
        raise ValueError(f"cannot change {unknown} live; only {', '.join(live)}")
    checked = {name: check_live_setting(name, value) for name, value in changes.items()}
    if "beta_schedule" in checked and "warmup_steps" in checked:
        check_schedule(checked["beta_schedule"], checked["warmup_steps"])
    return checked
