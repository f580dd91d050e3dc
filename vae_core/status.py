"""status.json: the trainer's state and heartbeat, and every question a reader asks of it
(is it live, paused, resumable, dead). The trainer alone writes it (StatusFile, mixed into
RunDir); a reader gets a Status, with whether this host's OS lock says a trainer holds it."""

from __future__ import annotations

import math
import os
import socket
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from vae_core.atomic import atomic_write_json
from vae_core.run_errors import RunDamaged

STATES: tuple[str, ...] = ("starting", "running", "paused", "finished", "failed")
LIVE_STATES: tuple[str, ...] = ("starting", "running", "paused")
STOPPED_BY_USER = "stopped by user"  # the reason of a run finished early by a stop command
IMPORTED_REASON = "imported, not trained here yet"  # a user's own VAE, ready to fine-tune
MISSING_DATA_REASON = "DatasetUnavailable:"  # how the reason of a run failed for data begins
HEARTBEAT_STALE_S = 15.0  # a live trainer beats every second, from its own thread


@dataclass(frozen=True)
class Status:
    """status.json, plus whether this host's OS lock says a trainer holds the run.

    Every "is it live / paused / resumable" question the UI asks is answered here.
    """

    state: str
    step: int = 0
    epoch: int = 0
    total_steps: int = 0
    samples_per_s: float = 0.0
    beta: float | None = None  # the values in force now, after live changes
    lr: float | None = None
    pid: int | None = None
    host: str = ""  # the trainer's hostname; "" in runs from before it was recorded
    heartbeat: float = 0.0  # time.time() of the last write
    reason: str = ""  # why it failed / finished
    control_seq: int = 0  # the newest control.json the trainer has applied
    world_size: int = 1  # training processes (torchrun); rank 0 writes this file
    backend: str = ""  # their collective backend: gloo (CPU) or nccl (CUDA); "" for one
    device: str = ""  # where rank 0 trains: cpu, cuda:0, ...
    precision: str = ""  # fp32, bf16 or fp16
    caching: tuple[int, ...] = ()  # (done, total) images while a dataset cache is built
    locked: bool = False  # not in the file: a trainer on this host holds the run's lock

    @classmethod
    def from_dict(cls, data: dict[str, Any], locked: bool = False) -> Status:
        """Validate the types of status.json's fields; ValueError names the bad one."""
        if data.get("state") not in STATES:
            raise ValueError(f"unknown state {data.get('state')!r}")
        kwargs: dict[str, Any] = {"locked": locked}
        for f in fields(cls):
            if f.name in data and f.name != "locked":
                kwargs[f.name] = _field_value(f.name, data[f.name])
        return cls(**kwargs)

    @property
    def on_other_host(self) -> bool:
        """Written by a trainer on another machine (a shared folder): no lock or pid to check."""
        return bool(self.host) and self.host != socket.gethostname()

    @property
    def placement(self) -> str:
        """Where it trains, for people: "2 processes (torchrun, gloo) on cpu, bf16"."""
        who = (
            f"{self.world_size} processes (torchrun, {self.backend or '?'})"
            if self.world_size > 1
            else "1 process"
        )
        on = f" on {self.device}" if self.device else ""
        return who + on + (f", {self.precision}" if self.precision else "")

    @property
    def heartbeat_fresh(self) -> bool:
        return time.time() - self.heartbeat < HEARTBEAT_STALE_S

    @property
    def is_live(self) -> bool:
        """A trainer is writing this run (or is about to: launched, not yet holding the lock)."""
        if self.on_other_host:
            return self.state in LIVE_STATES and self.heartbeat_fresh
        if self.locked:
            return True
        return self.state == "starting" and _pid_running(self.pid) and self.heartbeat_fresh

    @property
    def display_state(self) -> str:
        """The state a user should see: a 'running' run whose trainer is gone is 'dead'."""
        if self.state in LIVE_STATES and not self.is_live:
            return "dead"
        if self.imported:
            return "imported"
        return self.state

    @property
    def is_paused(self) -> bool:
        return self.is_live and self.state == "paused"

    @property
    def stopped_by_user(self) -> bool:
        return self.state == "finished" and self.reason == STOPPED_BY_USER

    @property
    def failed_for_missing_data(self) -> bool:
        """Failed because its dataset could not be loaded (vae_core.data.DatasetUnavailable,
        named in the reason the trainer wrote): no learning rate fixes that."""
        return self.state == "failed" and self.reason.startswith(MISSING_DATA_REASON)

    @property
    def is_resumable(self) -> bool:
        """Resume applies: a paused trainer, or a run with no trainer that did not finish.
        A run live on another host is never resumed from here."""
        if self.on_other_host:
            return False
        if self.is_live:
            return self.is_paused
        return self.display_state in ("dead", "failed") or self.stopped_by_user or self.imported

    @property
    def imported(self) -> bool:
        """A user's own model, imported and not trained here yet."""
        return self.state == "finished" and self.reason == IMPORTED_REASON


_STATUS_TYPES: dict[str, tuple[type, ...]] = {
    "state": (str,),
    "step": (int,),
    "epoch": (int,),
    "total_steps": (int,),
    "samples_per_s": (int, float),
    "beta": (int, float, type(None)),
    "lr": (int, float, type(None)),
    "pid": (int, type(None)),
    "host": (str,),
    "heartbeat": (int, float),
    "reason": (str,),
    "control_seq": (int,),
    "world_size": (int,),
    "backend": (str,),
    "device": (str,),
    "precision": (str,),
    "caching": (list,),
}


def _field_value(name: str, value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, _STATUS_TYPES[name]):
        raise ValueError(f"{name} has the wrong type ({type(value).__name__})")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{name} is not finite")
    if isinstance(value, list):  # caching: [done, total]
        if len(value) != 2 or not all(type(v) is int and v >= 0 for v in value):
            raise ValueError(f"{name} must be [done, total], got {value!r}")
        return tuple(value)
    return value


def _pid_running(pid: int | None) -> bool:
    if not pid or pid < 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return isinstance(pid, int) and pid < 2**22
    # A zombie (exited, not yet reaped by its parent) still answers kill(0).
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


class StatusFile:
    """RunDir's status.json methods (it supplies path, status_path, is_locked and
    _read_json_object)."""

    def write_status(self, state: str, **fields: Any) -> None:
        if state not in STATES:
            raise ValueError(f"unknown state {state!r}")
        atomic_write_json(
            self.status_path,
            {
                "state": state,
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "heartbeat": time.time(),
                **fields,
            },
        )

    def read_status(self) -> Status | None:
        """status.json as a Status (None before any was written); RunDamaged if unreadable."""
        data = self._read_json_object(self.status_path)
        if data is None:
            return None
        try:
            status = Status.from_dict(data)
        except ValueError as e:
            raise RunDamaged(self.path, "status.json", e) from None
        if status.on_other_host:
            return status  # its lock lives on another machine's kernel
        return replace(status, locked=self.is_locked())
