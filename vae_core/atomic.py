"""Crash-safe writes: a temp file in the same folder, fsync, then rename over the target.

A reader, or a kill -9 at any moment, sees either the old file or the new one, never half
of one. Every file in a run directory except the append-only metrics log goes through here.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported by the one writer of tensors, not by JSON writers
    import torch


class DiskFull(OSError):
    """No space left for a file: one line naming it and the space it needed."""

    def __init__(self, path: Path, needed: int) -> None:
        try:
            free = f", {_size(shutil.disk_usage(path.parent).free)} free"
        except OSError:
            free = ""
        message = f"disk full: writing {path} needed about {_size(needed)}{free}; free some space"
        super().__init__(errno.ENOSPC, message)
        self.filename = str(path)

    def __str__(self) -> str:
        return self.strerror


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def is_disk_full(error: BaseException) -> bool:
    """ENOSPC from the OS, or as the safetensors writer reports it (os error 28)."""
    if isinstance(error, OSError):
        return error.errno in (errno.ENOSPC, errno.EDQUOT)
    return "os error 28" in str(error) or "No space left on device" in str(error)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, rename over `path`."""
    fd, tmp = _mkstemp(path, len(data))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if is_disk_full(e) and not isinstance(e, DiskFull):
            raise DiskFull(path, len(data)) from None
        raise


def _mkstemp(path: Path, needed: int) -> tuple[int, str]:
    try:
        return tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:  # a full disk may have no room left even for the empty inode
        if is_disk_full(e):
            raise DiskFull(path, needed) from None
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    """`obj` as indented JSON, written atomically."""
    atomic_write_bytes(path, json.dumps(obj, indent=1).encode())


def atomic_save_tensors(
    path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]
) -> None:
    """safetensors.save_file into a temp file, fsync, rename."""
    from safetensors.torch import save_file  # imports torch; atomic JSON writes need none

    needed = sum(v.numel() * v.element_size() for v in tensors.values())
    needed += len(json.dumps(metadata)) + 100 * len(tensors)  # the header, roughly
    fd, tmp = _mkstemp(path, needed)
    os.close(fd)
    try:
        tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
        save_file(tensors, tmp, metadata=metadata)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if is_disk_full(e) and not isinstance(e, DiskFull):
            # safetensors reports ENOSPC as a SafetensorError: a traceback in the CLI
            raise DiskFull(path, needed) from None
        raise
