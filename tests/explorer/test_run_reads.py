"""One reading of a run per rerun: the Training view reads status.json, config.json and the
snapshot header once each (issue 17), so a phase and a readout never come from two versions
of the same file."""

from __future__ import annotations

import json
import traceback
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from explorer import runs, state
from vae_core.rundir import RunDir


@pytest.fixture
def live_run(empty_runs_root: Path) -> Iterator[RunDir]:
    """A live-looking run (its lock held by this test) with a few rows of metrics."""
    run = RunDir(empty_runs_root / "live")
    choices = runs.RunChoices(dataset="shapes", latent_dim=4, image_size=28, num_samples=256)
    run.write_config(*runs.configs_from_choices(choices))
    rows = [
        {
            "step": 10 * i,
            "epoch": 0,
            "split": "train",
            "elbo": -300.0 + i,
            "recon": 290.0,
            "kl": 10.0 - i,
            "kl_per_dim": [2.0, 2.0, 2.0, 4.0 - i],
            "beta": 1.0,
            "lr": 1e-3,
        }
        for i in range(1, 4)
    ]
    run.metrics_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with run.acquire_lock():
        run.write_status("running", step=30, epoch=0, beta=1.0, lr=1e-3)
        yield run


def _reader(stack: list[traceback.FrameSummary]) -> str:
    """Which part of the page opened the file: the Training view, the sidebar, or other."""
    files = [frame.filename for frame in stack]
    for part in ("explorer/views/training.py", "explorer/views/sidebar.py"):
        if any(f.endswith(part) for f in files):
            return Path(part).stem
    return "other"


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch, live_run: RunDir) -> Counter:
    """(reader, file) -> how many times the open run's files were opened: the JSON files and
    the snapshot's header (reads of other runs, e.g. the New run form's speed estimate, are
    not this run's ticks)."""
    counted: Counter = Counter()
    read_json, read_header = RunDir._read_json_object, RunDir.snapshot_metadata

    def json_counted(self: RunDir, path: Path):
        if self.path == live_run.path:
            counted[_reader(traceback.extract_stack()), path.name] += 1
        return read_json(self, path)

    def header_counted(self: RunDir):
        if self.path == live_run.path:
            counted[_reader(traceback.extract_stack()), "snapshot header"] += 1
        return read_header(self)

    monkeypatch.setattr(RunDir, "_read_json_object", json_counted)
    monkeypatch.setattr(RunDir, "snapshot_metadata", header_counted)
    return counted


def test_one_training_rerun_reads_each_run_file_once(app_path, live_run, reads) -> None:
    at = AppTest.from_file(app_path, default_timeout=60)
    at.query_params[state.RUN_PARAM] = live_run.path.name
    at.session_state[state.APP_VIEW] = "Training"
    at.run()
    assert not at.exception
    reads.clear()
    at.run()  # one rerun, as a widget change makes it
    assert not at.exception
    by_reader = {reader: {} for reader, _ in reads}
    for (reader, name), count in reads.items():
        by_reader[reader][name] = count
    # Before issue 17 the view read status.json 4 times, config.json once and the header 4
    # times; now once each, the fragment's first run included.
    assert by_reader["training"] == {"status.json": 1, "config.json": 1, "snapshot header": 1}
    # The sidebar: the run list's label and tooltip (runs.picker_label, runs.describe), the
    # live test, and the controls' fragment (whose live inputs take its status); it was 6.
    assert by_reader["sidebar"]["status.json"] == 4
