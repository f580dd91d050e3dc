"""Live charts that stay in the browser and receive only what is new.

Rebuilding and re-sending whole Plotly figures every second cost a watching tab half a core
in the browser. Here the figures (Plotly specs) live in one iframe (`live_charts/`): line
and bar figures, all the Training view shows, are drawn with uPlot (committed beside it);
any other figure with plotly.js (from the plotly package, copied beside it on first use,
loaded only when such a figure comes). Each tick sends, per chart, nothing when it did not
change, the rows appended to its traces when only they changed, or the whole figure when
its layout did. The iframe also drives the ticks: one every `interval_ms` while the
page is visible, none while it is hidden, and one at once when it is shown again.

Protocol: each non-empty update has a sequence number `seq` and the `base` it applies to
(None for a whole resend). A browser whose own `seq` is not `base` (it missed an update, or
its iframe was remounted) asks for a whole resend with a new `reset` number.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import math
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st
import streamlit.components.v1 as components

FRONTEND_DIR = Path(__file__).with_name("live_charts")
_FRONTEND_FILES = ("index.html", "main.mjs", "style.css", "uplot/uPlot.iife.min.js")
PLOTLY_JS = FRONTEND_DIR / "vendor" / "plotly.min.js"  # copied, not committed (~5 MB)
_TYPED = {"int32": "i4", "float32": "f4", "float64": "f8", "int64": "f8"}  # JS has no int64
Spec = Mapping[str, Any]  # a Plotly figure as a dict: {"data": [trace dicts], "layout": {...}}


@dataclass(frozen=True)
class Figure:
    spec: Spec


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Image:
    png: bytes
    caption: str


@dataclass(frozen=True)
class Readouts:
    items: tuple[tuple[str, str], ...]  # (label, value), shown side by side


Slot = Figure | Text | Image | Readouts  # what one place of the panel shows


# ---------------------------------------------------------------- pure: what to send


def _frame(spec: Spec) -> tuple[Any, list[dict[str, Any]]]:
    """What must stay equal for new rows to be appended: the layout and each trace
    without its x and y."""
    return spec["layout"], [
        {k: v for k, v in t.items() if k not in ("x", "y")} for t in spec["data"]
    ]


def _kept(old_x: Any, old_y: Any, new_x: Any, new_y: Any) -> int:
    """How many leading points the old and new trace share (equal x and y; NaN == NaN)."""
    old_x, old_y, new_x, new_y = (np.asarray(a) for a in (old_x, old_y, new_x, new_y))
    n = min(len(old_x), len(new_x))
    same_y = (old_y[:n] == new_y[:n]) | (np.isnan(old_y[:n]) & np.isnan(new_y[:n]))
    same = (old_x[:n] == new_x[:n]) & same_y
    return n if bool(same.all()) else int(np.argmin(same))


def _plain(values: Any) -> list[Any]:
    """JSON-ready values: 7 significant digits (float32 is all a chart holds), None for a
    value that is not finite (a gap in the line; JSON has no NaN)."""
    out = []
    for v in np.asarray(values).tolist():
        if isinstance(v, float):
            v = float(f"{v:.7g}") if math.isfinite(v) else None
        out.append(v)
    return out


def trace_rows(old: Spec, new: Spec) -> list[list[Any]]:
    """[[trace index, points kept, new x, new y], ...] for the traces that changed: the
    browser cuts each to its kept points and appends the new ones."""
    rows = []
    for i, (a, b) in enumerate(zip(old["data"], new["data"], strict=True)):
        kept = _kept(a["x"], a["y"], b["x"], b["y"])
        if kept < len(b["x"]) or kept < len(a["x"]):
            rows.append([i, kept, _plain(b["x"][kept:]), _plain(b["y"][kept:])])
    return rows


def _typed(value: Any) -> Any:
    """json.dumps default: numeric arrays as Plotly's base64 typed-array specs (a third of
    the bytes of decimal text), other arrays as lists."""
    if isinstance(value, np.ndarray):
        dtype = _TYPED.get(value.dtype.name)
        if dtype is None:
            return value.tolist()
        data = value.astype({"i4": np.int32, "f4": np.float32, "f8": np.float64}[dtype])
        return {"dtype": dtype, "bdata": base64.b64encode(data.tobytes()).decode("ascii")}
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def figure_json(spec: Spec) -> str:
    return json.dumps(spec, default=_typed, allow_nan=False)


def slot_update(old: Slot | None, new: Slot | None) -> dict[str, Any] | None:
    """What the browser needs to go from showing `old` to `new`; None when nothing changed."""
    if new is old:  # the very same slot: the caller rebuilt nothing
        return None
    if new is None:
        return {"clear": True}
    if isinstance(new, Figure):
        if isinstance(old, Figure) and _frame(old.spec) == _frame(new.spec):
            rows = trace_rows(old.spec, new.spec)
            return {"traces": rows} if rows else None
        return {"figure": figure_json(new.spec)}
    if new == old:
        return None
    if isinstance(new, Text):
        return {"text": new.text}
    if isinstance(new, Readouts):
        return {"readouts": [list(item) for item in new.items]}
    src = "data:image/png;base64," + base64.b64encode(new.png).decode("ascii")
    return {"image": {"src": src, "caption": new.caption}}


def next_args(
    memo: dict[str, Any], value: Any, slots: Mapping[str, Slot] | None, interval_ms: int
) -> dict[str, Any]:
    """The component's arguments for this run, and `memo` updated to what they hold.

    memo: kept between runs (the session's); value: the browser's last report
    ({"tick", "have", "reset"}) or None; slots: what each place shows now, or None when the
    caller knows nothing changed since the last run (nothing is compared then).
    """
    reset = value.get("reset") if isinstance(value, dict) else None
    whole = "args" not in memo or reset != memo.get("served_reset")
    memo["served_reset"] = reset
    sent: dict[str, Slot] = memo.get("sent", {})
    current = sent if slots is None else slots
    ops: dict[str, Any] = {}
    if slots is not None or whole:
        held = {} if whole else sent  # what the browser shows now
        for name in dict.fromkeys([*held, *current]):
            op = slot_update(held.get(name), current.get(name))
            if op is not None:
                ops[name] = op
    memo["sent"] = dict(current)
    previous = memo.get("args")
    if not ops and not whole and previous["interval_ms"] == interval_ms:
        return previous  # the same arguments: Streamlit sends the iframe nothing at all
    seq = (previous["seq"] if previous else 0) + 1
    base = None if whole else previous["seq"]
    memo["args"] = {"seq": seq, "base": base, "ops": ops, "interval_ms": interval_ms}
    return memo["args"]


# ---------------------------------------------------------------- Streamlit side


def _vendor_plotly() -> bool:
    """Copy plotly.js from the plotly package beside the frontend, once (atomically: two
    sessions may race). False when it cannot be had."""
    if PLOTLY_JS.is_file():
        return True
    spec = importlib.util.find_spec("plotly")
    if spec is None or spec.origin is None:
        return False
    source = Path(spec.origin).parent / "package_data" / "plotly.min.js"
    try:
        PLOTLY_JS.parent.mkdir(exist_ok=True)
        temp = PLOTLY_JS.with_suffix(f".{os.getpid()}.tmp")
        shutil.copyfile(source, temp)
        os.replace(temp, PLOTLY_JS)
    except OSError:
        return False
    return True


def is_available() -> bool:
    """Whether the component can be served (its frontend files, uPlot beside them, pyarrow);
    if not, the caller draws with st.plotly_chart. plotly.js is copied in when it can be, for
    the figures uPlot does not draw (none of the Training view's): without it, the charts the
    view needs still draw."""
    files = all((FRONTEND_DIR / name).is_file() for name in _FRONTEND_FILES)
    _vendor_plotly()
    return files and importlib.util.find_spec("pyarrow") is not None


def live_charts(slots: Mapping[str, Slot] | None, interval_ms: int, *, key: str) -> None:
    """Draw the panel's slots in the browser, sending only what changed since the last run.

    slots: place name -> what it shows ("curves", "schedule", "gap", "gap_line", "kl",
    "recon"), or None when nothing changed since the last call. interval_ms: how often the
    browser asks for a rerun of the enclosing fragment while visible; 0 = never.
    """
    memo = st.session_state.setdefault(f"{key}::live_charts", {})
    draft = dict(memo)  # next_args only assigns its keys: a shallow copy keeps memo intact
    args = next_args(draft, st.session_state.get(key), slots, interval_ms)
    component = components.declare_component("live_charts", path=str(FRONTEND_DIR))
    # A rerun request (a tick, the sidebar's timer) stops this run at its next st.* call,
    # before that call's message is sent: remember what was sent only once it was.
    component(key=key, default=None, **args)
    memo.update(draft)
