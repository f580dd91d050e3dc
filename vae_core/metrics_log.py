"""Reading metrics.jsonl: the incremental byte-offset reader, and MetricsLog, the bounded
per-run summary the UI shares (thinned curves, recent events, the newest KL per dimension).
The trainer writes the file (RunDir.log_metrics); everything here only reads it.

Resume contract: a trainer restarted from a checkpoint at step N appends
{"event": "resume", "step": N}; readers then drop every earlier row with step > N, the
orphans of the run that died, as TensorBoard purges orphaned data on a restart.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, BinaryIO, NamedTuple

import numpy as np

MAX_POINTS = 2000  # per curve: more than a chart panel has pixels across
MAX_EVENTS = 500  # control / failed / resume rows kept, newest last
NUM_LATEST_ROWS = 5
NUM_RECENT_TRAIN_ROWS = 64  # whole train rows kept for vae_core.health's windows
READ_BLOCK_BYTES = 8 << 20  # a long run is read in blocks, so memory stays bounded
# The metrics kept as curves, per split (a key a row lacks makes no curve): what the training
# view draws. The rest of a row (lr, grad_norm, active_units, ...) is in latest_rows and, for
# train rows, recent_train. beta_kl = kl * the beta in force; beta is the effective one.
# Few keys: each costs every row of a long run's first open a lookup and an append.
_CURVES = ("elbo", "recon", "kl", "beta_kl")
SERIES_KEYS_OF = {
    "train": (*_CURVES, "loss", "beta", "free_bits"),  # the schedule and free-bits panel
    "test": (*_CURVES, "iwae", "iwae_elbo", "iwae_gap"),  # the ELBO gap panel, nats
}
SERIES_KEYS = tuple(dict.fromkeys(k for keys in SERIES_KEYS_OF.values() for k in keys))
_KL_KEY = b'"kl_per_dim":'

Row = Mapping[str, Any]


class Series(NamedTuple):
    """One thinned curve: steps (N,) and values (N,), float64, read-only."""

    steps: np.ndarray
    values: np.ndarray


def _frozen_array(values: Sequence[float]) -> np.ndarray:
    array = np.array(values, dtype=np.float64)
    array.flags.writeable = False  # the view is shared by every session
    return array


EMPTY_SERIES = Series(_frozen_array([]), _frozen_array([]))


@dataclass(frozen=True, eq=False)
class MetricsView:
    """An immutable snapshot of one run's metrics, shared by every session: draw from it.

    series: (split, key) -> Series, at most MAX_POINTS points each, first and newest kept.
    events: control / failed / resume rows (and any other "event" row), oldest first.
    latest_kl_per_dim: (D,) from the newest train or test row; None before the first one.
    latest_rows: the last few rows read (event rows included), newest last, without kl_per_dim.
    recent_train: the last NUM_RECENT_TRAIN_ROWS train rows, unthinned, oldest first, without
        kl_per_dim: the windows vae_core.health looks at.
    newest_rows: split -> the newest row of that split (a test row's iwae_k, iwae_seconds...).
    num_rows: rows read so far (since the file was last replaced), orphans included.
    version: grows with every change: one log's views with equal versions are equal.
    """

    series: Mapping[tuple[str, str], Series] = field(default_factory=dict)
    events: tuple[Row, ...] = ()
    latest_kl_per_dim: tuple[float, ...] | None = None
    latest_rows: tuple[Row, ...] = ()
    recent_train: tuple[Row, ...] = ()
    newest_rows: Mapping[str, Row] = field(default_factory=dict)
    num_rows: int = 0
    version: int = 0

    def points(self, split: str, key: str) -> Series:
        """The curve of `key` on `split`; empty when there is none."""
        return self.series.get((split, key), EMPTY_SERIES)

    def events_of(self, kind: str) -> tuple[Row, ...]:
        """Event rows of one kind ("control", "failed", "resume")."""
        return tuple(e for e in self.events if e.get("event") == kind)

    def newest(self, split: str) -> Row | None:
        """The newest row of `split` ("train", "test"), without kl_per_dim; None before one."""
        return self.newest_rows.get(split)

    @property
    def latest_row(self) -> Row | None:
        return self.latest_rows[-1] if self.latest_rows else None

    @property
    def is_empty(self) -> bool:
        """Nothing to draw yet: no curve point and no event."""
        return not self.series and not self.events


# ---------------------------------------------------------------- parsing one line


def _is_row(row: object) -> bool:
    """A JSON object with a finite numeric step (bools are not steps)."""
    if not isinstance(row, dict):
        return False
    step = row.get("step")
    return isinstance(step, int | float) and not isinstance(step, bool) and math.isfinite(step)


def _loads_row(line: bytes) -> dict[str, Any] | None:
    try:
        row = json.loads(line)
    except (ValueError, RecursionError):  # not JSON, or bytes that are not UTF-8
        return None
    return row if _is_row(row) else None


def parse_row(line: bytes) -> dict[str, Any] | None:
    """One metrics row, or None for a line that is not a JSON object with a numeric step."""
    row = _loads_row(line)
    return row if row is not None else _recover_glued_row(line)


def _recover_glued_row(line: bytes) -> dict[str, Any] | None:
    """A torn row (trainer killed mid-write) with the resumed trainer's first row appended to
    it on the same line: that row, which may be the resume event, starts at a later '{"'."""
    start = line.find(b'{"', 1) if line.startswith(b'{"') else -1
    while start > 0:
        row = _loads_row(line[start:])
        if row is not None:
            return row
        start = line.find(b'{"', start + 1)
    return None


def line_spans(block: bytes) -> Iterator[tuple[int, int]]:
    """(start, end) of each non-empty line in a block of whole lines."""
    start = 0
    while start < len(block):
        end = block.find(b"\n", start)
        end = len(block) if end < 0 else end
        if end > start:
            yield start, end
        start = end + 1


def parse_row_lazy_kl(buf: bytes, start: int = 0, end: int | None = None) -> dict[str, Any] | None:
    """parse_row of buf[start:end], except that kl_per_dim stays the raw bytes of its list.

    Parsing D floats per row is most of the cost of opening a long run (latent 256: ~20x the
    rest of the row), and only the newest list is ever used: see _decode_floats. Bounds
    instead of a line, so a block is never split into copies of its lines.
    """
    end = len(buf) if end is None else end
    key = buf.find(_KL_KEY, start, end)
    if key >= 0:
        value_at = key + len(_KL_KEY)
        opening = buf.find(b"[", value_at, end)
        closing = buf.find(b"]", opening, end) if opening >= 0 else -1
        if closing >= 0 and not buf[value_at:opening].strip():
            row = _loads_row(buf[start:value_at] + b"null" + buf[closing + 1 : end])
            if row is not None:
                row["kl_per_dim"] = buf[opening : closing + 1]
                return row
    # No list, or an unusual one (nested, odd spacing): parse it all.
    return parse_row(buf[start:end])


def _decode_floats(value: object) -> tuple[float, ...] | None:
    """kl_per_dim as floats: from a list, or from raw JSON bytes; None if not all numbers."""
    if isinstance(value, bytes):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return None
    if not isinstance(value, list | tuple) or not value:
        return None
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        return None
    return tuple(float(v) for v in value)


def _number(value: object) -> float | None:
    """value if it is a JSON number (type(), not isinstance: bools are not numbers)."""
    return value if type(value) is float or type(value) is int else None  # type: ignore[return-value]


# ---------------------------------------------------------------- the file reader


class MetricsReader:
    """Incremental reader of metrics.jsonl: keeps a byte offset, returns only new rows.

    If the file shrank or was replaced (another inode), it starts over from byte 0 and calls
    `on_restart`, so whoever accumulated the old rows can drop them first.
    """

    def __init__(
        self,
        path: Path,
        on_restart: Callable[[], None] | None = None,
        block_bytes: int = READ_BLOCK_BYTES,
    ) -> None:
        self.path = path
        self.offset = 0
        self._on_restart = on_restart
        self._block_bytes = block_bytes
        self._file_id: tuple[int, int] | None = None

    def read_new(self) -> list[dict[str, Any]]:
        """The complete rows appended since the last read; lines that are not rows are skipped."""
        rows = (
            parse_row(block[start:end])
            for block in self.new_blocks()
            for start, end in line_spans(block)
        )
        return [row for row in rows if row is not None]

    def new_blocks(self) -> Iterator[bytes]:
        """New bytes, in blocks of whole lines. A last line without its newline is still
        being written (or was torn by a kill): it is left for the next read."""
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            if self._file_id is not None:
                self._restart()  # removed: whatever comes next is a new file
            return
        with f:
            self._check_same_file(f)
            size = self._block_bytes
            while True:
                f.seek(self.offset)
                block = f.read(size)
                end = block.rfind(b"\n") + 1
                if end == 0:
                    if len(block) < size:
                        return
                    size *= 2  # one line longer than a block: read more of it
                    continue
                self.offset += end
                yield block[:end]
                size = self._block_bytes

    def _check_same_file(self, f: BinaryIO) -> None:
        """Start over if the file shrank or was replaced since the last read."""
        stat = os.fstat(f.fileno())
        file_id = (stat.st_dev, stat.st_ino)
        replaced = self._file_id is not None and file_id != self._file_id
        self._file_id = file_id
        if replaced or stat.st_size < self.offset or not self._ends_a_line(f):
            self._restart()

    def _ends_a_line(self, f: BinaryIO) -> bool:
        """The byte before the offset is a newline: else the file was rewritten in place."""
        if self.offset == 0:
            return True
        f.seek(self.offset - 1)
        return f.read(1) == b"\n"

    def _restart(self) -> None:
        self.offset = 0
        self._file_id = None
        if self._on_restart is not None:
            self._on_restart()


# ---------------------------------------------------------------- the bounded summary


class _ThinnedSeries:
    """Points of one curve, thinned to at most `max_points`, deterministically.

    Point i (in arrival order) is kept while i is a multiple of `stride`; when the kept
    points fill up, every other one is dropped and the stride doubles. So the first point
    is always kept, the kept points stay evenly spread, and the newest is kept on the side.
    """

    def __init__(self, max_points: int) -> None:
        self._capacity = max(max_points - 1, 2)  # one slot is the newest point's
        self.steps: list[float] = []
        self.values: list[float] = []
        self._stride = 1
        self._count = 0  # points appended so far (re-based after a purge)
        self._newest: tuple[float, float] | None = None

    def append(self, step: float, value: float) -> None:
        if self._count % self._stride == 0:
            self.steps.append(step)
            self.values.append(value)
            if len(self.steps) >= self._capacity:
                self.steps, self.values = self.steps[::2], self.values[::2]
                self._stride *= 2
        self._count += 1
        self._newest = (step, value)

    def drop(self, dropped: Callable[[float], bool]) -> None:
        """Remove the points whose step `dropped` says."""
        kept = [i for i, step in enumerate(self.steps) if not dropped(step)]
        self.steps = [self.steps[i] for i in kept]
        self.values = [self.values[i] for i in kept]
        if self._newest is not None and dropped(self._newest[0]):
            self._newest = (self.steps[-1], self.values[-1]) if self.steps else None
        # The next point continues the kept ones' spacing.
        self._count = (len(self.steps) - 1) * self._stride + 1 if self.steps else 0

    def series(self) -> Series:
        steps, values = self.steps, self.values
        if self._newest is not None and (not steps or steps[-1] != self._newest[0]):
            steps, values = [*steps, self._newest[0]], [*values, self._newest[1]]
        return Series(_frozen_array(steps), _frozen_array(values))


class MetricsHistory:
    """A run's rows folded, in file order, into bounded memory: thinned curves per
    (split, key), the last MAX_EVENTS event rows, the latest few rows and the newest KL per
    dimension. Applies the resume purge, so curves never double back."""

    def __init__(self, max_points: int = MAX_POINTS, max_events: int = MAX_EVENTS) -> None:
        self._max_points = max_points
        self._max_events = max_events
        self._version = 0
        self.reset()

    def reset(self) -> None:
        """Forget every row (the file was replaced)."""
        self._series: dict[tuple[str, str], _ThinnedSeries] = {}
        self._events: deque[Row] = deque(maxlen=self._max_events)
        self._latest_rows: deque[Row] = deque(maxlen=NUM_LATEST_ROWS)
        self._recent_train: deque[Row] = deque(maxlen=NUM_RECENT_TRAIN_ROWS)
        self._newest: dict[str, Row] = {}
        self._latest_kl: tuple[str, float, object] | None = None  # (split, step, raw list)
        self._last_train_step: float | None = None
        self._beta = 1.0  # the beta in force: test rows carry none
        self._num_rows = 0
        self._changed()

    def add(self, row: dict[str, Any]) -> None:
        """Fold in one row (a dict with a numeric step; this takes ownership of it)."""
        self._num_rows += 1
        self._changed()
        kl_per_dim = row.pop("kl_per_dim", None)
        step, split, event = row["step"], row.get("split"), row.get("event")
        if event == "resume":
            self._purge(lambda s: s > step)
            if self._last_train_step is not None:
                self._last_train_step = min(self._last_train_step, step)
        elif split == "train" and step <= (self._last_train_step or -math.inf):
            # No resume event, yet the steps went back: the same purge, this split only.
            self._purge(lambda s: s >= step, split="train")
        beta = _number(row.get("beta"))
        if beta is not None:  # train, control and resume rows say which beta is in force
            self._beta = beta
        frozen_row = MappingProxyType(row)
        if event is not None:
            self._events.append(frozen_row)
        elif isinstance(split, str):
            self._add_points(split, row)
            self._newest[split] = frozen_row
            if kl_per_dim is not None:
                self._latest_kl = (split, step, kl_per_dim)
            if split == "train":
                self._last_train_step = step
                self._recent_train.append(frozen_row)
        self._latest_rows.append(frozen_row)

    def _add_points(self, split: str, row: dict[str, Any]) -> None:
        step = row["step"]
        values = {key: _number(row.get(key)) for key in SERIES_KEYS_OF.get(split, _CURVES)}
        if values["kl"] is not None:
            values["beta_kl"] = values["kl"] * self._beta
        for key, value in values.items():
            if value is not None:
                series = self._series.get((split, key))
                if series is None:
                    series = self._series[(split, key)] = _ThinnedSeries(self._max_points)
                series.append(step, value)

    def _purge(self, dropped: Callable[[float], bool], split: str | None = None) -> None:
        """Drop the rows whose step `dropped` says: of one split, or (None) everywhere."""
        for (series_split, _), series in self._series.items():
            if split is None or series_split == split:
                series.drop(dropped)
        if split is None:
            self._events = deque(
                (e for e in self._events if not dropped(e["step"])), maxlen=self._max_events
            )
        self._latest_rows = deque(
            (
                r
                for r in self._latest_rows
                if not (dropped(r["step"]) and (split is None or r.get("split") == split))
            ),
            maxlen=NUM_LATEST_ROWS,
        )
        self._newest = {
            s: r
            for s, r in self._newest.items()
            if not (dropped(r["step"]) and (split is None or s == split))
        }
        if split in (None, "train"):
            self._recent_train = deque(
                (r for r in self._recent_train if not dropped(r["step"])),
                maxlen=NUM_RECENT_TRAIN_ROWS,
            )
        if self._latest_kl is not None:
            kl_split, kl_step, _ = self._latest_kl
            if dropped(kl_step) and (split is None or kl_split == split):
                self._latest_kl = None

    def _changed(self) -> None:
        self._version += 1
        self._view: MetricsView | None = None

    def view(self) -> MetricsView:
        """The current snapshot; the same object until the next change."""
        if self._view is None:
            self._view = MetricsView(
                series=MappingProxyType({k: s.series() for k, s in self._series.items()}),
                events=tuple(self._events),
                latest_kl_per_dim=self._decoded_kl(),
                latest_rows=tuple(self._latest_rows),
                recent_train=tuple(self._recent_train),
                newest_rows=MappingProxyType(dict(self._newest)),
                num_rows=self._num_rows,
                version=self._version,
            )
        return self._view

    def _decoded_kl(self) -> tuple[float, ...] | None:
        if self._latest_kl is None:
            return None
        decoded = _decode_floats(self._latest_kl[2])
        self._latest_kl = (*self._latest_kl[:2], decoded)  # decode once
        return decoded


def summarize(rows: Iterable[Mapping[str, Any]], max_points: int = MAX_POINTS) -> MetricsView:
    """The MetricsView of rows already in memory (e.g. RunDir.read_metrics()); rows that are
    not objects with a numeric step are skipped."""
    history = MetricsHistory(max_points)
    for row in rows:
        if _is_row(row):
            history.add(dict(row))
    return history.view()


class MetricsLog:
    """One run's metrics.jsonl, read incrementally (only new bytes) into a MetricsHistory.

    One instance per run is shared by every session (see explorer.cache), so a lock keeps
    two sessions from reading the same new bytes twice.
    """

    def __init__(self, path: Path, max_points: int = MAX_POINTS) -> None:
        self._history = MetricsHistory(max_points)
        self._reader = MetricsReader(path, on_restart=self._history.reset)
        self._lock = threading.Lock()

    def refresh(self) -> MetricsView:
        """Read what was appended since the last call; the snapshot of every row so far."""
        with self._lock:
            for block in self._reader.new_blocks():
                for start, end in line_spans(block):
                    row = parse_row_lazy_kl(block, start, end)
                    if row is not None:
                        self._history.add(row)
            return self._history.view()
