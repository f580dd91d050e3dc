"""Safetensors files read safely: a header without tensors, or tensors and metadata, from a
file that must be safetensors (a pickle under that name is refused, never unpickled)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from safetensors import SafetensorError

if TYPE_CHECKING:  # imported where it is used: the UI's first page needs no torch
    import torch

SAFE_SUFFIXES = (".safetensors",)
MAX_HEADER_BYTES = 100_000_000  # a safetensors header larger than this is not one


class UnsafeCheckpointError(ValueError):
    """A file offered as a checkpoint is not safetensors (pickles are never loaded)."""


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
