"""The live charts send only what is new: nothing on a tick without new metrics rows, the
new rows alone when rows were appended, a whole figure when its layout changed or the
browser asks for it."""

from __future__ import annotations

import base64
import importlib.util
import json

import numpy as np
import pytest

from explorer import charts
from explorer.components import live_charts
from vae_core.metrics_log import MetricsHistory


def _row(step: int) -> dict:
    recon, kl = 300.0 - step / 10, 5.0 + step / 100
    return {
        "step": step,
        "epoch": 0,
        "split": "train",
        "elbo": -(recon + kl),
        "recon": recon,
        "kl": kl,
        "kl_per_dim": [kl / 2, kl / 2],
        "beta": 1.0,
        "free_bits": 0.0,
        "loss": recon + kl,
    }


def _history(steps: range) -> MetricsHistory:
    history = MetricsHistory()
    for step in steps:
        history.add(_row(step))
    return history


def _slots(history: MetricsHistory) -> dict[str, live_charts.Slot]:
    view = history.view()
    kl = view.latest_kl_per_dim
    return {
        "curves": live_charts.Figure(charts.curves_spec(view)),
        "schedule": live_charts.Figure(charts.schedule_spec(view)),
        "kl": live_charts.Figure(charts.kl_bar_spec(kl, [True, True])),
        "gap_line": live_charts.Text("no evaluation yet"),
    }


def _decode(typed: dict) -> np.ndarray:
    dtype = {"i4": np.int32, "f4": np.float32, "f8": np.float64}[typed["dtype"]]
    return np.frombuffer(base64.b64decode(typed["bdata"]), dtype=dtype)


def test_the_first_tick_sends_every_figure_whole() -> None:
    memo: dict = {}
    update = live_charts.next_update(memo, 0, _slots(_history(range(10, 110, 10))), 1000)
    assert update["base"] is None and update["seq"] == 1
    assert set(update["ops"]) == {"curves", "schedule", "kl", "gap_line"}
    curves = json.loads(update["ops"]["curves"]["figure"])
    assert _decode(curves["data"][0]["x"]).tolist() == list(range(10, 110, 10))


def test_a_tick_without_new_rows_sends_no_figure() -> None:
    history = _history(range(10, 110, 10))
    memo: dict = {}
    first = live_charts.next_update(memo, 0, _slots(history), 1000)
    # The slots built again from the same rows: equal, so nothing to apply...
    again = live_charts.next_update(memo, first["seq"], _slots(history), 1000)
    assert again == {"seq": first["seq"], "base": first["seq"], "ops": {}, "interval_ms": 1000}
    # ...and the very same slots are skipped without a comparison.
    slots = memo["sent"]
    assert live_charts.next_update(memo, first["seq"], slots, 1000)["ops"] == {}


def test_a_tick_with_new_rows_sends_only_those_rows() -> None:
    history = _history(range(10, 110, 10))
    memo: dict = {}
    first = live_charts.next_update(memo, 0, _slots(history), 1000)
    for step in (110, 120, 130):
        history.add(_row(step))
    update = live_charts.next_update(memo, first["seq"], _slots(history), 1000)
    assert update["base"] == first["seq"] and update["seq"] == first["seq"] + 1
    assert "figure" not in json.dumps(update["ops"])
    assert "gap_line" not in update["ops"]  # unchanged text is not sent either
    rows = update["ops"]["curves"]["traces"]
    # Only the train traces (0, 2, 4, 6: elbo, recon, kl, beta*kl) grew; test ones are empty.
    assert [r[0] for r in rows] == [0, 2, 4, 6]
    for _, kept, x, y in rows:
        assert kept == 10 and x == [110, 120, 130] and len(y) == 3
    elbo = rows[0][3]
    assert elbo == [_row(s)["elbo"] for s in (110, 120, 130)]
    # The schedule's flat beta and free bits are two points each: the last one moves.
    assert [r[:3] for r in update["ops"]["schedule"]["traces"]] == [[0, 1, [130]], [1, 1, [130]]]


def test_a_changed_layout_sends_that_figure_whole() -> None:
    history = _history(range(10, 110, 10))
    memo: dict = {}
    first = live_charts.next_update(memo, 0, _slots(history), 1000)
    history.add({"step": 100, "epoch": 0, "event": "control", "beta": 2.0, "lr": 1e-3})
    update = live_charts.next_update(memo, first["seq"], _slots(history), 1000)
    assert "figure" in update["ops"]["curves"]  # a new dashed line: its shapes changed
    assert "curves" in update["ops"] and "kl" not in update["ops"]


@pytest.mark.parametrize("have", [0, 1, 7], ids=["a new iframe", "an update lost", "unknown"])
def test_a_browser_that_does_not_hold_the_last_update_gets_everything_again(have) -> None:
    history = _history(range(10, 110, 10))
    memo: dict = {}
    live_charts.next_update(memo, 0, _slots(history), 1000)
    history.add(_row(110))
    live_charts.next_update(memo, 1, _slots(history), 1000)  # seq 2: never arrived
    update = live_charts.next_update(memo, have, _slots(history), 1000)
    assert update["base"] is None and update["seq"] == 3
    assert all("figure" in update["ops"][n] for n in ("curves", "schedule", "kl"))


def test_a_cut_trace_keeps_its_shared_head() -> None:
    old = {"data": [{"x": np.arange(5), "y": np.arange(5.0)}], "layout": {}}
    new = {"data": [{"x": np.array([0, 1, 2, 8]), "y": np.array([0.0, 1, 2, np.nan])}]}
    assert live_charts.trace_rows(old, {**new, "layout": {}}) == [[0, 3, [8], [None]]]


def test_a_slot_that_goes_away_is_cleared_and_the_interval_is_sent() -> None:
    history = _history(range(10, 110, 10))
    memo: dict = {}
    first = live_charts.next_update(memo, 0, _slots(history), 1000)
    slots = _slots(history)
    del slots["kl"]
    update = live_charts.next_update(memo, first["seq"], slots, 0)
    assert update["ops"] == {"kl": {"clear": True}} and update["interval_ms"] == 0


def test_the_charts_need_no_plotly_js(monkeypatch, tmp_path) -> None:
    """uPlot draws every figure of the Training view: without plotly.js (no copy beside the
    frontend, none to be had from the plotly package) the component is still served."""
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(live_charts, "PLOTLY_JS", tmp_path / "absent" / "plotly.min.js")
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "plotly" else real_find_spec(name)
    )
    assert live_charts.is_available()
    assert not (tmp_path / "absent").exists()
