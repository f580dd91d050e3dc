"""The dataset names, their UI limits and whether one is on disk, without importing torch.

The explorer's first page (the New run form) needs only these, and `vae_core.data` takes
seconds to import (torch). data.py's loaders look files up through the same functions.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

DATASETS: tuple[str, ...] = ("mnist", "fashion-mnist", "shapes", "folder")
IMAGE_SIZES: tuple[int, ...] = (28, 32, 64)  # what shapes and folder render to
MAX_SHAPES_IMAGES = 200_000  # shapes train images: the New run form's upper bound
SYSTEM_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian dataset-fashion-mnist
DATA_DIR_ENV = "VAE_EXPLORER_DATA"
SPLITS = ("train", "test")
IDX_FILES = {  # split -> (images, labels), the names MNIST and Fashion-MNIST share
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
TORCHVISION_NAMES = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}  # their folder names


def default_data_dir() -> Path:
    """$VAE_EXPLORER_DATA if set, else ~/.cache/vae-explorer/data."""
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "vae-explorer" / "data"


def is_available_offline(name: str, data_dir: str | Path | None = None) -> bool:
    """True when `name` loads without the network (shapes and folder always do); the same
    answer as vae_core.data.is_available_offline. ValueError for an unknown name."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")
    if name in TORCHVISION_NAMES:
        return all(find_local_idx(name, split, data_dir) is not None for split in SPLITS)
    return True


def find_local_idx(name: str, split: str, data_dir: str | Path | None) -> list[Path] | None:
    """[images, labels] idx files of `split` (plain or .gz), from the first folder holding both."""
    for folder in idx_candidate_dirs(name, data_dir):
        found = []
        for stem in IDX_FILES[split]:
            hits = [folder / f for f in (stem, f"{stem}.gz") if (folder / f).is_file()]
            found.extend(hits[:1])
        if len(found) == 2:
            return found
    return None


def idx_candidate_dirs(name: str, data_dir: str | Path | None) -> Iterator[Path]:
    """Folders that may hold the four idx files side by side, in the order they are tried."""
    roots = [Path(data_dir).expanduser()] if data_dir is not None else []
    yield from roots  # the user pointed straight at the files
    if default_data_dir() not in roots:
        roots.append(default_data_dir())
    for root in roots:
        yield root / TORCHVISION_NAMES[name] / "raw"  # torchvision's layout, as downloaded
        yield root / name  # flat, e.g. ~/.cache/vae-explorer/data/fashion-mnist/*.gz
    if name == "fashion-mnist":
        yield SYSTEM_FASHION_MNIST_DIR
