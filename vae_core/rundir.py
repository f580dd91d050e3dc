"""The run directory: the only interface between a trainer and its readers.

Layout (see DESIGN.md): config.json, metrics.jsonl (append-only), snapshot.safetensors
(latest weights, atomically replaced), control.json (commands to the trainer),
status.json (state + heartbeat), checkpoints/ (full state for resume).
Every file other than metrics.jsonl is written temp + fsync + rename, so a reader or
a kill -9 never sees half a file. Nothing here ever unpickles.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import socket
import time
import uuid
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError

from vae_core.atomic import DiskFull, atomic_save_tensors, atomic_write_json, is_disk_full
from vae_core.config import (
    LIVE_CHOICES,
    LIVE_SETTINGS,
    ModelConfig,
    TrainConfig,
    check_live_setting,
    check_schedule,
)

if TYPE_CHECKING:  # imported where they are used: the UI's first page needs neither
    import torch  # tensors: snapshots and checkpoints

    from vae_core.metrics_log import MetricsReader  # numpy

STATES: tuple[str, ...] = ("starting", "running", "paused", "finished", "failed")
LIVE_STATES: tuple[str, ...] = ("starting", "running", "paused")
STOPPED_BY_USER = "stopped by user"  # the reason of a run finished early by a stop command
IMPORTED_REASON = "imported, not trained here yet"  # a user's own VAE, ready to fine-tune
MISSING_DATA_REASON = "DatasetUnavailable:"  # how the reason of a run failed for data begins
HEARTBEAT_STALE_S = 15.0  # a live trainer beats every second, from its own thread
SAFE_SUFFIXES = (".safetensors",)
CONTROL_COMMANDS = (None, "pause", "resume", "stop")
MAX_HEADER_BYTES = 100_000_000  # a safetensors header larger than this is not one


class UnsafeCheckpointError(ValueError):
    """A file offered as a checkpoint is not safetensors (pickles are never loaded)."""


class RunDamaged(ValueError):
    """A file in a run folder cannot be read or does not hold what it should."""

    def __init__(self, run_path: str | Path, file: str, problem: object) -> None:
        self.run_path = Path(run_path)
        super().__init__(
            f"run {self.run_path.name} is damaged: {file}: {problem} "
            "(fix or remove that file, or move the run folder away)"
        )


class RunLocked(RuntimeError):
    """Another live trainer holds the run folder's lock: one writer per run, always."""


def read_safetensors_metadata(path: Path) -> dict[str, str]:
    """The `__metadata__` of a safetensors header, read without loading tensors."""
    with open(path, "rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
        if not 0 < header_len < MAX_HEADER_BYTES:
            raise UnsafeCheckpointError(f"{path.name} is not a safetensors file (bad header)")
        try:
            header = json.loads(f.read(header_len))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UnsafeCheckpointError(f"{path.name} has an unreadable header: {e}") from None
    meta = header.get("__metadata__", {}) if isinstance(header, dict) else None
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise UnsafeCheckpointError(f"{path.name} has a header of the wrong type")
    return meta


def _pickled(path: Path) -> bool:
    """A torch.save file under a .safetensors name: no safetensors header, and it starts as a
    pickle (0x80, protocol 2+) or a zip ('PK') does. The header decides first: a valid one
    may start with 0x80 too (its length's low byte)."""
    try:
        read_safetensors_metadata(path)
        return False
    except UnsafeCheckpointError:
        with open(path, "rb") as f:
            magic = f.read(2)
        return magic == b"PK" or magic[:1] == b"\x80"


def load_safetensors(
    path: str | Path, device: str = "cpu"
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Load tensors + metadata, refusing anything that is not a safetensors file.

    The file records no device: a run trained on CUDA loads onto `device` (the map_location;
    CPU by default), so it opens on a machine without a GPU.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    if path.suffix not in SAFE_SUFFIXES or _pickled(path):
        raise UnsafeCheckpointError(
            f"refusing to load {path.name}: only .safetensors checkpoints are accepted "
            "(pickle-based .pt/.pth/.ckpt files can run code when loaded). Convert it with "
            "safetensors.torch.save_file(model.state_dict(), 'model.safetensors') in a trusted "
            "environment."
        )
    meta = read_safetensors_metadata(path)
    from safetensors.torch import load_file  # imports torch (seconds); only loads need it

    try:
        return load_file(path, device=device), meta
    except (SafetensorError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UnsafeCheckpointError(f"{path.name} is not a valid safetensors file: {e}") from e


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


class WriterLock:
    """The OS lock (flock) one trainer holds on its run folder for its whole life.

    The kernel drops it when the process dies, however it dies, so a lock is never stale.
    """

    def __init__(self, run: RunDir) -> None:
        self.run = run
        self._fd: int | None = os.open(run.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            self._fd = None
            raise RunLocked(
                f"{run.path} is being written by another trainer (pid {run.lock_holder()}); "
                "stop it first, or pick another --run-dir"
            ) from None
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> WriterLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def is_flocked(path: Path) -> bool:
    """Whether some process holds an exclusive flock on `path` right now (False if absent)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops the shared lock when it was granted
    return False


class RunDir:
    """One training run on disk: one writer (the trainer holding `lock`), any number of readers.

    Readers get RunDamaged, with the file and the problem, for anything they cannot parse.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._metrics_file = None
        self._snapshot_version = 0

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # --- paths ---
    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def snapshot_path(self) -> Path:
        return self.path / "snapshot.safetensors"

    @property
    def control_path(self) -> Path:
        return self.path / "control.json"

    @property
    def status_path(self) -> Path:
        return self.path / "status.json"

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def log_path(self) -> Path:
        return self.path / "trainer.log"

    @property
    def lock_path(self) -> Path:
        return self.path / "lock"

    def exists(self) -> bool:
        """Whether this folder holds a run (a config.json); False when it cannot be read."""
        try:
            return self.config_path.is_file()
        except OSError:
            return False

    def create(self) -> RunDir:
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        return self

    def remove_temp_files(self) -> int:
        """Delete temp files a killed writer left behind; only the lock holder calls this."""
        stale = [*self.path.glob(".*.tmp"), *self.checkpoint_dir.glob(".*.tmp")]
        for path in stale:
            path.unlink(missing_ok=True)
        return len(stale)

    # --- the one-writer lock ---
    def acquire_lock(self) -> WriterLock:
        """Take the run's OS lock (RunLocked if a live trainer holds it)."""
        self.path.mkdir(parents=True, exist_ok=True)
        return WriterLock(self)

    def is_locked(self) -> bool:
        """Whether a process on this host holds the writer lock right now."""
        return is_flocked(self.lock_path)

    def lock_holder(self) -> int | None:
        """The pid the lock holder wrote into the lock file (informational)."""
        try:
            return int(self.lock_path.read_text().strip() or 0) or None
        except (OSError, ValueError):
            return None

    # --- reading JSON files ---
    def _read_json_object(self, path: Path) -> dict[str, Any] | None:
        """The JSON object in `path`; None if the file does not exist; RunDamaged otherwise."""
        try:
            data = json.loads(path.read_bytes().decode("utf-8"))
        except FileNotFoundError:
            return None
        except OSError as e:
            raise RunDamaged(self.path, path.name, f"cannot be read ({e.strerror})") from None
        except UnicodeDecodeError:
            raise RunDamaged(self.path, path.name, "is not UTF-8 text") from None
        except (json.JSONDecodeError, RecursionError) as e:
            raise RunDamaged(self.path, path.name, f"is not valid JSON ({e})") from None
        if not isinstance(data, dict):
            raise RunDamaged(self.path, path.name, "does not hold a JSON object")
        return data

    # --- config ---
    def write_config(
        self,
        model_config: ModelConfig,
        train_config: TrainConfig,
        parent: dict[str, Any] | None = None,
    ) -> None:
        """config.json; a fork's also names its parent run and the step it branched at.

        A rewrite (each trainer start) keeps the recorded parent and the run's id: the id is
        made once, with the first config, and survives a rename of the folder.
        """
        self.create()
        config = {"model": model_config.to_dict(), "train": train_config.to_dict()}
        if self.config_path.is_file():
            parent = parent or self.read_parent()
            run_id = self.run_id() or uuid.uuid4().hex
        else:
            run_id = uuid.uuid4().hex
        config |= {"id": run_id} | ({"parent": parent} if parent else {})
        atomic_write_json(self.config_path, config)

    def run_id(self) -> str | None:
        """The run's stable id (None for runs made before ids were recorded)."""
        run_id = (self._read_json_object(self.config_path) or {}).get("id")
        if run_id is not None and not isinstance(run_id, str):
            raise RunDamaged(self.path, "config.json", "its id is not a string")
        return run_id

    def read_parent(self) -> dict[str, Any] | None:
        """{"run": path, "step": N, "id": the parent's id} for a fork, else None. The id is
        absent in forks of runs made before ids; see vae_core.runfolders.find_parent."""
        parent = (self._read_json_object(self.config_path) or {}).get("parent")
        if parent is not None and not (
            isinstance(parent, dict)
            and isinstance(parent.get("run"), str)
            and isinstance(parent.get("step"), int)
            and isinstance(parent.get("id", ""), str)
        ):
            raise RunDamaged(self.path, "config.json", "its parent is not {run, step}")
        return parent

    def read_config(self) -> tuple[ModelConfig, TrainConfig]:
        data = self._read_json_object(self.config_path)
        if data is None:
            raise FileNotFoundError(
                f"{self.path} is not a run directory (no config.json); "
                "pick a folder written by `python -m vae_core train`"
            )
        try:
            return ModelConfig.from_dict(data["model"]), TrainConfig.from_dict(data["train"])
        except KeyError as e:
            raise RunDamaged(self.path, "config.json", f"has no {e} section") from None
        except (ValueError, TypeError, AttributeError) as e:
            raise RunDamaged(self.path, "config.json", e) from None

    # --- metrics ---
    def log_metrics(self, **row: Any) -> None:
        """Append one row; flushed so readers see it at once (one write per row)."""
        if self._metrics_file is None:
            self._repair_metrics_tail()
            self._metrics_file = open(self.metrics_path, "a", encoding="utf-8")
        row.setdefault("time", time.time())
        line = json.dumps(row) + "\n"
        try:
            self._metrics_file.write(line)
            self._metrics_file.flush()
        except OSError as e:
            if is_disk_full(e):
                raise DiskFull(self.metrics_path, len(line)) from None
            raise

    def _repair_metrics_tail(self) -> None:
        """Cut a torn last line (a kill -9 mid-append) so the next row starts on its own line."""
        try:
            with open(self.metrics_path, "rb+") as f:
                size = f.seek(0, os.SEEK_END)
                tail_start = max(0, size - (1 << 16))
                f.seek(tail_start)
                tail = f.read()
                if not tail or tail.endswith(b"\n"):
                    return
                newline = tail.rfind(b"\n")
                if newline < 0 and tail_start > 0:
                    return  # a 64 KB line is no row of ours; leave it to the reader
                f.truncate(tail_start + newline + 1)
        except FileNotFoundError:
            return

    def metrics_reader(self) -> MetricsReader:
        from vae_core.metrics_log import MetricsReader

        return MetricsReader(self.metrics_path)

    def read_metrics(self) -> list[dict[str, Any]]:
        return self.metrics_reader().read_new()

    def close(self) -> None:
        if self._metrics_file is not None:
            self._metrics_file.close()
            self._metrics_file = None

    # --- snapshot (latest weights for the UI) ---
    def publish_snapshot(self, model: torch.nn.Module, step: int) -> int:
        """Atomically replace snapshot.safetensors; returns its new version."""
        try:
            on_disk = self.snapshot_version()
        except RunDamaged:
            on_disk = 0  # the writer replaces a damaged snapshot
        self._snapshot_version = max(self._snapshot_version, on_disk) + 1
        meta = {"version": str(self._snapshot_version), "step": str(step), "time": str(time.time())}
        atomic_save_tensors(self.snapshot_path, model.state_dict(), meta)
        return self._snapshot_version

    def snapshot_metadata(self) -> dict[str, str]:
        """The snapshot's header metadata; FileNotFoundError before the first snapshot."""
        try:
            meta = read_safetensors_metadata(self.snapshot_path)
        except FileNotFoundError:
            raise
        except OSError as e:
            raise RunDamaged(self.path, self.snapshot_path.name, e.strerror) from None
        except ValueError as e:
            raise RunDamaged(self.path, self.snapshot_path.name, e) from None
        if not meta.get("version", "").isdigit():
            raise RunDamaged(self.path, self.snapshot_path.name, "its header has no version")
        return meta

    def snapshot_version(self) -> int:
        """Version of the current snapshot (0 if none), from its header alone: cheap to poll."""
        try:
            return int(self.snapshot_metadata()["version"])
        except FileNotFoundError:
            return 0

    def load_snapshot(self) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        try:
            return load_safetensors(self.snapshot_path)
        except UnsafeCheckpointError as e:
            raise RunDamaged(self.path, self.snapshot_path.name, e) from None

    # --- control (reader: trainer; writers: UI, CLI) ---
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

    # --- status ---
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

    # --- checkpoints (written by vae_core.checkpoint) ---
    def checkpoints(self) -> list[Path]:
        """Completed checkpoints, oldest first (temp files are dot-prefixed and skipped)."""
        return sorted(self.checkpoint_dir.glob("step-*.safetensors"))

    def latest_checkpoint(self) -> Path | None:
        found = self.checkpoints()
        return found[-1] if found else None


class NoTrainer(ValueError):
    """A command for a run that no trainer is running: it would never be obeyed (a trainer
    started later discards commands sent before it started)."""


def require_trainer(run: RunDir) -> Status:
    """The run's Status if a trainer is there to obey a command, else NoTrainer (one rule
    for the app's buttons and the CLI's `control`)."""
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


def list_runs(root: str | Path) -> list[RunDir]:
    """Run directories directly under `root`, newest first. Folders that cannot be read are
    left out; they never hide the others."""
    root = Path(root)
    try:
        entries = list(root.iterdir())
    except OSError:
        return []
    found = []
    for path in entries:
        if path.name.startswith("."):
            continue  # a run being removed (vae_core.runfolders) or a hidden folder
        run = RunDir(path)
        try:
            found.append((run.config_path.stat().st_mtime, run))
        except OSError:
            continue  # not a run, or not readable
    return [run for _, run in sorted(found, key=lambda pair: pair[0], reverse=True)]
