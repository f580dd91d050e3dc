"""Live charts that stay in the browser and receive only what is new.

Rebuilding and re-sending whole Plotly figures every second cost a watching tab half a core
in the browser. Here the figures (Plotly specs) live in one iframe (`live_charts/`): line
and bar figures, all the Training view shows, are drawn with uPlot (committed beside it);
any other figure with plotly.js (from the plotly package, copied beside it on first use,
loaded only when such a figure comes). Each update sends, per place ("slot"), nothing when
it did not change, the rows appended to its traces when only they changed, or the whole
figure when its layout did (`next_update`).

The iframe fetches its updates itself, over HTTP from the app's own route
(explorer.live_feed), once per `interval_ms` while the page is visible, none while it is
hidden, and one at once when it is shown again: a tick is not a Streamlit rerun.
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


def next_update(
    memo: dict[str, Any], have: int, slots: Mapping[str, Slot], interval_ms: int
) -> dict[str, Any]:
    """The update that takes a browser holding update `have` (0: nothing) to `slots`, and
    `memo` (kept between calls, one per browser panel; {} or {"seq": the number to count
    from}) moved on to it.

    {seq, base, ops, interval_ms}: `ops` apply on top of update `base`, or on nothing when
    base is None (a whole resend: the browser holds something this memo never sent, such as
    a new or remounted iframe, or an update lost on its way). With nothing new, seq == have
    and ops is empty.
    """
    previous = memo.setdefault("seq", 0)
    whole = "sent" not in memo or have != previous
    held: Mapping[str, Slot] = {} if whole else memo["sent"]  # what the browser shows now
    ops: dict[str, Any] = {}
    for name in dict.fromkeys([*held, *slots]):
        op = slot_update(held.get(name), slots.get(name))
        if op is not None:
            ops[name] = op
    memo["sent"] = dict(slots)
    if ops or whole:
        memo["seq"] = previous + 1
    seq = memo["seq"]
    return {"seq": seq, "base": None if whole else previous, "ops": ops, "interval_ms": interval_ms}


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


def live_charts(feed: str, url: str, generation: int, *, key: str) -> None:
    """Mount the panel's iframe on the live feed `feed`, fetched from `url` (explorer.live_feed).

    generation: bumped each time the feed is published again (the page redrawn, a setting
    changed); a new one makes the iframe fetch at once instead of at its next tick. When the
    feed says the page around the iframe is out of date, the iframe sets this component's
    value, which reruns the enclosing fragment.
    """
    component = components.declare_component("live_charts", path=str(FRONTEND_DIR))
    component(key=key, default=None, feed=feed, url=url, generation=generation)
