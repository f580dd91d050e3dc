"""uint8 image arrays on disk: built row by row, published atomically, read by row.

One cache entry is a directory:

    <cache_dir>/<key>/images.u8     raw uint8 rows (N, C, H, W), C order, no header
    <cache_dir>/<key>/<name>.npy    small per-row side arrays (labels, file_index, factors, ...)
    <cache_dir>/<key>/meta.json     written last: format version, shape, row ranges of splits

A build fills a hidden temp directory beside the entry, fsyncs every file, writes meta.json,
then renames the directory into place. A reader therefore sees a complete entry or none; an
entry without meta.json, or whose images.u8 is shorter than meta.json says, is damaged (a copy
interrupted outside this module, a full disk) and `open_entry` reports it as missing so the
caller rebuilds it. Two concurrent builders each fill their own temp directory; the first
rename wins and the second builder discards its copy.

Rows are read with pread into a fresh buffer rather than through a memory map: pages of a
mapped file count in the process's RSS once touched, so random batches over a mapping would
grow RSS to the whole file within an epoch, while pread leaves them in the kernel's page
cache, which is reclaimable and counts against no process. `images_array` still offers a
copy-on-write memory map for callers that index the array directly (a few rows at a time).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1  # of the layout above; a mismatch reads as a damaged entry
IMAGES_FILE = "images.u8"
META_FILE = "meta.json"
TEMP_SUFFIX = ".tmp"  # temp directories are ".<key>.<random>.tmp"

Progress = Callable[[int, int], None]  # (done, total), both counts of input items


@dataclass(frozen=True, eq=False)  # arrays do not compare with ==
class Entry:
    """A complete cache entry: where its images are and what is known about them."""

    path: Path
    shape: tuple[int, int, int, int]  # (N, C, H, W) of images.u8
    splits: dict[str, tuple[int, int]]  # split name -> [start, stop) rows
    arrays: dict[str, np.ndarray]  # side arrays, each with N rows, loaded into memory
    extra: dict[str, Any] = field(default_factory=dict)  # the builder's own fields

    @property
    def images_path(self) -> Path:
        return self.path / IMAGES_FILE

    @property
    def rows(self) -> int:
        return self.shape[0]


def open_entry(path: Path) -> Entry | None:
    """The complete entry at `path`, or None when it is missing, interrupted or damaged."""
    try:
        meta = json.loads((path / META_FILE).read_text())
        shape = tuple(int(d) for d in meta["shape"])
        if meta.get("version") != FORMAT_VERSION or len(shape) != 4 or not meta.get("complete"):
            return None
        if (path / IMAGES_FILE).stat().st_size != int(np.prod(shape)):
            logger.warning("cache %s: %s has the wrong size (truncated?)", path, IMAGES_FILE)
            return None
        arrays = {name: np.load(path / f"{name}.npy") for name in meta["arrays"]}
    except (OSError, ValueError, KeyError, TypeError) as err:  # json errors are ValueErrors
        if path.exists():
            logger.warning("cache %s is damaged or incomplete: %s", path, err)
        return None
    if any(len(a) != shape[0] for a in arrays.values()):
        logger.warning("cache %s: side arrays do not match %d rows", path, shape[0])
        return None
    splits = {name: (int(a), int(b)) for name, (a, b) in meta.get("splits", {}).items()}
    return Entry(path, shape, splits, arrays, meta.get("extra", {}))  # type: ignore[arg-type]


def touch(entry: Entry) -> None:
    """Mark an entry as just used, for the LRU eviction; best effort."""
    with contextlib.suppress(OSError):
        os.utime(entry.path)


def discard(path: Path) -> None:
    """Move an entry out of the way (atomically: no reader sees half of one), then delete it."""
    aside = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}")
    try:
        path.rename(aside)
    except FileNotFoundError:
        return  # another process removed it first
    shutil.rmtree(aside, ignore_errors=True)


class EntryBuilder:
    """Writes one entry: append image rows, then `finish` publishes it under `final`.

    Rows go to the file with ordinary buffered writes, never through a memory map, so the
    memory a build holds is the write buffer and whatever the caller batches, whatever N.
    Use as a context manager: an exception (or a kill) leaves only a temp directory, which
    the next eviction removes once it is stale.
    """

    def __init__(self, final: Path, row_shape: tuple[int, int, int]) -> None:
        final.parent.mkdir(parents=True, exist_ok=True)
        self.final = final
        self.row_shape = row_shape
        self.rows = 0
        self._tmp = Path(
            tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=TEMP_SUFFIX)
        )
        self._file = open(self._tmp / IMAGES_FILE, "wb", buffering=1 << 20)

    def __enter__(self) -> EntryBuilder:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is not None:
            self.abort()

    def append(self, rows: np.ndarray) -> None:
        """Add uint8 rows (B, C, H, W) at the end."""
        if rows.dtype != np.uint8 or rows.shape[1:] != self.row_shape:
            raise ValueError(f"rows must be uint8 (B, {self.row_shape}), got {rows.shape}")
        self._file.write(memoryview(np.ascontiguousarray(rows)).cast("B"))
        self.rows += len(rows)

    def finish(
        self,
        arrays: dict[str, np.ndarray],
        splits: dict[str, tuple[int, int]],
        extra: dict[str, Any] | None = None,
    ) -> Entry:
        """fsync everything, write meta.json (the completion mark) last, rename into place."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        for name, array in arrays.items():
            with open(self._tmp / f"{name}.npy", "wb") as f:
                np.save(f, np.ascontiguousarray(array))
                f.flush()
                os.fsync(f.fileno())
        meta = {
            "version": FORMAT_VERSION,
            "shape": [self.rows, *self.row_shape],
            "splits": {name: list(rows) for name, rows in splits.items()},
            "arrays": sorted(arrays),
            "extra": extra or {},
            "complete": True,
        }
        with open(self._tmp / META_FILE, "w") as f:
            json.dump(meta, f)
            f.flush()
            os.fsync(f.fileno())
        return self._publish()

    def _publish(self) -> Entry:
        for _ in range(2):
            try:
                self._tmp.rename(self.final)
                break
            except OSError:  # the name is taken: a concurrent builder won, or a damaged entry
                if not self.final.exists():
                    raise
                if open_entry(self.final) is not None:
                    shutil.rmtree(self._tmp, ignore_errors=True)  # theirs is as good as ours
                    break
                discard(self.final)
        else:
            raise OSError(f"could not move the new cache entry into {self.final}")
        _fsync_dir(self.final.parent)
        entry = open_entry(self.final)
        if entry is None:  # evicted by another process in between: vanishingly rare
            raise OSError(f"cache entry {self.final} vanished right after it was written")
        return entry

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        shutil.rmtree(self._tmp, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    """Make a rename durable; best effort (not every filesystem allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class RowReader:
    """Reads rows [start, stop) of an entry's images.u8 with pread; see the module docstring.

    The file stays open for the reader's lifetime, so an entry evicted (unlinked) by another
    process remains readable here. pread takes an explicit offset, so one reader is safe to
    share between threads and across fork.
    """

    def __init__(self, entry: Entry, start: int, stop: int) -> None:
        if not 0 <= start <= stop <= entry.rows:
            raise ValueError(f"rows [{start}, {stop}) outside the {entry.rows} of {entry.path}")
        self.row_shape: tuple[int, int, int] = entry.shape[1:]
        self.row_bytes = int(np.prod(self.row_shape))
        self.start, self.stop = start, stop
        self._fd = os.open(entry.images_path, os.O_RDONLY)
        self._closer = weakref.finalize(self, os.close, self._fd)

    def __len__(self) -> int:
        return self.stop - self.start

    def read_slice(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) (already clipped to the reader's range) as (B, C, H, W)."""
        out = np.empty((max(0, stop - start), *self.row_shape), dtype=np.uint8)
        self._pread(out, start)
        return out

    def read_rows(self, index: np.ndarray) -> np.ndarray:
        """Rows at `index` (1-D ints, negatives from the end) as (B, C, H, W), in that order.

        The indices are sorted so that runs of neighbouring rows become one read each, and
        the file is read front to back (kinder to disks and read-ahead than random order).
        """
        n = len(self)
        index = np.asarray(index, dtype=np.int64)
        if index.size and (index.min() < -n or index.max() >= n):
            raise IndexError(f"row index out of range for {n} rows")
        index = np.where(index < 0, index + n, index)
        order = np.argsort(index, kind="stable")
        ordered = index[order]
        staged = np.empty((len(index), *self.row_shape), dtype=np.uint8)
        breaks = np.flatnonzero(np.diff(ordered) != 1) + 1  # where a run of rows ends
        for a, b in zip(np.r_[0, breaks], np.r_[breaks, len(ordered)], strict=True):
            if b > a:
                self._pread(staged[a:b], int(ordered[a]))
        out = np.empty_like(staged)
        out[order] = staged
        return out

    def _pread(self, out: np.ndarray, row: int) -> None:
        """Fill `out` (contiguous rows) from the file, starting at `row` of this range."""
        view = memoryview(out).cast("B")
        offset = (self.start + row) * self.row_bytes
        while len(view):
            if hasattr(os, "preadv"):  # straight into the buffer, no intermediate bytes
                got = os.preadv(self._fd, [view], offset)
            else:
                chunk = os.pread(self._fd, len(view), offset)
                got = len(chunk)
                view[:got] = chunk
            if got == 0:
                raise OSError(f"cache file ended early (row {row}); delete the cache and retry")
            view, offset = view[got:], offset + got


def images_array(entry: Entry, start: int, stop: int) -> np.ndarray:
    """Rows [start, stop) as a copy-on-write memory map: nothing is read until indexed, and
    writes to it stay private to this process (the cache file is never changed)."""
    if entry.rows == 0:  # mmap refuses empty files
        return np.empty((0, *entry.shape[1:]), dtype=np.uint8)
    mapped = np.memmap(entry.images_path, dtype=np.uint8, mode="c", shape=entry.shape)
    return mapped[start:stop]


class ProgressReport:
    """Calls `callback(done, total)` at most every 1 % of `total` or 0.5 s, whichever comes
    first, always with (0, total) first and (total, total) last; draws a tqdm bar too when
    stderr is a terminal."""

    MIN_INTERVAL_S = 0.5

    def __init__(self, callback: Progress | None, total: int, desc: str) -> None:
        self.callback, self.total = callback, total
        self._step = max(1, total // 100)
        self._last_done, self._last_time = 0, time.monotonic()
        self._bar = None
        if sys.stderr is not None and sys.stderr.isatty():
            from tqdm import tqdm  # a dependency already; imported only when drawn

            self._bar = tqdm(total=total, desc=desc, unit="img", leave=False)
        self._emit(0)

    def update(self, done: int) -> None:
        now = time.monotonic()
        if done - self._last_done >= self._step or now - self._last_time >= self.MIN_INTERVAL_S:
            self._emit(done)

    def close(self) -> None:
        if self._last_done != self.total:  # not already reported by the last update
            self._emit(self.total)
        if self._bar is not None:
            self._bar.close()

    def _emit(self, done: int) -> None:
        if self._bar is not None:
            self._bar.update(done - self._last_done)
        self._last_done, self._last_time = done, time.monotonic()
        if self.callback is not None:
            self.callback(done, self.total)


def evict(
    cache_dir: Path,
    newest: Path,
    max_entries: int,
    max_bytes: int,
    stale_s: float,
    legacy_glob: str | None = None,
) -> None:
    """Delete the least recently used entries beyond `max_entries` / `max_bytes`, temp
    directories older than `stale_s` (left by killed builders) and files matching
    `legacy_glob` (an older cache format); `newest` always stays."""
    try:
        others = [
            (p, p.stat().st_mtime_ns)
            for p in cache_dir.iterdir()
            if p.is_dir() and not p.name.startswith(".") and p != newest
        ]
        stale = [
            p
            for p in cache_dir.glob(f".*{TEMP_SUFFIX}")
            if time.time() - p.stat().st_mtime > stale_s
        ]
        stale += list(cache_dir.glob(legacy_glob)) if legacy_glob else []
        kept_bytes = _tree_bytes(newest)
        sizes = {p: _tree_bytes(p) for p, _ in others}
    except OSError as err:  # another process evicting at the same time; it will finish the job
        logger.debug("cache eviction in %s skipped: %s", cache_dir, err)
        return
    others.sort(key=lambda entry: entry[1], reverse=True)  # most recent first
    kept = 1
    for path, _ in others:
        if kept < max_entries and kept_bytes + sizes[path] <= max_bytes:
            kept, kept_bytes = kept + 1, kept_bytes + sizes[path]
        else:
            stale.append(path)
    for path in stale:
        _remove(path)


def _tree_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.iterdir())


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        if path.is_dir():
            if path.name.startswith("."):
                shutil.rmtree(path)  # a temp directory: no reader opens these
            else:
                discard(path)
        else:
            path.unlink(missing_ok=True)
        logger.info("evicted cache %s", path.name)
