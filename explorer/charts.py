"""Pure Plotly figure builders from metric views and numpy arrays (no Streamlit calls).

The training curves come from a vae_core.metrics_log.MetricsView: thinned (step, value)
series per (split, key), where split is "train" | "test" and key is in the metrics.jsonl
vocabulary (elbo, recon, kl, beta_kl, ...), and event rows (control, failed, resume).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

# Imported whole before any figure is built: Plotly's validators take pandas from
# sys.modules without importing it, so while another session's thread is halfway through
# importing pandas, a figure built here would meet a partly initialised module
# ("module 'pandas' has no attribute 'Series'"), an exception in the page.
import pandas  # noqa: F401
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from vae_core.metrics_log import MetricsView, Series

# The four live curves: (series key, panel title). beta*KL is derived from kl and beta.
CURVES = (
    ("elbo", "ELBO (nats, higher is better)"),
    ("recon", "Reconstruction -log p(x|z) (nats)"),
    ("kl", "KL(q(z|x) || p(z)) (nats)"),
    ("beta_kl", "beta * KL (the objective's KL term)"),
)
SPLIT_STYLE = {
    "train": {"color": "#1f77b4", "dash": "solid"},
    "test": {"color": "#d62728", "dash": "dot"},
}
# A vertical line in every panel at each event: a live beta / lr change, a failure, a resume.
EVENT_LINES = {
    "control": {"dash": "dash", "color": "#888", "width": 1},
    "failed": {"color": "#d62728", "width": 2},
    "resume": {"dash": "dot", "color": "#2ca02c", "width": 1},
}
MAX_MARKED_EVENTS = 50  # the newest ones: four shapes each, resent every second
ACTIVE_COLOR, INACTIVE_COLOR = "#1f77b4", "#c7c7c7"
# Plotly's toolbar (the modebar, shown on hover) takes the top ~30 px at the right: titles
# sit below it, in a top margin of MODEBAR_CLEAR_PX, never under it.
MODEBAR_CLEAR_PX = 56
_LAYOUT = {
    "margin": {"l": 40, "r": 10, "t": MODEBAR_CLEAR_PX, "b": 30},
    "template": "plotly_white",
}
# Where every chart's title goes: left, just above the plot, clear of the modebar.
TITLE_PLACEMENT = {
    "x": 0,
    "xanchor": "left",
    "xref": "paper",
    "y": 1,
    "yanchor": "bottom",
    "yref": "paper",
    "pad": {"b": 8},
}
# Labels of the dashed control lines, above the ELBO panel's title: LABEL_LEVELS rows; a
# label with no room on any row is left to the line's hover.
LABEL_LEVELS, LABEL_ROW_PX, LABEL_CHAR_PX = 2, 13, 5.5
LABEL_PANEL_PX = 380  # the narrowest width the ELBO panel is drawn at, for the room check
# The parts of plotly_white that a 2-D line or bar chart uses (no colorscales, 3-D, maps).
_LIGHT_TEMPLATE_LAYOUT = (
    "autotypenumbers", "colorway", "font", "hovermode", "hoverlabel", "paper_bgcolor",
    "plot_bgcolor", "xaxis", "yaxis", "shapedefaults", "annotationdefaults", "title",
)  # fmt: skip


def _compact(series: Series) -> tuple[np.ndarray, np.ndarray]:
    """int32 steps and float32 values: half the bytes of float64 in the figure's JSON, and
    more precision than a chart shows."""
    steps, values = series
    if steps.size and np.all(steps == np.round(steps)) and steps.max() < 2**31:
        steps = steps.astype(np.int32)
    return steps, values.astype(np.float32)


def _control_label(row: Any) -> str:
    """A control row's label: "beta=4, lr=0.001", or what it changed ("free_bits=0.5")."""
    changed = row.get("changed")
    keys = [k for k in changed if isinstance(k, str)] if isinstance(changed, list) else []
    parts = [_setting(k, row.get(k)) for k in (keys or ("beta", "lr"))]
    parts = [p for p in parts if p]
    command = row.get("command")
    return ", ".join(([command] if command else []) + parts)


def _setting(key: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, float | int | str):
        return ""
    return f"{key}={value:.3g}" if isinstance(value, float | int) else f"{key}={value}"


def curves_figure(metrics: MetricsView, height: int = 460) -> go.Figure:
    """curves_spec as a Figure."""
    return go.Figure(curves_spec(metrics, height))


def curves_spec(metrics: MetricsView, height: int = 460) -> dict[str, Any]:
    """2x2 panels of ELBO / reconstruction / KL / beta*KL over steps, train and test,
    with a dashed vertical line at each live beta / lr change, a red one at a failure and
    a dotted green one where a trainer resumed from a checkpoint."""
    traces = []
    for i, (key, _) in enumerate(CURVES):
        axis = "" if i == 0 else str(i + 1)
        for split, style in SPLIT_STYLE.items():
            steps, values = _compact(metrics.points(split, key))
            traces.append(
                {
                    "type": "scatter",
                    "x": steps,
                    "y": values,
                    "xaxis": f"x{axis}",
                    "yaxis": f"y{axis}",
                    "name": split,
                    "legendgroup": split,
                    "showlegend": i == 0,
                    "mode": "lines+markers" if split == "test" else "lines",
                    "line": style,
                }
            )
    marked = [e for e in metrics.events if e.get("event") in EVENT_LINES][-MAX_MARKED_EVENTS:]
    axes, titles = _grid_layout()
    # The x axis spans every trace's steps and every marked event.
    ends = [float(f(t["x"])) for t in traces if len(t["x"]) for f in (np.min, np.max)]
    steps = ends + [e["step"] for e in marked]
    labels = _change_labels(marked, max(steps, default=0) - min(steps, default=0))
    rows = max((label["row"] for label in labels), default=-1) + 1
    layout = _live_layout(
        **axes,
        annotations=[*titles, *({k: v for k, v in a.items() if k != "row"} for a in labels)],
        shapes=[
            _vline(e["step"], EVENT_LINES[e["event"]], n) for e in marked for n in (1, 2, 3, 4)
        ],
        height=height,
        legend={"orientation": "h", "y": -0.08},
        margin={**_LAYOUT["margin"], "t": MODEBAR_CLEAR_PX + LABEL_ROW_PX * rows},
    )
    # A dict, not make_subplots + add_trace + update_layout: each of those validates (and
    # builds the template) again, several times the cost of the whole figure otherwise.
    return {"data": traces, "layout": layout}


@functools.cache
def _light_template() -> dict[str, Any]:
    """plotly_white as the live charts see it, a tenth of its size: the whole template is
    validated and deep-copied on every figure, which would be most of a refresh's cost."""
    full = pio.templates["plotly_white"].to_plotly_json()
    layout = {k: v for k, v in full["layout"].items() if k in _LIGHT_TEMPLATE_LAYOUT}
    data = {k: v for k, v in full["data"].items() if k in ("scatter", "bar")}
    return {"layout": layout, "data": data}


def _live_layout(**layout: Any) -> dict[str, Any]:
    """Layout of a chart redrawn every second: _LAYOUT with the light template."""
    return {**_LAYOUT, **layout, "template": _light_template()}


@functools.cache
def _grid_layout() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(axes, panel titles) of the 2x2 curves grid, as make_subplots lays them out."""
    layout = make_subplots(rows=2, cols=2, subplot_titles=[t for _, t in CURVES]).to_dict()
    axes = {k: v for k, v in layout["layout"].items() if k.startswith(("xaxis", "yaxis"))}
    return axes, layout["layout"]["annotations"]


def _vline(step: float, line: dict[str, Any], panel: int) -> dict[str, Any]:
    """A vertical line at `step` across the whole height of panel 1..4."""
    suffix = "" if panel == 1 else str(panel)
    return {
        "type": "line",
        "x0": step,
        "x1": step,
        "xref": f"x{suffix}",
        "y0": 0,
        "y1": 1,
        "yref": f"y{suffix} domain",
        "line": line,
    }


def _change_labels(events: Sequence[Any], span: float) -> list[dict[str, Any]]:
    """A label for each control line, above the ELBO panel's title, on the lowest of
    LABEL_LEVELS rows where it does not overprint the previous one; where no row has room,
    a small mark whose hover gives the label. `span`: the steps the x axis covers. Each
    annotation carries its "row" (-1: hover only), which the caller strips."""
    step_per_px = max(span, 1.0) / LABEL_PANEL_PX
    row_ends = [-math.inf] * LABEL_LEVELS  # the step where each row's last label ends
    labels = []
    for event in sorted(events, key=lambda e: e["step"]):
        text = _control_label(event) if event.get("event") == "control" else ""
        if not text:
            continue
        half = len(text) * LABEL_CHAR_PX / 2 * step_per_px
        row = next((r for r, end in enumerate(row_ends) if end < event["step"] - half), -1)
        if row >= 0:
            row_ends[row] = event["step"] + half
        labels.append(
            {
                "x": event["step"],
                "y": 1.0,
                "xref": "x",
                "yref": "paper",
                "text": text if row >= 0 else "▾",
                "hovertext": text,
                "showarrow": False,
                "font": {"size": 10, "color": "#555"},
                # a hover-only mark hangs inside the panel, at the line's top
                "yanchor": "bottom" if row >= 0 else "top",
                "yshift": 20 + LABEL_ROW_PX * row if row >= 0 else 0,
                "row": row,
            }
        )
    return labels


def kl_bar_figure(
    kl_per_dim: Sequence[float],
    active: Sequence[bool],
    height: int = 260,
    threshold: float | None = None,
    free_bits: float = 0.0,
) -> go.Figure:
    """kl_bar_spec as a Figure."""
    return go.Figure(kl_bar_spec(kl_per_dim, active, height, threshold, free_bits))


def kl_bar_spec(
    kl_per_dim: Sequence[float],
    active: Sequence[bool],
    height: int = 260,
    threshold: float | None = None,
    free_bits: float = 0.0,
) -> dict[str, Any]:
    """One bar per latent dimension: active dims in colour, collapsed ones in grey; a dotted
    line at the active `threshold` and a dashed one at the free-bits floor, when given."""
    kl = np.asarray(kl_per_dim, dtype=float)
    active = np.asarray(active, dtype=bool)
    bar = {
        "type": "bar",
        "x": [f"z{d}" for d in range(len(kl))],
        "y": kl.astype(np.float32),
        "marker": {"color": [ACTIVE_COLOR if a else INACTIVE_COLOR for a in active]},
        "hovertemplate": "%{x}: %{y:.3f} nats<extra></extra>",
    }
    lines = [(threshold, "dot", "active above"), (free_bits or None, "dash", "free bits λ")]
    lines = [(y, dash, text) for y, dash, text in lines if y is not None]
    layout = _live_layout(
        height=height,
        title=_title(_kl_title(active, threshold)),
        yaxis={"title": {"text": "nats"}},
        showlegend=False,
        shapes=[_hline(y, {"dash": dash, "color": "#555", "width": 1}) for y, dash, _ in lines],
        annotations=[_hline_label(y, f"{text} {y:g}") for y, _, text in lines],
    )
    return {"data": [bar], "layout": layout}


def _title(text: str, size: int | None = None) -> dict[str, Any]:
    """A chart title, placed by TITLE_PLACEMENT."""
    return {"text": text, **TITLE_PLACEMENT, **({"font": {"size": size}} if size else {})}


def _kl_title(active: np.ndarray, threshold: float | None) -> str:
    """The KL bars' title; it speaks of grey bars only when some are grey."""
    title = f"KL per dimension: {int(active.sum())} of {active.size} active"
    collapsed = active.size - int(active.sum())
    if collapsed:
        below = f" below {threshold:g} nats" if threshold is not None else ""
        title += f" (grey: {collapsed} collapsed{below})"
    return title


def scatter_figure(
    coords: np.ndarray,
    labels: np.ndarray,
    indices: np.ndarray,
    class_names: Sequence[str] = (),
    current: np.ndarray | None = None,
    path: np.ndarray | None = None,
    axis_titles: tuple[str, str] = ("z0", "z1"),
    height: int = 520,
) -> go.Figure:
    """The encoded test set as WebGL points, one trace per class; customdata = dataset index.

    Args:
        coords: (N, 2) projected codes; labels, indices: (N,).
        current: (2,) the slider point, drawn as a star.
        path: (S, 2) an interpolation path, drawn as a line.
    """
    fig = go.Figure()
    for label in np.unique(labels):
        mask = labels == label
        name = class_name(int(label), class_names)
        fig.add_trace(
            go.Scattergl(
                x=coords[mask, 0],
                y=coords[mask, 1],
                mode="markers",
                name=name,
                customdata=indices[mask],
                marker={"size": 5, "opacity": 0.7, "color": class_color(label)},
                hovertemplate=f"{name}<br>#%{{customdata}}<extra></extra>",
            )
        )
    if path is not None:
        fig.add_trace(_overlay(path, "interpolation", "lines+markers", "#000", "circle"))
    if current is not None:
        point = np.asarray(current).reshape(1, 2)
        fig.add_trace(_overlay(point, "slider point", "markers", "#000", "star", size=16))
    fig.update_layout(
        height=height,
        xaxis_title=axis_titles[0],
        yaxis_title=axis_titles[1],
        showlegend=True,  # even for one class: the colour must be read somewhere
        legend=CLASS_LEGEND,
        dragmode="pan",
        **_LAYOUT,
    )
    return fig


def _overlay(
    points: np.ndarray, name: str, mode: str, color: str, symbol: str, size: int = 8
) -> go.Scatter:
    # Plain SVG (not GL) so the overlay draws above the WebGL points; no customdata, so
    # selecting it never looks like selecting a test image.
    return go.Scatter(
        x=points[:, 0],
        y=points[:, 1],
        mode=mode,
        name=name,
        marker={
            "size": size,
            "color": color,
            "symbol": symbol,
            "line": {"width": 1, "color": "#fff"},
        },
        line={"color": color, "width": 2},
        hoverinfo="skip",
    )


def _hline(y: float, line: dict[str, Any]) -> dict[str, Any]:
    """A horizontal line at `y` across the whole width of the (single) plot."""
    return {"type": "line", "x0": 0, "x1": 1, "xref": "x domain", "y0": y, "y1": y, "line": line}


def _hline_label(y: float, text: str) -> dict[str, Any]:
    return {
        "x": 1,
        "y": y,
        "xref": "x domain",
        "yref": "y",
        "text": text,
        "showarrow": False,
        "xanchor": "right",
        "yanchor": "bottom",
        "font": {"size": 10, "color": "#555"},
    }


def _drop_flat(series: Series) -> tuple[np.ndarray, np.ndarray]:
    """_compact(series) without the inner points of flat runs: a schedule that holds for
    100,000 steps is two points, drawn the same."""
    steps, values = _compact(series)
    if values.size < 3:
        return steps, values
    keep = np.ones(values.size, dtype=bool)
    keep[1:-1] = (values[1:-1] != values[:-2]) | (values[1:-1] != values[2:])
    return steps[keep], values[keep]


def schedule_figure(metrics: MetricsView, height: int = 260) -> go.Figure:
    """schedule_spec as a Figure."""
    return go.Figure(schedule_spec(metrics, height))


def schedule_spec(metrics: MetricsView, height: int = 260) -> dict[str, Any]:
    """The effective beta (what the schedule gave each logged step) and the free-bits floor
    lambda (nats per dimension, right axis), with the live changes marked."""
    beta_steps, beta = _drop_flat(metrics.points("train", "beta"))
    floor_steps, floor = _drop_flat(metrics.points("train", "free_bits"))
    traces = [
        {
            "type": "scatter",
            "x": beta_steps,
            "y": beta,
            "name": "effective beta",
            "mode": "lines",
            "line": {"color": "#1f77b4"},
        },
        {
            "type": "scatter",
            "x": floor_steps,
            "y": floor,
            "name": "free bits λ (nats/dim)",
            "yaxis": "y2",
            "mode": "lines",
            "line": {"color": "#ff7f0e", "dash": "dash", "shape": "hv"},
        },
    ]
    marked = [e for e in metrics.events if e.get("event") in EVENT_LINES][-MAX_MARKED_EVENTS:]
    layout = _live_layout(
        height=height,
        title=_title("Beta schedule and free-bits floor", size=14),
        yaxis={"title": {"text": "beta"}, "rangemode": "tozero"},
        yaxis2={
            "title": {"text": "λ, nats/dim"},
            "overlaying": "y",
            "side": "right",
            "range": [0, 1.1 * max(1.0, float(floor.max(initial=0.0)))],
            "tickmode": "auto",  # not aligned with beta's grid: 0.25-steps read better
            "nticks": 5,
            "showgrid": False,
        },
        shapes=[_vline(e["step"], EVENT_LINES[e["event"]], 1) for e in marked],
        legend={"orientation": "h", "y": -0.2},
    )
    return {"data": traces, "layout": layout}


def bits_per_dim(nats: np.ndarray, num_pixels: int) -> np.ndarray:
    """A bound on log p(x) in nats per image -> bits per dimension: -nats / (P ln 2)."""
    return -np.asarray(nats, dtype=np.float64) / (num_pixels * np.log(2))


def elbo_gap_figure(
    metrics: MetricsView, num_pixels: int, units: str = "nats", height: int = 360
) -> go.Figure:
    """elbo_gap_spec as a Figure."""
    return go.Figure(elbo_gap_spec(metrics, num_pixels, units, height))


def elbo_gap_spec(
    metrics: MetricsView, num_pixels: int, units: str = "nats", height: int = 360
) -> dict[str, Any]:
    """Test ELBO and IWAE bound on the same fixed images over training (top), and their gap
    (bottom), which estimates KL(q(z|x) || p(z|x)). units: "nats" (per image, higher is
    better) or "bits/dim" (lower is better; the gap in bits/dim too)."""
    elbo_steps, elbo = _compact(metrics.points("test", "iwae_elbo"))
    iwae_steps, iwae = _compact(metrics.points("test", "iwae"))
    gap_steps, gap = _compact(metrics.points("test", "iwae_gap"))
    if units == "bits/dim":
        elbo, iwae = bits_per_dim(elbo, num_pixels), bits_per_dim(iwae, num_pixels)
        gap = -bits_per_dim(gap, num_pixels)
        bound_title, gap_title = "bits/dim (lower is better)", "gap, bits/dim"
    else:
        bound_title, gap_title = "nats (higher is better)", "gap, nats"
    traces = [
        _test_trace(elbo_steps, elbo, "ELBO", "#1f77b4", "y"),
        _test_trace(iwae_steps, iwae, "IWAE bound", "#2ca02c", "y"),
        _test_trace(gap_steps, gap, "gap ≈ KL(q(z|x) || p(z|x))", "#d62728", "y2"),
    ]
    layout = _live_layout(
        height=height,
        title=_title("ELBO gap: the ELBO and log p(x)'s IWAE bound", size=14),
        xaxis={"anchor": "y2"},
        yaxis={"domain": [0.4, 1.0], "title": {"text": bound_title}},
        yaxis2={"domain": [0.0, 0.28], "title": {"text": gap_title}, "rangemode": "tozero"},
        legend={"orientation": "h", "y": -0.22},
    )
    return {"data": traces, "layout": layout}


def _test_trace(steps: np.ndarray, values: np.ndarray, name: str, color: str, yaxis: str):
    return {
        "type": "scatter",
        "x": steps,
        "y": np.asarray(values, dtype=np.float32),
        "name": name,
        "yaxis": yaxis,
        "mode": "lines+markers",
        "line": {"color": color},
    }


# One class -> one colour in every picture (scatter, hole map, time-lapse and its GIF,
# Compare, inspector): a class's colour comes from its label, never from the order in which
# traces happen to be added. Plotly's D3 sequence, then its lighter pairs (Tab20) for >10.
CLASS_COLORS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5",
    "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
)  # fmt: skip


def class_color(label: int) -> str:
    """The colour of class `label` everywhere in the app."""
    return CLASS_COLORS[int(label) % len(CLASS_COLORS)]


def class_name(label: int, class_names: Sequence[str]) -> str:
    """The class's name, or its number when the dataset names none."""
    return str(class_names[label]) if 0 <= label < len(class_names) else str(label)


# The legend of every class-coloured figure (beside the plot, titled).
NEIGHBOUR_COLOR = "#d62728"  # spokes to the selected point's nearest neighbours
FOUND_COLOR = "#000"  # rings around the points a search found
FADED_OPACITY = 0.15  # the other points while a search is active
CLASS_LEGEND = {"title": {"text": "class"}, "itemsizing": "constant"}


def fixed_ranges(frames: np.ndarray, pad: float = 0.08) -> tuple[tuple[float, float], ...]:
    """((x0, x1), (y0, y1)) holding the points of every frame (T, N, 2) and the origin, so
    the axes never move during playback and a collapsing latent visibly shrinks."""
    flat = np.asarray(frames, dtype=np.float64).reshape(-1, 2)  # (T * N, 2)
    flat = flat[np.isfinite(flat).all(axis=1)]
    if not len(flat):
        return (-1.0, 1.0), (-1.0, 1.0)
    low = np.minimum(np.percentile(flat, 0.2, axis=0), 0.0)  # (2,) a few outliers may leave
    high = np.maximum(np.percentile(flat, 99.8, axis=0), 0.0)
    span = np.maximum(high - low, 1e-3)
    return tuple(
        (float(lo - pad * s), float(hi + pad * s))
        for lo, hi, s in zip(low, high, span, strict=True)
    )


_BELOW = {"x": 0, "y": -0.08, "xanchor": "left", "yanchor": "top", "direction": "left"}


def timelapse_figure(
    frames: np.ndarray,
    labels: np.ndarray,
    titles: Sequence[str],
    frame_names: Sequence[str],
    class_names: Sequence[str] = (),
    tracks: Sequence[tuple[str, np.ndarray]] = (),
    axis_titles: tuple[str, str] = ("z0", "z1"),
    frame_ms: int = 250,
    height: int = 560,
) -> go.Figure:
    """The codes across training as one plotly animation that plays in the browser.

    Args:
        frames: (T, N, 2) projected codes, oldest first; labels: (N,) class per point.
        titles, frame_names: one per frame (the title shown; the slider's label).
        tracks: (name, (T, 2)) points followed across frames (the slider point, a click).
    Axes are fixed across frames. The figure opens on the newest frame; Play starts over.
    """
    frames = np.asarray(frames, dtype=np.float32)
    labels = np.asarray(labels)
    classes = [int(c) for c in np.unique(labels)]
    masks = [labels == c for c in classes]

    def data(t: int) -> list[dict[str, Any]]:
        points = [
            {
                "type": "scattergl",
                "x": frames[t, mask, 0],
                "y": frames[t, mask, 1],
                "mode": "markers",
                "name": class_name(c, class_names),
                "marker": {"size": 4, "opacity": 0.7, "color": class_color(c)},
                "hoverinfo": "skip",
            }
            for c, mask in zip(classes, masks, strict=True)
        ]
        return points + [_track(name, xy[t], i) for i, (name, xy) in enumerate(tracks)]

    last = len(frames) - 1
    animate = {"mode": "immediate", "transition": {"duration": 0}}
    slider = {
        "active": last,
        "x": 0.2,
        "len": 0.8,  # the Play / Pause buttons sit left of it
        "currentvalue": {"prefix": "step "},
        "pad": {"t": 40},
        "steps": [
            {
                "method": "animate",
                "label": name,
                "args": [[name], {**animate, "frame": {"duration": 0, "redraw": True}}],
            }
            for name in frame_names
        ],
    }
    play = {"duration": frame_ms, "redraw": True}
    buttons = [
        {"label": "▶ Play", "method": "animate", "args": [None, {**animate, "frame": play}]},
        {"label": "❚❚ Pause", "method": "animate", "args": [[None], {**animate, "frame": play}]},
    ]
    (x0, x1), (y0, y1) = fixed_ranges(frames)
    layout = {
        **_LAYOUT,
        "height": height,
        "title": _title(titles[last]),
        "xaxis": {"range": [x0, x1], "autorange": False, "title": axis_titles[0]},
        "yaxis": {"range": [y0, y1], "autorange": False, "title": axis_titles[1]},
        "showlegend": True,
        "legend": CLASS_LEGEND,
        "sliders": [slider],
        "updatemenus": [{"type": "buttons", "showactive": False, "buttons": buttons, **_BELOW}],
    }
    animation = [
        {"name": name, "data": data(t), "layout": {"title": {"text": title}}}
        for t, (name, title) in enumerate(zip(frame_names, titles, strict=True))
    ]
    return go.Figure({"data": data(last), "layout": layout, "frames": animation})


def _track(name: str, xy: np.ndarray, i: int) -> dict[str, Any]:
    """One followed point in one frame: a black star (the slider point) or ring (a click)."""
    symbol = ("star", "circle-open")[i % 2]
    return {
        "type": "scatter",
        "x": [float(xy[0])],
        "y": [float(xy[1])],
        "mode": "markers",
        "name": name,
        "marker": {"size": 16, "color": "#000", "symbol": symbol, "line": {"width": 2}},
        "hoverinfo": "skip",
    }


COMPARE_CURVES = (("elbo", "ELBO (nats)"), ("recon", "Reconstruction (nats)"), ("kl", "KL (nats)"))


def compare_curves_figure(
    curves: Sequence[tuple[str, MetricsView, int | None]], height: int = 340
) -> go.Figure:
    """ELBO, reconstruction and KL of several runs (train split) against step, one panel
    each, one colour per run; a fork's curve starts at its branch step, marked by a diamond.

    curves: (run name, its metrics, branch step or None) per run.
    """
    titles = [title for _, title in COMPARE_CURVES]
    fig = make_subplots(rows=1, cols=len(COMPARE_CURVES), subplot_titles=titles)
    for i, (name, metrics, branch) in enumerate(curves):
        color = CLASS_COLORS[i % len(CLASS_COLORS)]
        for col, (key, _) in enumerate(COMPARE_CURVES, start=1):
            steps, values = _compact(metrics.points("train", key))
            line = go.Scatter(
                x=steps,
                y=values,
                mode="lines",
                name=name,
                legendgroup=name,
                showlegend=col == 1,
                line={"color": color},
            )
            fig.add_trace(line, row=1, col=col)
            if branch is not None and len(steps):
                fig.add_trace(_branch_marker(name, branch, steps[0], values[0], color), 1, col)
    fig.update_xaxes(title_text="step")
    fig.update_layout(height=height, legend={"orientation": "h", "y": -0.25}, **_LAYOUT)
    return fig


def _branch_marker(name: str, branch: int, x: float, y: float, color: str) -> go.Scatter:
    """A diamond where a fork's curve starts: the step it branched from its parent."""
    return go.Scatter(
        x=[x],
        y=[y],
        mode="markers",
        name=f"{name}: fork at step {branch}",
        legendgroup=name,
        showlegend=False,
        marker={"symbol": "diamond", "size": 11, "color": color, "line": {"width": 1}},
        hovertemplate=f"forked from its parent at step {branch}<extra></extra>",
    )


# -- one image inspected, the user's own image, disentanglement (issue 10) --
OWN_IMAGE_COLOR, INSPECTED_COLOR = "#e4007c", "#000"
# Plotly's Inferno starts at "#000004", one of the placeholder colours Streamlit's frontend
# swaps for a theme colour (it drew zero error pink); true black instead.
_INFERNO = ["#000000", "#1b0c41", "#4a0c6b", "#781c6d", "#a52c60", "#cf4446", "#ed6925",
            "#fb9b06", "#f7d13d", "#fcffa4"]  # fmt: skip


def add_own_image(fig: go.Figure, point: np.ndarray, ellipse: np.ndarray | None) -> go.Figure:
    """The user's image on a scatter: its posterior mean (2,) as a cross and, for a linear
    projection, the 1-sigma ellipse (P, 2) of q(z|x) around it."""
    if ellipse is not None:
        outline = _overlay(
            np.asarray(ellipse), "your image: 1σ", "lines", OWN_IMAGE_COLOR, "circle"
        )
        outline.line.dash = "dot"
        fig.add_trace(outline)
    mean = _overlay(np.asarray(point).reshape(1, 2), "your image", "markers", OWN_IMAGE_COLOR, "x")
    mean.marker.size = 14
    fig.add_trace(mean)
    return fig


def add_inspected(fig: go.Figure, point: np.ndarray, index: int) -> go.Figure:
    """A ring around the inspected (selected) test image's point (2,)."""
    ring = _overlay(
        np.asarray(point).reshape(1, 2), f"inspected #{index}", "markers", INSPECTED_COLOR, "circle"
    )
    ring.marker.update(size=18, color="rgba(0,0,0,0)", line={"width": 2.5, "color": "#000"})
    fig.add_trace(ring)
    return fig


def add_neighbours(fig: go.Figure, center: np.ndarray, points: np.ndarray) -> go.Figure:
    """Spokes from the selected point (2,) to its nearest neighbours in latent space (k, 2),
    as the Embedding Projector draws them: the 2D view may put true neighbours far apart."""
    center = np.asarray(center, dtype=np.float64).reshape(2)
    xs: list[float | None] = []
    ys: list[float | None] = []
    for x, y in np.asarray(points, dtype=np.float64).reshape(-1, 2):
        xs += [center[0], x, None]
        ys += [center[1], y, None]
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=ys,
            mode="lines",
            name=f"{len(points)} nearest in latent space",
            line={"color": NEIGHBOUR_COLOR, "width": 1},
            hoverinfo="skip",
        )
    )
    rings = _overlay(
        np.asarray(points).reshape(-1, 2),
        "neighbours",
        "markers",
        NEIGHBOUR_COLOR,
        "circle",
        size=10,
    )
    rings.marker.update(color="rgba(0,0,0,0)", line={"width": 2, "color": NEIGHBOUR_COLOR})
    rings.showlegend = False
    fig.add_trace(rings)
    return fig


def add_found(fig: go.Figure, points: np.ndarray, query: str) -> go.Figure:
    """Highlight the points a search found (M, 2) and fade every other point."""
    for trace in fig.data:
        if isinstance(trace, go.Scattergl):  # the test set's class traces
            trace.marker.opacity = FADED_OPACITY
    found = _overlay(
        np.asarray(points).reshape(-1, 2),
        f"found: {query} ({len(points)})",
        "markers",
        FOUND_COLOR,
        "circle",
        size=9,
    )
    found.marker.update(color="rgba(0,0,0,0)", line={"width": 1.5, "color": FOUND_COLOR})
    fig.add_trace(found)
    return fig


def pixel_heatmap(values: np.ndarray, title: str, zmax: float | None = None, height: int = 260):
    """A (H, W) map of per-pixel values (absolute error, standard deviation) as a heat map,
    row 0 at the top like the image it describes; hover gives the value of one pixel."""
    values = np.asarray(values, dtype=np.float32)
    fig = go.Figure(
        go.Heatmap(
            z=values,
            zmin=0.0,
            zmax=zmax if zmax is not None else max(float(values.max()), 1e-6),
            colorscale=_INFERNO,
            colorbar={"thickness": 10},
            hovertemplate="row %{y}, col %{x}: %{z:.3f}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed", scaleanchor="x", showticklabels=False)
    fig.update_xaxes(showticklabels=False, constrain="domain")
    fig.update_layout(
        title=_title(title, size=13),
        height=height,
        margin={"l": 10, "r": 10, "t": MODEBAR_CLEAR_PX, "b": 10},
        template="plotly_white",
    )
    return fig


INACTIVE_MI_NOTE = "inactive dim (KL below the threshold): this MI is estimator bias<br>"


def mi_heatmap(
    mi: np.ndarray,
    factor_names: Sequence[str],
    gaps: dict[str, float],
    focus_dim: int | None = None,
    height: int | None = None,
    inactive: Sequence[int] = (),
) -> go.Figure:
    """I(z_d; v_k) in nats as factors (rows) x latent dims (columns), clickable per cell.

    Plotly heat maps cannot be selected, so an invisible marker sits on every cell; its
    customdata is the latent dimension, which a click selects. Row labels carry each
    factor's normalised gap (its share of MIG). `inactive` dims (KL below the threshold)
    are greyed over, their labels greyed and their hover says the MI there is the binned
    estimator's bias: a dim that carries nothing still shows 0.1-0.35 nats.
    """
    mi = np.asarray(mi, dtype=np.float64)  # (K, D)
    K, D = mi.shape
    off = {int(d) for d in inactive if 0 <= int(d) < D}
    rows = [f"{name} (gap {gaps[name]:.2f})" if name in gaps else name for name in factor_names]
    cols = [f"z{d}" for d in range(D)]
    fig = go.Figure(
        go.Heatmap(
            z=mi,
            x=cols,
            y=rows,
            colorscale="Viridis",
            zmin=0.0,  # plotly honours zmin only with zmax set too
            zmax=max(float(mi.max()), 1e-6) if mi.size else 1.0,
            colorbar={"title": {"text": "nats"}, "thickness": 12},
            hoverinfo="skip",
        )
    )
    dims, factors = np.meshgrid(np.arange(D), np.arange(K))  # (K, D) each
    fig.add_trace(
        go.Scatter(
            x=[cols[d] for d in dims.ravel()],
            y=[rows[k] for k in factors.ravel()],
            mode="markers",
            customdata=dims.ravel(),
            marker={"size": 30, "symbol": "square", "opacity": 0.0},
            selected={"marker": {"opacity": 0.0}},
            unselected={"marker": {"opacity": 0.0}},
            text=[f"{v:.3f}" for v in mi.ravel()],
            hovertext=[INACTIVE_MI_NOTE if d in off else "" for d in dims.ravel()],
            hovertemplate="%{x} · %{y}<br>I = %{text} nats<br>%{hovertext}"
            "click: open in the sliders<extra></extra>",
            showlegend=False,
        )
    )
    for d in sorted(off):
        fig.add_vrect(
            x0=d - 0.5,
            x1=d + 0.5,
            fillcolor=INACTIVE_COLOR,
            opacity=0.8,
            line_width=0,
            layer="above",
        )
    if focus_dim is not None and 0 <= focus_dim < D:
        fig.add_vrect(x0=focus_dim - 0.5, x1=focus_dim + 0.5, line={"color": "#e4007c", "width": 2})
    ticks = [
        f"<span style='color:#888'>{c} off</span>" if d in off else c for d, c in enumerate(cols)
    ]
    fig.update_layout(
        height=height or 120 + 36 * K,
        xaxis={
            "title": "latent dimension" + (" (grey: inactive)" if off else ""),
            "type": "category",
            "tickvals": cols,
            "ticktext": ticks,
        },
        yaxis={"autorange": "reversed", "type": "category"},
        margin={"l": 10, "r": 10, "t": 10, "b": 40},
        template="plotly_white",
        dragmode=False,
        clickmode="event+select",
    )
    return fig


# --- the aggregate posterior: histograms on slider tracks, the prior-hole map, loadings ---

HOLE_COLORSCALE = "RdBu"  # red: prior holes (log q < log p), blue: where the data lives


def histogram_svg(
    q: Sequence[float], p: Sequence[float], width: int = 320, height: int = 22
) -> str:
    """A tiny SVG of bars (the aggregate posterior's density q over a slider's bins) with the
    prior's density p as a line, scaled together; the look of the live sliders' tracks."""
    q, p = np.asarray(q, dtype=np.float64), np.asarray(p, dtype=np.float64)
    top = max(float(q.max(initial=0.0)), float(p.max(initial=0.0)), 1e-9)
    bins = len(q)
    bars = "".join(f"M{i} 1V{1 - v / top:.3f}H{i + 1}V1Z" for i, v in enumerate(q))
    line = " ".join(f"{i + 0.5},{1 - v / top:.3f}" for i, v in enumerate(p))
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {bins} 1" preserveAspectRatio="none">'
        f'<path d="{bars}" fill="#ff4b4b" fill-opacity="0.45"/>'
        f'<polyline points="{line}" fill="none" stroke="#31333f" stroke-width="1.2" '
        'vector-effect="non-scaling-stroke"/></svg>'
    )


def with_hole_map(
    fig: go.Figure, xs: np.ndarray, ys: np.ndarray, log_ratio: np.ndarray, clip: float = 10.0
) -> go.Figure:
    """`fig` (a scatter) with log q_agg - log p shaded behind its points, 0 in white."""
    heatmap = go.Heatmap(
        x=xs,
        y=ys,
        z=log_ratio,
        zmin=-clip,
        zmax=clip,
        zmid=0.0,
        colorscale=HOLE_COLORSCALE,
        opacity=0.55,
        hoverinfo="skip",  # clicks and selections stay with the test images
        showlegend=False,
        colorbar={
            "title": {"text": "log q − log p", "side": "right"},
            "orientation": "h",
            "x": 0,
            "xanchor": "left",
            "y": 1.0,
            "yanchor": "bottom",
            "len": 0.4,
            "thickness": 8,
        },
    )
    fig.add_trace(heatmap)
    fig.data = (fig.data[-1], *fig.data[:-1])  # first trace = drawn underneath
    return fig


def loadings_figure(direction: Sequence[float], height: int = 200) -> go.Figure:
    """Bar chart of a unit attribute vector's components: which latent dims it moves."""
    v = np.asarray(direction, dtype=np.float64)
    colors = np.where(v >= 0, ACTIVE_COLOR, "#d62728").tolist()
    bar = go.Bar(
        x=[f"z{d}" for d in range(len(v))],
        y=v,
        marker_color=colors,
        hovertemplate="%{x}: %{y:.3f}<extra></extra>",
    )
    layout = _live_layout(
        height=height,
        xaxis={"type": "category", "title": "latent dimension"},
        yaxis={"title": "component", "range": [-1, 1]},
        margin={"l": 40, "r": 10, "t": 10, "b": 40},
        showlegend=False,
    )
    return go.Figure(data=[bar], layout=layout)
