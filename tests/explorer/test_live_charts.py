"""The live charts send only what is new: nothing on a tick without new metrics rows, the
new rows alone when rows were appended, a whole figure when its layout changed or the
browser asks for it."""

from __future__ import annotations

import base64
import importlib.util
import json

import numpy as np

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
    args = live_charts.next_args(memo, None, _slots(_history(range(10, 110, 10))), 1000)
    assert args["base"] is None and args["seq"] == 1
    assert set(args["ops"]) == {"curves", "schedule", "kl", "gap_line"}
    curves = json.loads(args["ops"]["curves"]["figure"])
    assert _decode(curves["data"][0]["x"]).tolist() == list(range(10, 110, 10))


def test_a_tick_without_new_rows_sends_no_figure() -> None:
    history = _history(range(10, 110, 10))
    memo: dict = {}
    first = live_charts.next_args(memo, None, _slots(history), 1000)
    value = {"tick": 1, "have": first["seq"], "reset": None}
    # The slots built again from the same rows: equal, so no update at all...
    again = live_charts.next_args(memo, value, _slots(history), 1000)
    # ...and the caller that knows nothing changed skips the comparison.
    unchanged = live_charts.next_args(memo, value, None, 1000)
    # The very same arguments: Streamlit sends the iframe no render message.
    assert again is first and unchanged is first


def test_a_tick_with_new_rows_sends_only_those_rows() -> None:
    history = _history(range(10, 110, 10))
    memo: dict = {}
    first = live_charts.next_args(memo, None, _slots(history), 1000)
    for step in (110, 120, 130):
        history.add(_row(step))
    args = live_charts.next_args(memo, {"have": first["seq"]}, _slots(history), 1000)
    assert args["base"] == first["seq"] and args["seq"] == first["seq"] + 1
    assert "figure" not in json.dumps(args["ops"])
    assert "gap_line" not in args["ops"]  # unchanged text is not sent either
    rows = args["ops"]["curves"]["traces"]
    # Only the train traces (0, 2, 4, 6: elbo, recon, kl, beta*kl) grew; test ones are empty.
    assert [r[0] for r in rows] == [0, 2, 4, 6]
    for _, kept, x, y in rows:
        assert kept == 10 and x == [110, 120, 130] and len(y) == 3
    elbo = rows[0][3]
    assert elbo == [_row(s)["elbo"] for s in (110, 120, 130)]
    # The schedule's flat beta and free bits are two points each: the last one moves.
    assert [r[:3] for r in args["ops"]["schedule"]["traces"]] == [[0, 1, [130]], [1, 1, [130]]]


def test_a_changed_layout_sends_that_figure_whole() -> None:
    history = _history(range(10, 110, 10))
    memo: dict = {}
    first = live_charts.next_args(memo, None, _slots(history), 1000)
    history.add({"step": 100, "epoch": 0, "event": "control", "beta": 2.0, "lr": 1e-3})
    args = live_charts.next_args(memo, {"have": first["seq"]}, _slots(history), 1000)
    assert "figure" in args["ops"]["curves"]  # a new dashed line: its shapes changed
    assert "curves" in args["ops"] and "kl" not in args["ops"]


def test_a_browser_that_missed_an_update_gets_everything_again() -> None:
    history = _history(range(10, 110, 10))
    memo: dict = {}
    live_charts.next_args(memo, None, _slots(history), 1000)
    args = live_charts.next_args(memo, {"have": 0, "reset": 1}, None, 1000)
    assert args["base"] is None
    assert all("figure" in args["ops"][n] for n in ("curves", "schedule", "kl"))
    # The same reset number again is served once only.
    assert live_charts.next_args(memo, {"have": args["seq"], "reset": 1}, None, 1000) is args


def test_a_cut_trace_keeps_its_shared_head() -> None:
    old = {"data": [{"x": np.arange(5), "y": np.arange(5.0)}], "layout": {}}
    new = {"data": [{"x": np.array([0, 1, 2, 8]), "y": np.array([0.0, 1, 2, np.nan])}]}
    assert live_charts.trace_rows(old, {**new, "layout": {}}) == [[0, 3, [8], [None]]]


def test_a_slot_that_goes_away_is_cleared_and_the_interval_is_sent() -> None:
    history = _history(range(10, 110, 10))
    memo: dict = {}
    first = live_charts.next_args(memo, None, _slots(history), 1000)
    slots = _slots(history)
    del slots["kl"]
    args = live_charts.next_args(memo, {"have": first["seq"]}, slots, 0)
    assert args["ops"] == {"kl": {"clear": True}} and args["interval_ms"] == 0


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
