"""Dataset registry: mnist, fashion-mnist, shapes and a folder of the user's own images.

Every split is loaded once into one uint8 tensor (N, C, H, W) and batched by slicing, so the
training loop does no per-sample work. Missing data raises DatasetUnavailable with a message
that says what to do, never a stack trace.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import logging
import os
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from PIL import Image, ImageOps
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from vae_core import shapes

logger = logging.getLogger(__name__)

DATASETS: tuple[str, ...] = ("mnist", "fashion-mnist", "shapes", "folder")
SPLITS: tuple[str, ...] = ("train", "test")
IMAGE_SIZES: tuple[int, ...] = (28, 32, 64)  # what shapes and folder render to
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
SYSTEM_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian dataset-fashion-mnist
DOWNLOAD_TIMEOUT_S = 60.0  # torchvision's urllib calls have none; a dead network must not hang
SHAPES_TRAIN_SAMPLES = 20_000
_FOLDER_CACHE_VERSION = 1  # bump when the cached pixels would change for the same inputs
_IDX_FILES = {  # split -> (images, labels), the names MNIST and Fashion-MNIST share
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_OPTIONS = {  # dataset -> option names load_dataset / dataset_info accept
    "mnist": (),
    "fashion-mnist": (),
    "shapes": ("image_size", "num_samples", "seed"),
    "folder": ("path", "image_size", "channels"),
}


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a dataset, without its pixels."""

    name: str
    image_shape: tuple[int, int, int]  # (C, H, W)
    class_names: tuple[str, ...]  # label index -> name
    factor_names: tuple[str, ...] = ()  # shapes only: ground-truth factors, columns of `factors`
    likelihood: str = "bernoulli"  # suggested decoder likelihood: bernoulli grey, gaussian RGB


@dataclass
class ImageDataset:
    """One split held in memory as uint8; `batch` converts only the rows it is asked for."""

    images: torch.Tensor  # (N, C, H, W) uint8
    labels: torch.Tensor  # (N,) int64 class index (shapes: the shape index)
    info: DatasetInfo
    factors: torch.Tensor | None = None  # shapes only: (N, 5) float32 factor values
    factor_idx: torch.Tensor | None = None  # shapes only: (N, 5) int64 factor class indices
    skipped: int = 0  # folder only: files that could not be decoded

    def __post_init__(self) -> None:
        shape = tuple(self.images.shape)
        if self.images.dtype != torch.uint8 or len(shape) != 4:
            raise ValueError(f"images must be (N, C, H, W) uint8, got {self.images.dtype} {shape}")
        if tuple(self.labels.shape) != shape[:1]:
            raise ValueError(f"labels must be ({shape[0]},), got {tuple(self.labels.shape)}")
        self.images = self.images.contiguous()
        self.labels = self.labels.long()

    def __len__(self) -> int:
        return self.images.shape[0]

    def batch(
        self, index: torch.Tensor | slice, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """Rows `index` as float32 in [0, 1], (B, C, H, W), on `device` if given."""
        x = self.images[index]
        if device is not None:
            x = x.to(device, non_blocking=True)  # move uint8, a quarter of the bytes
        return x.float().div_(255)


class DatasetUnavailable(RuntimeError):
    """The data cannot be loaded here; the message tells the user what to do about it."""


def default_data_dir() -> Path:
    """$VAE_EXPLORER_DATA if set, else ~/.cache/vae-explorer/data."""
    env = os.environ.get("VAE_EXPLORER_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "vae-explorer" / "data"


def load_dataset(
    name: str,
    split: Literal["train", "test"] = "train",
    data_dir: str | Path | None = None,
    **options: Any,
) -> ImageDataset:
    """Load one split of a dataset in DATASETS into memory.

    Options: shapes takes image_size (28|32|64, default 64), num_samples (train size, default
    20000; test gets a quarter) and seed; folder takes path, image_size (default 64) and
    channels (1|3, default 3). Raises ValueError for bad arguments, DatasetUnavailable when the
    data is missing and cannot be fetched.
    """
    _check_name_and_options(name, options)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if name in ("mnist", "fashion-mnist"):
        return _load_idx_dataset(name, split, data_dir)
    if name == "shapes":
        return _load_shapes(split, **options)
    return _load_folder(split, data_dir, **options)


def dataset_info(name: str, **options: Any) -> DatasetInfo:
    """Shape, class names and suggested likelihood of a dataset, without decoding any pixels."""
    _check_name_and_options(name, options)
    if name in ("mnist", "fashion-mnist"):
        classes = tuple(_torchvision_class(name).classes)
        return DatasetInfo(name=name, image_shape=(1, 28, 28), class_names=classes)
    if name == "shapes":
        size = _image_size(options.get("image_size", 64))
        return DatasetInfo(
            name="shapes",
            image_shape=(1, size, size),
            class_names=shapes.SHAPE_NAMES,
            factor_names=shapes.FACTOR_NAMES,
        )
    root, size, channels = _folder_options(**options)
    files = _image_files(root)
    return _folder_info(size, channels, _class_names(root, files))


def is_available_offline(name: str, data_dir: str | Path | None = None) -> bool:
    """True when `name` loads without the network (shapes and folder always do)."""
    _check_name_and_options(name, {})
    if name in ("mnist", "fashion-mnist"):
        return all(_find_local_idx(name, split, data_dir) is not None for split in SPLITS)
    return True


def _check_name_and_options(name: str, options: dict[str, Any]) -> None:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")
    unknown = sorted(set(options) - set(_OPTIONS[name]))
    if unknown:
        accepted = ", ".join(_OPTIONS[name]) or "none"
        raise ValueError(
            f"dataset {name!r} does not take option(s) {unknown}; accepted: {accepted}"
        )


def _image_size(value: Any) -> int:
    if value not in IMAGE_SIZES:
        raise ValueError(f"image_size must be one of {IMAGE_SIZES}, got {value!r}")
    return int(value)


# ---- mnist / fashion-mnist ----


_TORCHVISION_NAMES = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}  # their folder names


def _torchvision_class(name: str) -> type:
    # Imported here: torchvision adds over a second to the import of every module that needs
    # only dataset_info (the UI), and only these two datasets use it.
    from torchvision.datasets import MNIST, FashionMNIST

    return MNIST if name == "mnist" else FashionMNIST


def _search_roots(data_dir: str | Path | None) -> list[Path]:
    """Data directories to look in, most specific first: data_dir, then $VAE_EXPLORER_DATA or
    the default cache."""
    roots = [Path(data_dir).expanduser()] if data_dir is not None else []
    if default_data_dir() not in roots:
        roots.append(default_data_dir())
    return roots


def _idx_candidate_dirs(name: str, data_dir: str | Path | None) -> Iterator[Path]:
    """Folders that may hold the four idx files side by side, in the order they are tried."""
    if data_dir is not None:
        yield Path(data_dir).expanduser()  # the user pointed straight at the files
    for root in _search_roots(data_dir):
        yield root / _TORCHVISION_NAMES[name] / "raw"  # torchvision's layout, as downloaded
        yield root / name  # flat, e.g. ~/.cache/vae-explorer/data/fashion-mnist/*.gz
    if name == "fashion-mnist":
        yield SYSTEM_FASHION_MNIST_DIR


def _find_local_idx(name: str, split: str, data_dir: str | Path | None) -> list[Path] | None:
    """[images, labels] idx files of `split` (plain or .gz), from the first folder holding both."""
    for folder in _idx_candidate_dirs(name, data_dir):
        found = []
        for stem in _IDX_FILES[split]:
            hits = [folder / f for f in (stem, f"{stem}.gz") if (folder / f).is_file()]
            found.extend(hits[:1])
        if len(found) == 2:
            return found
    return None


def _read_idx(path: Path) -> torch.Tensor:
    """An idx file (uint8 payload, as in MNIST), plain or gzipped, as a uint8 tensor."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    # Header: two zero bytes, the type code (0x08 = uint8), the number of dims, then big-endian
    # uint32 sizes. torchvision's reader takes only uncompressed paths, hence this one.
    if len(data) < 4 or data[:3] != b"\x00\x00\x08":
        raise DatasetUnavailable(f"{path} is not a uint8 idx file; delete it and retry")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    if len(data) - offset != int(torch.tensor(dims).prod()):
        raise DatasetUnavailable(f"{path} is truncated or corrupt; delete it and retry")
    return torch.frombuffer(bytearray(data), dtype=torch.uint8, offset=offset).view(dims)


def _load_idx_dataset(name: str, split: str, data_dir: str | Path | None) -> ImageDataset:
    info = dataset_info(name)
    local = _find_local_idx(name, split, data_dir)
    if local is not None:
        logger.info("loading %s %s from %s", name, split, local[0].parent)
        images, labels = _read_idx(local[0]), _read_idx(local[1]).long()
    else:
        images, labels = _download_idx(name, split, data_dir)
    if images.dim() != 3 or labels.shape != images.shape[:1]:
        shapes_seen = f"images {tuple(images.shape)}, labels {tuple(labels.shape)}"
        raise DatasetUnavailable(f"{name} {split}: the idx files do not match ({shapes_seen})")
    return ImageDataset(images=images.unsqueeze(1), labels=labels, info=info)  # (N, 1, 28, 28)


def _download_idx(
    name: str, split: str, data_dir: str | Path | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Download through torchvision into data_dir (or the default); (N, 28, 28), (N,)."""
    cls = _torchvision_class(name)
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    logger.info("%s not found locally; downloading into %s", name, root)
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT_S):
            ds = cls(root=str(root), train=split == "train", download=True)
    except (RuntimeError, OSError) as err:  # torchvision wraps URLErrors in RuntimeError
        raise DatasetUnavailable(_offline_message(name, root, err)) from err
    return ds.data, ds.targets


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """Give urllib a timeout for the duration of a download, unless one is set already."""
    previous = socket.getdefaulttimeout()
    if previous is None:
        socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _offline_message(name: str, root: Path, err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    reason = lines[-1] if lines else type(err).__name__  # torchvision's last line is the cause
    title = "MNIST" if name == "mnist" else "Fashion-MNIST"
    files = ", ".join(f"{stem}.gz" for pair in _IDX_FILES.values() for stem in pair)
    message = (
        f"{title} is not on this machine and could not be downloaded ({reason}). "
        f"Either put the {title} idx files ({files}) in {root / name} "
        "(or pass --data-dir / set VAE_EXPLORER_DATA to a folder holding them), "
    )
    if name == "fashion-mnist":
        message += "or install them with `apt-get install dataset-fashion-mnist`, "
    return message + "or connect to the internet and retry."


# ---- shapes ----


def _load_shapes(
    split: str, image_size: int = 64, num_samples: int = SHAPES_TRAIN_SAMPLES, seed: int = 0
) -> ImageDataset:
    size = _image_size(image_size)
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    # Even seeds for train, odd for test: the two splits never share a random stream.
    count = num_samples if split == "train" else max(1, num_samples // 4)
    images, factors, factor_idx = shapes.generate_shapes(
        count, image_size=size, seed=2 * seed + (split == "test")
    )
    return ImageDataset(
        images=images,
        labels=factor_idx[:, 0].clone(),
        info=dataset_info("shapes", image_size=size),
        factors=factors,
        factor_idx=factor_idx,
    )


# ---- folder ----


def _folder_options(
    path: str | Path | None = None, image_size: int = 64, channels: int = 3
) -> tuple[Path, int, int]:
    if path is None:
        raise ValueError("the folder dataset needs path=<a directory of images>")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    return Path(path).expanduser().resolve(), _image_size(image_size), int(channels)


def _image_files(root: Path) -> list[Path]:
    """Image files under root (recursive), sorted by relative path; raises if there are none."""
    if not root.is_dir():
        raise DatasetUnavailable(f"image folder {root} does not exist; pick a folder of images")
    files = sorted(
        (p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
        key=lambda p: p.relative_to(root).as_posix(),
    )
    if not files:
        kinds = "/".join(s.lstrip(".") for s in IMAGE_SUFFIXES)
        raise DatasetUnavailable(f"no images ({kinds}) found in {root}; pick a folder of images")
    return files


def _class_of(root: Path, path: Path) -> str:
    """The immediate subfolder of root that holds path; '' for a file in root itself."""
    return path.relative_to(root).parts[0] if path.parent != root else ""


def _class_names(root: Path, files: list[Path]) -> tuple[str, ...]:
    """Sorted class (subfolder) names; ("images",) when every file sits in root itself."""
    names = sorted({_class_of(root, p) for p in files})
    return ("images",) if names == [""] else tuple(names)


def _folder_info(size: int, channels: int, class_names: tuple[str, ...]) -> DatasetInfo:
    return DatasetInfo(
        name="folder",
        image_shape=(channels, size, size),
        class_names=class_names,
        likelihood="gaussian" if channels == 3 else "bernoulli",
    )


def _load_folder(split: str, data_dir: str | Path | None, **options: Any) -> ImageDataset:
    """Decode (or read from cache) every image, then keep this split: test = every 10th file."""
    root, size, channels = _folder_options(**options)
    files = _image_files(root)
    class_names = _class_names(root, files)
    cache = _folder_cache_path(root, files, size, channels, data_dir)
    tensors = _read_cache(cache)
    if tensors is None:
        tensors = _decode_folder(root, files, class_names, size, channels)
        _write_cache(cache, tensors)
    images, labels, file_index = tensors["images"], tensors["labels"], tensors["file_index"]
    skipped = len(files) - len(images)
    if len(images) == 0:
        raise DatasetUnavailable(f"none of the {len(files)} image files in {root} could be read")
    if skipped:
        logger.warning("folder %s: skipped %d file(s) that could not be decoded", root, skipped)
    if len(images) >= 10:  # below that, both splits get everything rather than an empty test
        keep = (file_index % 10 == 9) == (split == "test")
        images, labels = images[keep], labels[keep]
    info = _folder_info(size, channels, class_names)
    return ImageDataset(images=images, labels=labels, info=info, skipped=skipped)


def _folder_cache_path(
    root: Path, files: list[Path], size: int, channels: int, data_dir: str | Path | None
) -> Path:
    """Cache file named by a hash of everything the pixels depend on, so edits invalidate it."""
    listing = [(p.relative_to(root).as_posix(), *_mtime_and_size(p)) for p in files]
    key = json.dumps([_FOLDER_CACHE_VERSION, str(root), listing, size, channels])
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    base = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    return base / "folder-cache" / f"{digest}.safetensors"


def _mtime_and_size(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


def _decode_folder(
    root: Path, files: list[Path], class_names: tuple[str, ...], size: int, channels: int
) -> dict[str, torch.Tensor]:
    """Decode each file, centre-cropped to a square and resized to size x size; skip bad ones."""
    mode = "RGB" if channels == 3 else "L"
    label_of = {"": 0} if class_names == ("images",) else {n: i for i, n in enumerate(class_names)}
    images, labels, file_index = [], [], []
    for i, path in enumerate(files):
        try:
            with Image.open(path) as img:
                img.draft(mode, (size, size))  # JPEG: decode at reduced size when possible
                square = ImageOps.fit(img.convert(mode), (size, size), Image.Resampling.BICUBIC)
        except (OSError, ValueError, Image.DecompressionBombError) as err:
            logger.debug("skipping %s: %s", path, err)
            continue
        pixels = torch.frombuffer(bytearray(square.tobytes()), dtype=torch.uint8)
        images.append(pixels.view(size, size, channels).permute(2, 0, 1))  # (C, H, W)
        labels.append(label_of[_class_of(root, path)])
        file_index.append(i)
    stacked = torch.stack(images) if images else torch.empty(0, channels, size, size)
    return {
        "images": stacked.to(torch.uint8).contiguous(),  # (N, C, H, W)
        "labels": torch.tensor(labels, dtype=torch.int64),
        "file_index": torch.tensor(file_index, dtype=torch.int64),
    }


def _read_cache(path: Path) -> dict[str, torch.Tensor] | None:
    if not path.is_file():
        return None
    try:
        return load_file(path)
    except (SafetensorError, OSError) as err:
        logger.warning("ignoring unreadable cache %s: %s", path, err)
        return None


def _write_cache(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Write atomically (temp file + rename), so a reader never sees half a cache file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".safetensors")
        os.close(fd)
        try:
            save_file(tensors, tmp)
            os.replace(tmp, path)
        finally:
            if Path(tmp).exists():
                Path(tmp).unlink()
    except OSError as err:  # a read-only cache dir costs speed next time, not correctness
        logger.warning("could not cache folder images at %s: %s", path, err)
