"""Dataset registry: mnist, fashion-mnist, shapes and a folder of the user's own images.

Every split is one uint8 array (N, C, H, W) batched by slicing, so the training loop does no
per-sample work. Small sets live in memory; folder datasets and large shapes sets live in a
disk cache (vae_core.memmap_cache) read a batch at a time, so memory stays bounded whatever
the dataset's size. Missing data raises DatasetUnavailable with a message that says what to
do, never a stack trace.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import itertools
import json
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image, ImageOps

from vae_core import memmap_cache, shapes
from vae_core.catalog import (  # re-exported: the names and lookups live there, torch-free
    DATASETS,
    IDX_FILES,
    IMAGE_SIZES,
    MAX_SHAPES_IMAGES,
    SPLITS,
    default_data_dir,
    find_local_idx,
)
from vae_core.memmap_cache import Progress

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
DOWNLOAD_TIMEOUT_S = 60.0  # torchvision's urllib calls have none; a dead network must not hang
SHAPES_TRAIN_SAMPLES = 20_000
# Limits on every input, so no folder or option can exhaust memory, disk or time. Module
# constants, so the UI can use them as widget bounds and tests can lower them (monkeypatch).
# Image files in a folder dataset: 6 GB of disk cache at 64 x 64 RGB (RAM use does not grow
# with it); the limit bounds the scan, the cache's disk use and the caching time.
MAX_FOLDER_IMAGES = 500_000
MAX_FOLDER_DEPTH = 3  # subfolder levels below the folder's root that are scanned
MAX_IMAGE_PIXELS = 40_000_000  # per file, read from the header; below Pillow's bomb limit
FOLDER_CACHE_ENTRIES = 8  # decoded folder caches kept, least recently used evicted first
# And their total size; the newest entry is always kept. A 200,000-image 64 x 64 RGB folder
# is 2.5 GB: 8 GiB keeps three such sets, so switching between big folders (or channel counts)
# does not re-decode each time, while staying well below a typical free disk.
FOLDER_CACHE_BYTES = 8 * 1024**3
# Shapes splits above this many images are rendered into a disk cache instead of memory:
# 50,000 images are 200 MB at 64 x 64, so no shapes split takes more RAM than that.
SHAPES_IN_MEMORY_MAX = 50_000
SHAPES_CACHE_ENTRIES = 4  # rendered shapes caches kept (200,000 at 64 x 64: 0.8 GB each)
SHAPES_CACHE_BYTES = 4 * 1024**3
_STALE_TEMP_S = 3600.0  # a cache temp directory this old was left by a killed builder
_FOLDER_CACHE_VERSION = 2  # bump when the cached pixels would change for the same inputs
_SHAPES_CACHE_VERSION = 1
_RENDER_CHUNK = 4096  # shapes rendered (and written) per step while filling a cache: 16 MB
_DECODE_CHUNK = 256  # folder images decoded per write: 3 MB at 64 x 64 RGB
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
    """One split as uint8; `batch` converts only the rows it is asked for.

    `images` is an ordinary tensor, held in memory or (disk-cached sets) wrapping a
    copy-on-write memory map of the cache file. Disk-backed sets also carry `rows`, which
    `batch` reads with pread instead of touching the map, so RSS stays bounded however many
    batches are drawn; index `images` directly only for a few rows.
    """

    images: torch.Tensor  # (N, C, H, W) uint8
    labels: torch.Tensor  # (N,) int64 class index (shapes: the shape index)
    info: DatasetInfo
    factors: torch.Tensor | None = None  # shapes only: (N, 5) float32 factor values
    factor_idx: torch.Tensor | None = None  # shapes only: (N, 5) int64 factor class indices
    skipped: int = 0  # folder only: files that could not be decoded
    rows: memmap_cache.RowReader | None = field(default=None, repr=False)  # disk-backed only

    def __post_init__(self) -> None:
        shape = tuple(self.images.shape)
        if self.images.dtype != torch.uint8 or len(shape) != 4:
            raise ValueError(f"images must be (N, C, H, W) uint8, got {self.images.dtype} {shape}")
        if tuple(self.labels.shape) != shape[:1]:
            raise ValueError(f"labels must be ({shape[0]},), got {tuple(self.labels.shape)}")
        if self.rows is not None and len(self.rows) != shape[0]:
            raise ValueError(f"rows must cover the {shape[0]} images, got {len(self.rows)}")
        self.images = self.images.contiguous()  # a no-op for a slice of a memory map
        self.labels = self.labels.long()

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def on_disk(self) -> bool:
        return self.rows is not None

    def batch(
        self, index: torch.Tensor | slice, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """Rows `index` as float32 in [0, 1], (B, C, H, W), on `device` if given."""
        x = self._read(index)
        if device is not None:
            x = x.to(device, non_blocking=True)  # move uint8, a quarter of the bytes
        return x.float().div_(255)

    def _read(self, index: torch.Tensor | slice) -> torch.Tensor:
        """Rows `index` as uint8; from disk by pread when the set is disk-backed."""
        if self.rows is not None:
            if isinstance(index, slice):
                start, stop, step = index.indices(len(self))
                if step == 1:
                    return torch.from_numpy(self.rows.read_slice(start, stop))
                index = torch.arange(start, stop, step)
            as_array = np.asarray(index.cpu() if isinstance(index, torch.Tensor) else index)
            if as_array.ndim == 1 and as_array.dtype.kind in "iu":
                return torch.from_numpy(self.rows.read_rows(as_array))
        return self.images[index]  # masks, scalars, in-memory sets: plain tensor indexing


class DatasetUnavailable(RuntimeError):
    """The data cannot be loaded here; the message tells the user what to do about it."""


def load_dataset(
    name: str,
    split: Literal["train", "test"] = "train",
    data_dir: str | Path | None = None,
    *,
    progress: Progress | None = None,
    **options: Any,
) -> ImageDataset:
    """Load one split of a dataset in DATASETS.

    Options: shapes takes image_size (28|32|64, default 64), num_samples (train size, default
    20000, at most MAX_SHAPES_IMAGES; test gets a quarter) and seed; folder takes path,
    image_size (default 64) and channels (1|3, default 3). Folder sets and shapes splits over
    SHAPES_IN_MEMORY_MAX images are cached on disk under data_dir and read from there; while
    such a cache is built, `progress(done, total)` (if given) is called about every 1 % or
    0.5 s, first with done = 0 and last with done = total (files decoded or images rendered).
    Raises ValueError for bad arguments or a folder past MAX_FOLDER_IMAGES / MAX_FOLDER_DEPTH,
    DatasetUnavailable when the data is missing and cannot be fetched.
    """
    _check_name_and_options(name, options)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if name in ("mnist", "fashion-mnist"):
        return _load_idx_dataset(name, split, data_dir)
    if name == "shapes":
        return _load_shapes(split, data_dir, progress, **options)
    return _load_folder(split, data_dir, progress, **options)


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


def ensure_available(name: str, data_dir: str | Path | None = None, **options: Any) -> None:
    """Make sure a run of `name` can load its data, before any run folder exists: MNIST /
    Fashion-MNIST not on disk are downloaded now, a folder must hold images. Raises
    DatasetUnavailable (what to do about it) or ValueError (bad options)."""
    _check_name_and_options(name, options)
    if name in ("mnist", "fashion-mnist"):
        for split in SPLITS:
            if find_local_idx(name, split, data_dir) is None:
                _download_idx(name, split, data_dir)
    elif name == "folder":
        dataset_info(name, **options)  # lists the images: none, or no such folder, raises


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
            f"num_samples must be at most {MAX_SHAPES_IMAGES:,} (the bound on rendering time "
            f"and cache size), got {num_samples:,}; ask for fewer shapes images"
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


def _load_shapes(
    split: str, data_dir: str | Path | None, progress: Progress | None, **options: Any
) -> ImageDataset:
    size, num_samples, seed = _shapes_options(**options)
    # Even seeds for train, odd for test: the two splits never share a random stream.
    count = num_samples if split == "train" else max(1, num_samples // 4)
    split_seed = 2 * seed + (split == "test")
    if count > SHAPES_IN_MEMORY_MAX:
        return _load_shapes_from_disk(count, size, split_seed, data_dir, progress)
    images, factors, factor_idx = shapes.generate_shapes(count, image_size=size, seed=split_seed)
    return ImageDataset(
        images=images,
        labels=factor_idx[:, 0].clone(),
        info=_shapes_info(size),
        factors=factors,
        factor_idx=factor_idx,
    )


def _load_shapes_from_disk(
    count: int, size: int, seed: int, data_dir: str | Path | None, progress: Progress | None
) -> ImageDataset:
    """A large shapes split, rendered once into the disk cache; the same pixels and factors
    as shapes.generate_shapes(count, size, seed), since each image depends on its row only."""
    key = _digest([_SHAPES_CACHE_VERSION, count, size, seed])
    path = _cache_base(data_dir) / "shapes-cache" / key

    def build(final: Path) -> memmap_cache.Entry:
        return _render_shapes_entry(final, count, size, seed, progress)

    entry = _open_or_build(path, build, SHAPES_CACHE_ENTRIES, SHAPES_CACHE_BYTES)
    try:
        factor_idx = torch.from_numpy(entry.arrays["factor_idx"])
        return _disk_dataset(
            entry,
            (0, entry.rows),
            _shapes_info(size),
            labels=factor_idx[:, 0].clone(),
            factors=torch.from_numpy(entry.arrays["factors"]),
            factor_idx=factor_idx,
        )
    finally:
        _forget_private(entry)


def _render_shapes_entry(
    final: Path, count: int, size: int, seed: int, progress: Progress | None
) -> memmap_cache.Entry:
    factor_idx = shapes.factor_indices(count, seed)  # (N, 5): 8 MB at 200,000, kept in memory
    factors = shapes.indices_to_factors(factor_idx)
    report = memmap_cache.ProgressReport(progress, count, "rendering shapes")
    with memmap_cache.EntryBuilder(final, (1, size, size)) as builder:
        for start in range(0, count, _RENDER_CHUNK):
            part = factors[start : start + _RENDER_CHUNK]
            builder.append(shapes.render_shapes(*part.unbind(dim=1), image_size=size).numpy())
            report.update(builder.rows)
        report.close()
        arrays = {"factor_idx": factor_idx.numpy(), "factors": factors.numpy()}
        return builder.finish(arrays, {"all": (0, count)})


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


def _load_folder(
    split: str, data_dir: str | Path | None, progress: Progress | None, **options: Any
) -> ImageDataset:
    """Decode every image into the disk cache (or find it there), then keep this split:
    test = every 10th file. The cache holds the train rows first, so a split is a slice."""
    root, size, channels = _folder_options(**options)
    files = _image_files(root)
    class_names = _class_names(root, files)
    path = _folder_cache_path(root, files, size, channels, data_dir)

    def build(final: Path) -> memmap_cache.Entry:
        return _decode_folder(final, root, files, class_names, size, channels, progress)

    entry = _open_or_build(path, build, FOLDER_CACHE_ENTRIES, FOLDER_CACHE_BYTES)
    try:
        skipped = len(files) - entry.rows
        if entry.rows == 0:
            raise DatasetUnavailable(
                f"none of the {len(files)} image files in {root} could be read"
            )
        if skipped:
            logger.warning(
                "folder %s: skipped %d file(s) that could not be decoded or have more than %s "
                "pixels",
                root,
                skipped,
                f"{MAX_IMAGE_PIXELS:,}",
            )
        # Below 10 images both splits get everything rather than an empty test split.
        start, stop = entry.splits[split] if entry.rows >= 10 else (0, entry.rows)
        labels = torch.from_numpy(entry.arrays["labels"][start:stop])
        info = _folder_info(size, channels, class_names)
        return _disk_dataset(entry, (start, stop), info, labels=labels, skipped=skipped)
    finally:
        _forget_private(entry)


def _folder_cache_path(
    root: Path, files: list[Path], size: int, channels: int, data_dir: str | Path | None
) -> Path:
    """Cache entry named by a hash of everything the pixels depend on, so edits invalidate it."""
    listing = [(p.relative_to(root).as_posix(), *_mtime_and_size(p)) for p in files]
    key = _digest([_FOLDER_CACHE_VERSION, str(root), listing, size, channels])
    return _cache_base(data_dir) / "folder-cache" / key


def _mtime_and_size(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


def _decode_folder(
    final: Path,
    root: Path,
    files: list[Path],
    class_names: tuple[str, ...],
    size: int,
    channels: int,
    progress: Progress | None,
) -> memmap_cache.Entry:
    """Decode each file into a new cache entry at `final`, centre-cropped to a square and
    resized to size x size; skip bad ones. Train files go first, then the test files (every
    10th), so that each split is one range of rows. Memory held: one chunk of images."""
    label_of = {"": 0} if class_names == ("images",) else {n: i for i, n in enumerate(class_names)}
    report = memmap_cache.ProgressReport(progress, len(files), "caching images")
    labels: list[int] = []
    file_index: list[int] = []
    split_ends: list[int] = []
    done = 0
    with memmap_cache.EntryBuilder(final, (channels, size, size)) as builder:
        for in_test in (False, True):
            pending: list[np.ndarray] = []
            for i in range(len(files)):
                if (i % 10 == 9) != in_test:
                    continue
                image = _decode_image(files[i], size, channels)
                if image is not None:
                    pending.append(image)
                    labels.append(label_of[_class_of(root, files[i])])
                    file_index.append(i)
                if len(pending) == _DECODE_CHUNK:
                    builder.append(np.stack(pending))
                    pending.clear()
                done += 1
                report.update(done)
            if pending:
                builder.append(np.stack(pending))
            split_ends.append(builder.rows)
        report.close()
        arrays = {
            "labels": np.array(labels, dtype=np.int64),
            "file_index": np.array(file_index, dtype=np.int64),
        }
        splits = {"train": (0, split_ends[0]), "test": (split_ends[0], split_ends[1])}
        return builder.finish(arrays, splits, extra={"files": len(files)})


def _decode_image(path: Path, size: int, channels: int) -> np.ndarray | None:
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
    pixels = np.frombuffer(square.tobytes(), dtype=np.uint8)
    return pixels.reshape(size, size, channels).transpose(2, 0, 1)  # (C, H, W)


# ---- the disk cache, shared by folder and large shapes sets ----


def _cache_base(data_dir: str | Path | None) -> Path:
    return Path(data_dir).expanduser() if data_dir is not None else default_data_dir()


def _digest(key: list[Any]) -> str:
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:24]


_PRIVATE_PREFIX = "vae-explorer-private-cache-"


def _open_or_build(
    path: Path,
    build: Callable[[Path], memmap_cache.Entry],
    max_entries: int,
    max_bytes: int,
) -> memmap_cache.Entry:
    """The complete entry at `path`, built (or rebuilt, if interrupted) when missing.

    A cache dir that cannot be written (read-only, full) costs a rebuild per load, not
    correctness: the entry is built in a private temp folder, which the caller deletes with
    `_forget_private` once the dataset has opened it (the open file outlives its name).
    """
    entry = memmap_cache.open_entry(path)
    if entry is not None:
        memmap_cache.touch(entry)  # a hit makes it the most recently used
        return entry
    if path.exists():
        logger.warning("rebuilding the interrupted or damaged cache %s", path)
        with contextlib.suppress(OSError):
            memmap_cache.discard(path)
    try:
        entry = build(path)
    except OSError as err:
        logger.warning("could not cache images at %s: %s; using a temporary copy", path, err)
        try:
            entry = build(Path(tempfile.mkdtemp(prefix=_PRIVATE_PREFIX)) / path.name)
        except OSError as err2:
            raise DatasetUnavailable(
                f"cannot write the image cache in {path.parent} ({err.strerror}) nor in "
                f"{tempfile.gettempdir()} ({err2.strerror}); free some disk space"
            ) from err2
        return entry
    memmap_cache.evict(
        path.parent, path, max_entries, max_bytes, _STALE_TEMP_S, legacy_glob="*.safetensors"
    )
    return entry


def _forget_private(entry: memmap_cache.Entry) -> None:
    """Delete an entry built in a private temp folder; datasets already opened keep reading."""
    if entry.path.parent.name.startswith(_PRIVATE_PREFIX):
        shutil.rmtree(entry.path.parent, ignore_errors=True)


def _disk_dataset(
    entry: memmap_cache.Entry,
    rows: tuple[int, int],
    info: DatasetInfo,
    labels: torch.Tensor,
    **fields: Any,
) -> ImageDataset:
    """A split that reads rows [start, stop) of the entry's images: nothing is loaded yet."""
    start, stop = rows
    return ImageDataset(
        images=torch.from_numpy(memmap_cache.images_array(entry, start, stop)),
        labels=labels,
        info=info,
        rows=memmap_cache.RowReader(entry, start, stop),
        **fields,
    )
