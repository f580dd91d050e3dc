"""vae_core.metrics_log: the incremental reader, the resume purge and the bounded summary."""

from __future__ import annotations

import json
import os
import tracemalloc
from pathlib import Path

import pytest

from vae_core.metrics_log import (
    MAX_EVENTS,
    NUM_LATEST_ROWS,
    NUM_RECENT_TRAIN_ROWS,
    MetricsHistory,
    MetricsLog,
    MetricsReader,
    parse_row,
    parse_row_lazy_kl,
    summarize,
)


def _append(path: Path, *rows: dict | bytes) -> None:
    with open(path, "ab") as f:
        for row in rows:
            f.write(row if isinstance(row, bytes) else json.dumps(row).encode() + b"\n")


def _train(step: int, **fields: float) -> dict:
    return {"step": step, "split": "train", "elbo": -float(step), "kl": 1.0, **fields}


def test_reader_sees_only_new_rows_and_leaves_a_torn_last_line_for_later(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    reader = MetricsReader(path)
    assert reader.read_new() == []  # no file yet
    _append(path, _train(1), b'{"step": 2, "split": "tr')
    assert [r["step"] for r in reader.read_new()] == [1]
    _append(path, b'ain"}\n')
    assert reader.read_new() == [{"step": 2, "split": "train"}]
    assert reader.read_new() == []
    assert reader.offset == path.stat().st_size


def test_lines_that_are_not_objects_with_a_numeric_step_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    junk = [b"[1, 2]", b"3", b'"x"', b"null", b"{}", b'{"step": "5"}', b'{"step": true}']
    junk += [b'{"step": NaN}', b"[" * 100_000, b"not json"]
    _append(path, *(line + b"\n" for line in junk), _train(7))
    assert [r["step"] for r in MetricsReader(path).read_new()] == [7]


def test_non_utf8_bytes_are_skipped_without_raising(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    _append(path, b'\xff\xfe{"step": 1}\n', b'{"step": 2, "split": "\xc3("}\n', _train(3))
    assert [r["step"] for r in MetricsReader(path).read_new()] == [3]
    assert MetricsLog(path).refresh().points("train", "elbo").steps.tolist() == [3]


def test_rows_spanning_read_blocks_and_lines_longer_than_a_block_are_read_whole(
    tmp_path: Path,
) -> None:
    path = tmp_path / "metrics.jsonl"
    rows = [_train(s, note="x" * (s * 7 % 50)) for s in range(40)]
    rows.append(_train(40, kl_per_dim=[0.5] * 100))  # ~1 KB, far over the 64-byte block
    _append(path, *rows)
    assert MetricsReader(path, block_bytes=64).read_new() == rows


def test_a_row_glued_to_a_torn_one_after_a_kill_is_recovered() -> None:
    torn_then_resume = b'{"step": 41, "split": "train", "el{"event": "resume", "step": 40}'
    assert parse_row(torn_then_resume) == {"event": "resume", "step": 40}


def test_lazy_kl_parse_keeps_the_raw_list_and_falls_back_on_unusual_spacing() -> None:
    row = parse_row_lazy_kl(json.dumps(_train(5, kl_per_dim=[0.1, 2.0], beta=1.0)).encode())
    assert row["kl_per_dim"] == b"[0.1, 2.0]" and row["beta"] == 1.0 and row["step"] == 5
    compact = json.dumps({"step": 5, "kl_per_dim": [[1], 2]}, separators=(",", ":")).encode()
    assert parse_row_lazy_kl(compact) == {"step": 5, "kl_per_dim": [[1], 2]}


def test_a_resume_event_drops_every_earlier_row_past_its_step(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    log = MetricsLog(path)
    _append(path, _train(10, kl_per_dim=[1.0]), _train(20), _train(30, kl_per_dim=[3.0]))
    _append(path, {"step": 30, "split": "test", "elbo": -1.0})
    _append(path, {"step": 25, "event": "control", "beta": 2.0}, {"step": 30, "event": "failed"})
    assert log.refresh().latest_kl_per_dim == (3.0,)
    _append(path, {"step": 20, "event": "resume"}, _train(40))
    view = log.refresh()
    assert view.points("train", "elbo").steps.tolist() == [10, 20, 40]
    assert view.points("test", "elbo").steps.size == 0
    assert [(e["event"], e["step"]) for e in view.events] == [("resume", 20)]
    assert view.latest_kl_per_dim is None  # its row was an orphan
    assert [r["step"] for r in view.latest_rows] == [20, 20, 40]


def test_train_steps_going_back_without_a_resume_purge_that_split_only() -> None:
    test_row = {"step": 30, "split": "test", "elbo": -5.0}
    view = summarize([_train(10), _train(20), _train(30), test_row, _train(20), _train(40)])
    assert view.points("train", "elbo").steps.tolist() == [10, 20, 40]
    assert view.points("train", "elbo").values.tolist() == [-10.0, -20.0, -40.0]
    assert view.points("test", "elbo").steps.tolist() == [30]


def test_beta_kl_weighs_kl_by_the_beta_in_force_and_test_rows_use_the_last_one() -> None:
    rows = [
        _train(10, beta=0.0),
        _train(20, beta=2.0),
        {"step": 25, "event": "control", "beta": 3.0},
    ]
    rows.append({"step": 30, "split": "test", "kl": 4.0})
    view = summarize(rows)
    assert view.points("train", "beta_kl").values.tolist() == [0.0, 2.0]
    assert view.points("test", "beta_kl").values.tolist() == [12.0]


def test_long_series_are_thinned_evenly_keeping_the_first_and_newest_points() -> None:
    history = MetricsHistory(max_points=2000)
    for step in range(100_000):
        history.add(_train(step))
    steps = history.view().points("train", "elbo").steps
    assert 1000 <= steps.size <= 2000
    assert steps[0] == 0 and steps[-1] == 99_999
    gaps = set((steps[1:-1] - steps[:-2]).tolist())
    assert len(gaps) == 1  # evenly spaced, apart from the newest point


def test_thinning_is_deterministic() -> None:
    def thinned() -> list[float]:
        history = MetricsHistory(max_points=100)
        for step in range(5000):
            history.add(_train(step))
        return history.view().points("train", "elbo").steps.tolist()

    assert thinned() == thinned()


def test_thinned_series_are_purged_too_and_keep_their_spacing() -> None:
    history = MetricsHistory(max_points=100)
    for step in range(1000):
        history.add(_train(step))
    history.add({"step": 500, "event": "resume"})
    for step in range(501, 1000):
        history.add(_train(step))
    steps = history.view().points("train", "elbo").steps
    assert steps.size <= 100 and steps[-1] == 999
    assert (steps[1:] > steps[:-1]).all()  # never doubles back


def test_memory_stays_bounded_however_many_rows_are_read() -> None:
    history = MetricsHistory()
    kl = [0.25] * 256

    def feed(start: int, stop: int) -> None:
        for step in range(start, stop):
            history.add(_train(step, kl_per_dim=list(kl), beta=1.0, lr=1e-3))
            if step % 10 == 0:
                history.add({"step": step, "event": "control", "beta": 1.0})

    feed(0, 6000)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    feed(6000, 16_000)  # 10,000 more rows, ~20 MB of them as Python objects
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert grown < 500_000
    view = history.view()
    assert view.num_rows == 17_600
    assert len(view.events) == MAX_EVENTS and len(view.latest_rows) == NUM_LATEST_ROWS
    assert all(s.steps.size <= 2000 for s in view.series.values())
    assert view.latest_kl_per_dim == tuple(kl)


def test_latest_kl_per_dim_comes_from_the_newest_train_or_test_row(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    log = MetricsLog(path)
    assert log.refresh().latest_kl_per_dim is None
    _append(path, _train(1, kl_per_dim=[1.0, 0.0, 0.5]))
    assert log.refresh().latest_kl_per_dim == (1.0, 0.0, 0.5)
    _append(path, {"step": 2, "split": "test", "kl_per_dim": [2.0, 0.0, 0.1]})
    _append(path, {"step": 2, "event": "control", "kl_per_dim": [9.0]}, _train(3))
    view = log.refresh()
    assert view.latest_kl_per_dim == (2.0, 0.0, 0.1)
    assert all("kl_per_dim" not in row for row in view.latest_rows)


def test_a_refresh_with_nothing_new_returns_the_same_view(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    log = MetricsLog(path)
    _append(path, _train(1))
    view = log.refresh()
    assert log.refresh() is view and not view.is_empty and view.latest_row["step"] == 1
    with pytest.raises(ValueError, match="read-only"):
        view.points("train", "elbo").values[0] = 0.0


@pytest.mark.parametrize("how", ["replaced", "truncated", "rewritten in place"])
def test_a_replaced_or_shrunk_file_is_read_again_from_the_start(tmp_path: Path, how: str) -> None:
    path = tmp_path / "metrics.jsonl"
    log = MetricsLog(path)
    _append(path, _train(10), _train(20), _train(30), {"step": 30, "event": "failed"})
    assert log.refresh().points("train", "elbo").steps.tolist() == [10, 20, 30]
    if how == "replaced":
        new = tmp_path / "new.jsonl"
        _append(new, *(_train(s) for s in (5, 6, 7, 8, 9)))
        os.replace(new, path)
    elif how == "truncated":
        path.write_bytes(b"")
        _append(path, _train(5))
    else:  # same inode, same size or larger, but the old offset now falls mid-line
        size = path.stat().st_size
        path.write_bytes(json.dumps(_train(5, note="y" * size)).encode() + b"\n")
    view = log.refresh()
    assert view.points("train", "elbo").steps.tolist()[0] == 5
    assert 30 not in view.points("train", "elbo").steps.tolist() and view.events == ()


def test_metrics_log_reads_only_new_bytes(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    log = MetricsLog(path)
    _append(path, _train(1))
    assert log.refresh().num_rows == 1
    _append(path, {"step": 2, "split": "test", "elbo": -2.0})
    view = log.refresh()
    assert view.num_rows == 2 and [r["step"] for r in view.latest_rows] == [1, 2]
    assert log._reader.offset == path.stat().st_size


def test_recent_train_rows_are_whole_bounded_and_purged_on_resume() -> None:
    rows = [_train(s, kl_per_dim=[1.0], grad_norm=2.0, loss=3.0) for s in range(1, 101)]
    rows += [{"step": 100, "split": "test", "elbo": -1.0, "iwae": -0.5, "iwae_gap": 0.5}]
    view = summarize(rows)
    assert [r["step"] for r in view.recent_train] == list(range(101 - NUM_RECENT_TRAIN_ROWS, 101))
    assert view.recent_train[-1]["grad_norm"] == 2.0
    assert all("kl_per_dim" not in r for r in view.recent_train)
    assert view.points("train", "loss").values.tolist() == [3.0] * 100
    assert view.points("train", "grad_norm").steps.size == 0  # in rows, not kept as a curve
    assert view.points("test", "iwae_gap").values.tolist() == [0.5]
    resumed = summarize([*rows, {"step": 90, "event": "resume"}, _train(91)])
    assert [r["step"] for r in resumed.recent_train][-3:] == [89, 90, 91]
