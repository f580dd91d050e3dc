"""The run directory: the only interface between a trainer and its readers. This module
knows the folder (its paths, the one-writer lock, config.json, metrics.jsonl, the snapshot,
the checkpoints); the files with rules of their own live beside it: status.json
(vae_core.status), control.json (vae_core.control), safetensors reading
(vae_core.safetensors_io) and the errors they share (vae_core.run_errors).

Layout (see DESIGN.md): config.json, metrics.jsonl (append-only), snapshot.safetensors
(latest weights, atomically replaced), control.json (commands to the trainer),
status.json (state + heartbeat), checkpoints/ (full state for resume).
Every file other than metrics.jsonl is written temp + fsync + rename, so a reader or
a kill -9 never sees half a file. Nothing here ever unpickles.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vae_core.atomic import DiskFull, atomic_save_tensors, atomic_write_json, is_disk_full
from vae_core.config import (
    ModelConfig,
    TrainConfig,
)
from vae_core.control import ControlFile
from vae_core.run_errors import RunDamaged, RunLocked
from vae_core.safetensors_io import (
    UnsafeCheckpointError,
    load_safetensors,
    read_safetensors_metadata,
)
from vae_core.status import StatusFile

if TYPE_CHECKING:  # imported where they are used: the UI's first page needs neither
    import torch  # tensors: snapshots and checkpoints

    from vae_core.metrics_log import MetricsReader  # numpy


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


class RunDir(StatusFile, ControlFile):
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

    # --- checkpoints (written by vae_core.checkpoint) ---
    def checkpoints(self) -> list[Path]:
        """Completed checkpoints, oldest first (temp files are dot-prefixed and skipped)."""
        return sorted(self.checkpoint_dir.glob("step-*.safetensors"))

    def latest_checkpoint(self) -> Path | None:
        found = self.checkpoints()
        return found[-1] if found else None


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
