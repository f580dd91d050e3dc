"""Dataset registry: mnist, fashion-mnist, shapes and a folder of the user's own images.

Every split is loaded once into one uint8 tensor (N, C, H, W) and batched by slicing, so the
training loop does no per-sample work. Missing data raises DatasetUnavailable with a message
that says what to do, never a stack trace.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import itertools
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from PIL import Image, ImageOps
from safetensors import SafetensorError
from safetensors.torch import load_file

from vae_core import shapes
from vae_core.atomic import atomic_save_tensors
from vae_core.catalog import (  # re-exported: the names and lookups live there, torch-free
    DATASETS,
    IDX_FILES,
    MAX_SHAPES_IMAGES,
    SPLITS,
    default_data_dir,
    find_local_idx,
)

logger = logging.getLogger(__name__)

IMAGE_SIZES: tuple[int, ...] = (28, 32, 64)  # what shapes and folder render to
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
DOWNLOAD_TIMEOUT_S = 60.0  # torchvision's urllib calls have none; a dead network must not hang
SHAPES_TRAIN_SAMPLES = 20_000
# Limits on every input, so no folder or option can exhaust memory, disk or time. Module
# constants, so the UI can use them as widget bounds and tests can lower them (monkeypatch).
MAX_FOLDER_IMAGES = 100_000  # image files in a folder dataset: 1.2 GB decoded at 64 x 64 RGB
MAX_FOLDER_DEPTH = 3  # subfolder levels below the folder's root that are scanned
MAX_IMAGE_PIXELS = 40_000_000  # per file, read from the header; below Pillow's bomb limit
FOLDER_CACHE_ENTRIES = 8  # decoded folder caches kept, least recently used evicted first
FOLDER_CACHE_BYTES = 4 * 1024**3  # and their total size; the newest entry is always kept
_STALE_TEMP_S = 3600.0  # a cache temp file this old was left by a killed writer
_FOLDER_CACHE_VERSION = 1  # bump when the cached pixels would change for the same inputs
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


def load_dataset(
    name: str,
    split: Literal["train", "test"] = "train",
    data_dir: str | Path | None = None,
    **options: Any,
) -> ImageDataset:
    """Load one split of a dataset in DATASETS into memory.

    Options: shapes takes image_size (28|32|64, default 64), num_samples (train size, default
    20000, at most MAX_SHAPES_IMAGES; test gets a quarter) and seed; folder takes path,
    image_size (default 64) and channels (1|3, default 3). Raises ValueError for bad arguments
    or a folder past MAX_FOLDER_IMAGES / MAX_FOLDER_DEPTH, DatasetUnavailable when the data is
    missing and cannot be fetched.
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
        size, _, _ = _shapes_options(**options)
        return _shapes_info(size)
    root, size, channels = _folder_options(**options)
    files = _image_files(root)
    return _folder_info(size, channels, _class_names(root, files))


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


def _torchvision_class(name: str) -> type:
    # Imported here: torchvision adds over a second to the import of every module that needs
    # only dataset_info (the UI), and only these two datasets use it.
    from torchvision.datasets import MNIST, FashionMNIST

    return MNIST if name == "mnist" else FashionMNIST


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
    local = find_local_idx(name, split, data_dir)
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
    files = ", ".join(f"{stem}.gz" for pair in IDX_FILES.values() for stem in pair)
    message = (
        f"{title} is not on this machine and could not be downloaded ({reason}). "
        f"Either put the {title} idx files ({files}) in {root / name} "
        "(or pass --data-dir / set VAE_EXPLORER_DATA to a folder holding them), "
    )
    if name == "fashion-mnist":
        message += "or install them with `apt-get install dataset-fashion-mnist`, "
    return message + "or connect to the internet and retry."


# ---- shapes ----


def _shapes_options(
    image_size: int = 64, num_samples: int = SHAPES_TRAIN_SAMPLES, seed: int = 0
) -> tuple[int, int, int]:
    """Validated (image_size, num_samples, seed); checked before anything is generated."""
    size = _image_size(image_size)
    if not _is_int(num_samples) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
    if num_samples > MAX_SHAPES_IMAGES:
        raise ValueError(
            f"num_samples must be at most {MAX_SHAPES_IMAGES:,} (every image is held in "
            f"memory), got {num_samples:,}; ask for fewer shapes images"
        )
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return size, num_samples, seed


def _shapes_info(size: int) -> DatasetInfo:
    return DatasetInfo(
        name="shapes",
        image_shape=(1, size, size),
        class_names=shapes.SHAPE_NAMES,
        factor_names=shapes.FACTOR_NAMES,
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # True is no image count


def _load_shapes(split: str, **options: Any) -> ImageDataset:
    size, num_samples, seed = _shapes_options(**options)
    # Even seeds for train, odd for test: the two splits never share a random stream.
    count = num_samples if split == "train" else max(1, num_samples // 4)
    images, factors, factor_idx = shapes.generate_shapes(
        count, image_size=size, seed=2 * seed + (split == "test")
    )
    return ImageDataset(
        images=images,
        labels=factor_idx[:, 0].clone(),
        info=_shapes_info(size),
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
    """Image files under root, sorted by relative path; raises if there are none.

    Raises ValueError past MAX_FOLDER_IMAGES files or MAX_FOLDER_DEPTH subfolder levels.
    """
    if not root.is_dir():
        raise DatasetUnavailable(f"image folder {root} does not exist; pick a folder of images")
    # islice stops the scan at the first file past the limit: a huge tree is never walked whole.
    files = list(itertools.islice(_scan_images(root), MAX_FOLDER_IMAGES + 1))
    if len(files) > MAX_FOLDER_IMAGES:
        raise ValueError(
            f"the folder {root} holds more than {MAX_FOLDER_IMAGES:,} images; "
            "point at a smaller folder or a subfolder"
        )
    if not files:
        kinds = "/".join(s.lstrip(".") for s in IMAGE_SUFFIXES)
        raise DatasetUnavailable(f"no images ({kinds}) found in {root}; pick a folder of images")
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def _scan_images(root: Path) -> Iterator[Path]:
    """Image files under root, lazily, at most MAX_FOLDER_DEPTH folders down.

    Symlinked folders are not entered, so the scan stays inside the tree and cannot loop.
    """
    pending = [(root, 0)]  # (folder, its depth below root)
    while pending:
        folder, depth = pending.pop()
        for entry in _folder_entries(root, folder):
            if entry.is_dir(follow_symlinks=False):
                if depth >= MAX_FOLDER_DEPTH:
                    raise ValueError(_too_deep_message(root, Path(entry.path)))
                pending.append((Path(entry.path), depth + 1))
            elif entry.name.lower().endswith(IMAGE_SUFFIXES) and entry.is_file():
                yield Path(entry.path)


def _folder_entries(root: Path, folder: Path) -> Iterator[os.DirEntry[str]]:
    """The entries of one folder; an unreadable subfolder is skipped, an unreadable root not."""
    try:
        with os.scandir(folder) as entries:
            yield from entries
    except OSError as err:
        if folder == root:
            raise DatasetUnavailable(f"cannot read image folder {root}: {err.strerror}") from err
        logger.warning("skipping unreadable folder %s: %s", folder, err.strerror)


def _too_deep_message(root: Path, folder: Path) -> str:
    return (
        f"the folder {root} nests subfolders more than {MAX_FOLDER_DEPTH} levels deep "
        f"({folder.relative_to(root).as_posix()}); point at a subfolder, or one whose images "
        f"sit at most {MAX_FOLDER_DEPTH} folders down"
    )


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
        logger.warning(
            "folder %s: skipped %d file(s) that could not be decoded or have more than %s pixels",
            root,
            skipped,
            f"{MAX_IMAGE_PIXELS:,}",
        )
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
    label_of = {"": 0} if class_names == ("images",) else {n: i for i, n in enumerate(class_names)}
    images, labels, file_index = [], [], []
    for i, path in enumerate(files):
        image = _decode_image(path, size, channels)
        if image is None:
            continue
        images.append(image)
        labels.append(label_of[_class_of(root, path)])
        file_index.append(i)
    stacked = torch.stack(images) if images else torch.empty(0, channels, size, size)
    return {
        "images": stacked.to(torch.uint8).contiguous(),  # (N, C, H, W)
        "labels": torch.tensor(labels, dtype=torch.int64),
        "file_index": torch.tensor(file_index, dtype=torch.int64),
    }


def _decode_image(path: Path, size: int, channels: int) -> torch.Tensor | None:
    """One file as (C, size, size) uint8, or None when it is unreadable or too large."""
    mode = "RGB" if channels == 3 else "L"
    try:
        with Image.open(path) as img:
            width, height = img.size  # from the header: no pixel is decoded yet
            if width * height > MAX_IMAGE_PIXELS:
                logger.warning(
                    "skipping %s: %d x %d pixels is over the limit of %s pixels per image",
                    path,
                    width,
                    height,
                    f"{MAX_IMAGE_PIXELS:,}",
                )
                return None
            img.draft(mode, (size, size))  # JPEG: decode at reduced size when possible
            square = ImageOps.fit(img.convert(mode), (size, size), Image.Resampling.BICUBIC)
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        logger.debug("skipping %s: %s", path, err)
        return None
    pixels = torch.frombuffer(bytearray(square.tobytes()), dtype=torch.uint8)
    return pixels.view(size, size, channels).permute(2, 0, 1)  # (C, H, W)


def _read_cache(path: Path) -> dict[str, torch.Tensor] | None:
    if not path.is_file():
        return None
    try:
        tensors = load_file(path)
    except (SafetensorError, OSError) as err:
        logger.warning("ignoring unreadable cache %s: %s", path, err)
        return None
    with contextlib.suppress(OSError):  # a hit makes it the most recently used; best effort
        os.utime(path)
    return tensors


def _write_cache(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Write atomically, so a reader never sees half a cache file, then evict old entries."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        metadata = {"vae_explorer": "folder-cache", "version": str(_FOLDER_CACHE_VERSION)}
        atomic_save_tensors(path, tensors, metadata)
    except OSError as err:  # a read-only cache dir costs speed next time, not correctness
        logger.warning("could not cache folder images at %s: %s", path, err)
        return
    _evict_cache(path)


def _evict_cache(newest: Path) -> None:
    """Delete the least recently used entries beyond FOLDER_CACHE_ENTRIES / FOLDER_CACHE_BYTES,
    and temp files left by killed writers; `newest` always stays."""
    try:
        others = [(p, p.stat()) for p in newest.parent.glob("*.safetensors") if p != newest]
        stale = [p for p in newest.parent.glob(".*.tmp") if _age_s(p) > _STALE_TEMP_S]
        kept_bytes = newest.stat().st_size
    except OSError as err:  # another process evicting at the same time; it will finish the job
        logger.debug("folder cache eviction skipped: %s", err)
        return
    others.sort(key=lambda entry: entry[1].st_mtime_ns, reverse=True)  # most recent first
    kept = 1
    for path, stat in others:
        if kept < FOLDER_CACHE_ENTRIES and kept_bytes + stat.st_size <= FOLDER_CACHE_BYTES:
            kept, kept_bytes = kept + 1, kept_bytes + stat.st_size
        else:
            stale.append(path)
    for path in stale:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
            logger.info("evicted folder cache %s", path.name)


def _age_s(path: Path) -> float:
    return time.time() - path.stat().st_mtime
