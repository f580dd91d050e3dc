"""The run directory: the only interface between a trainer and its readers.

Layout (see DESIGN.md): config.json, metrics.jsonl (append-only), snapshot.safetensors
(latest weights, atomically replaced), control.json (commands to the trainer),
status.json (state + heartbeat), checkpoints/ (full state for resume).
Every file other than metrics.jsonl is written temp + fsync + rename, so a reader or
a kill -9 never sees half a file. Nothing here ever unpickles.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from vae_core.config import ModelConfig, TrainConfig
from vae_core.models import VAE

RunState = Literal["starting", "running", "paused", "finished", "failed"]
STATES: tuple[str, ...] = ("starting", "running", "paused", "finished", "failed")
HEARTBEAT_STALE_S = 15.0  # a live trainer beats at least every second or two
CHECKPOINTS_KEPT = 3
SAFE_SUFFIXES = (".safetensors",)


class UnsafeCheckpointError(ValueError):
    """A file offered as a checkpoint is not safetensors (pickles are never loaded)."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, rename over `path`."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=1).encode())


def atomic_save_tensors(
    path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]
) -> None:
    """safetensors.save_file into a temp file, fsync, rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
        save_file(tensors, tmp, metadata=metadata)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_safetensors_metadata(path: Path) -> dict[str, str]:
    """The `__metadata__` of a safetensors header, read without loading tensors."""
    with open(path, "rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
        if not 0 < header_len < 100_000_000:
            raise UnsafeCheckpointError(f"{path} is not a safetensors file (bad header length)")
        header = json.loads(f.read(header_len))
    return header.get("__metadata__", {})


def load_safetensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Load tensors + metadata, refusing anything that is not a safetensors file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    with open(path, "rb") as f:
        magic = f.read(2)
    # Pickle protocol 2+ starts with 0x80; torch.save zips start with 'PK'.
    if path.suffix not in SAFE_SUFFIXES or magic in (b"PK",) or magic[:1] == b"\x80":
        raise UnsafeCheckpointError(
            f"refusing to load {path.name}: only .safetensors checkpoints are accepted "
            "(pickle-based .pt/.pth/.ckpt files can run code when loaded). Convert it with "
            "safetensors.torch.save_file(model.state_dict(), 'model.safetensors') in a trusted "
            "environment."
        )
    try:
        return load_file(path), read_safetensors_metadata(path)
    except (SafetensorError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UnsafeCheckpointError(f"{path.name} is not a valid safetensors file: {e}") from e


@dataclass(frozen=True)
class Status:
    state: str
    step: int = 0
    epoch: int = 0
    samples_per_s: float = 0.0
    pid: int | None = None
    heartbeat: float = 0.0  # time.time() of the last write
    reason: str = ""  # why it failed / finished

    def is_alive(self, stale_after_s: float = HEARTBEAT_STALE_S) -> bool:
        """A trainer is alive if its process exists and its heartbeat is fresh."""
        if self.state in ("finished", "failed") and not _pid_running(self.pid):
            return False
        return _pid_running(self.pid) and time.time() - self.heartbeat < stale_after_s

    @property
    def display_state(self) -> str:
        """The state a user should see: a silent 'running' trainer is 'dead'."""
        if self.state in ("starting", "running", "paused") and not self.is_alive():
            return "dead"
        return self.state


def _pid_running(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) still answers kill(0).
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


class MetricsReader:
    """Incremental reader of metrics.jsonl: keeps a byte offset, returns only new rows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def read_new(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        # A row still being appended has no newline yet; leave it for the next read.
        end = chunk.rfind(b"\n") + 1
        self.offset += end
        rows = []
        for line in chunk[:end].splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a torn line after a kill -9; the rows around it are intact
        return rows


class RunDir:
    """One training run on disk. Used by the trainer (writer) and by any number of readers."""

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

    def exists(self) -> bool:
        return self.config_path.is_file()

    def create(self) -> RunDir:
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        return self

    def remove_temp_files(self) -> int:
        """Delete temp files a killed writer left behind; only the trainer calls this."""
        stale = [*self.path.glob(".*.tmp"), *self.checkpoint_dir.glob(".*.tmp")]
        for path in stale:
            path.unlink(missing_ok=True)
        return len(stale)

    # --- config ---
    def write_config(self, model_config: ModelConfig, train_config: TrainConfig) -> None:
        self.create()
        atomic_write_json(
            self.config_path, {"model": model_config.to_dict(), "train": train_config.to_dict()}
        )

    def read_config(self) -> tuple[ModelConfig, TrainConfig]:
        if not self.config_path.is_file():
            raise FileNotFoundError(
                f"{self.path} is not a run directory (no config.json); "
                "pick a folder written by `python -m vae_core train`"
            )
        data = json.loads(self.config_path.read_text())
        return ModelConfig.from_dict(data["model"]), TrainConfig.from_dict(data["train"])

    # --- metrics ---
    def log_metrics(self, **row: Any) -> None:
        """Append one row; flushed so readers see it at once (one write per row)."""
        if self._metrics_file is None:
            self._metrics_file = open(self.metrics_path, "a", encoding="utf-8")
        row.setdefault("time", time.time())
        self._metrics_file.write(json.dumps(row) + "\n")
        self._metrics_file.flush()

    def metrics_reader(self) -> MetricsReader:
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
        self._snapshot_version = max(self._snapshot_version, self.snapshot_version()) + 1
        meta = {"version": str(self._snapshot_version), "step": str(step), "time": str(time.time())}
        atomic_save_tensors(self.snapshot_path, model.state_dict(), meta)
        return self._snapshot_version

    def snapshot_version(self) -> int:
        """Version of the current snapshot (0 if none), from its header alone: cheap to poll."""
        try:
            return int(read_safetensors_metadata(self.snapshot_path).get("version", 0))
        except (OSError, ValueError):
            return 0

    def load_snapshot(self) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        return load_safetensors(self.snapshot_path)

    # --- control (reader: trainer; writers: UI, CLI) ---
    def send_control(self, command: str | None = None, **changes: float) -> dict[str, Any]:
        """Queue a command (pause/resume/stop) and/or live changes (beta, lr) for the trainer."""
        if command not in (None, "pause", "resume", "stop"):
            raise ValueError(f"unknown command {command!r}; use pause, resume or stop")
        unknown = set(changes) - {"beta", "lr"}
        if unknown:
            raise ValueError(f"cannot change {sorted(unknown)} live; only beta and lr")
        for name, value in changes.items():
            if not (value >= 0 if name == "beta" else 0 < value < 10):
                raise ValueError(f"{name}={value} is out of range")
        current = self.read_control()
        control = {
            "seq": current.get("seq", 0) + 1,
            "command": command,
            "set": {k: float(v) for k, v in changes.items()},
            "time": time.time(),
        }
        self.create()
        atomic_write_json(self.control_path, control)
        return control

    def read_control(self) -> dict[str, Any]:
        try:
            return json.loads(self.control_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    # --- status ---
    def write_status(self, state: str, **fields: Any) -> None:
        if state not in STATES:
            raise ValueError(f"unknown state {state!r}")
        atomic_write_json(
            self.status_path,
            {"state": state, "pid": os.getpid(), "heartbeat": time.time(), **fields},
        )

    def read_status(self) -> Status | None:
        try:
            data = json.loads(self.status_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        known = Status.__dataclass_fields__
        return Status(**{k: v for k, v in data.items() if k in known})

    # --- checkpoints (full state for resume) ---
    def save_checkpoint(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        step: int,
        epoch: int,
        extra: dict[str, Any] | None = None,
        generator_state: torch.Tensor | None = None,
    ) -> Path:
        """weights + optimizer state + RNG in one safetensors file; JSON scalars in metadata."""
        tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
        opt_tensors, opt_meta = _flatten_optimizer_state(optimizer.state_dict())
        tensors.update(opt_tensors)
        tensors["rng.torch"] = torch.get_rng_state()
        if generator_state is not None:
            tensors["rng.generator"] = generator_state
        meta = {
            "step": str(step),
            "epoch": str(epoch),
            "optimizer": json.dumps(opt_meta),
            "extra": json.dumps(extra or {}),
        }
        self.create()
        path = self.checkpoint_dir / f"step-{step:09d}.safetensors"
        atomic_save_tensors(path, tensors, meta)
        for old in self.checkpoints()[:-CHECKPOINTS_KEPT]:
            old.unlink(missing_ok=True)
        return path

    def checkpoints(self) -> list[Path]:
        """Completed checkpoints, oldest first (temp files are dot-prefixed and skipped)."""
        return sorted(self.checkpoint_dir.glob("step-*.safetensors"))

    def latest_checkpoint(self) -> Path | None:
        found = self.checkpoints()
        return found[-1] if found else None


@dataclass
class Checkpoint:
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any] | None
    step: int
    epoch: int
    rng_state: torch.Tensor | None
    generator_state: torch.Tensor | None
    extra: dict[str, Any]


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint (or a bare weights file) written as safetensors; never unpickles."""
    tensors, meta = load_safetensors(path)
    if not any(k.startswith("model.") for k in tensors):
        # A plain state_dict saved by the user: weights only.
        return Checkpoint(tensors, None, 0, 0, None, None, {})
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


def list_runs(root: str | Path) -> list[RunDir]:
    """Run directories directly under `root`, newest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    runs = [RunDir(p) for p in root.iterdir() if (p / "config.json").is_file()]
    return sorted(runs, key=lambda r: r.config_path.stat().st_mtime, reverse=True)


def snapshot_model(run: RunDir) -> tuple[VAE, int]:
    """A fresh eval-mode VAE holding `run`'s newest snapshot, and that snapshot's version.

    Readers decode with this copy; they never share tensors with the trainer. Callers
    cache it by (run path, version) and call `run.snapshot_version()` to poll cheaply.
    """
    model_config, _ = run.read_config()
    if not run.snapshot_path.is_file():
        raise FileNotFoundError(f"{run.path} has no snapshot yet; the trainer is still starting")
    state, meta = run.load_snapshot()
    model = VAE(model_config)
    model.load_state_dict(state)
    return model.eval(), int(meta.get("version", 0))
