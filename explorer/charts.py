"""Pure Plotly figure builders from metric views and numpy arrays (no Streamlit calls).

The training curves come from a vae_core.metrics_log.MetricsView: thinned (step, value)
series per (split, key), where split is "train" | "test" and key is in the metrics.jsonl
vocabulary (elbo, recon, kl, beta_kl, ...), and event rows (control, failed, resume).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
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
_LAYOUT = {"margin": {"l": 40, "r": 10, "t": 40, "b": 30}, "template": "plotly_white"}
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
    parts = [f"{k}={row[k]:.3g}" for k in ("beta", "lr") if isinstance(row.get(k), float | int)]
    command = row.get("command")
    return ", ".join(([command] if command else []) + parts)


def curves_figure(metrics: MetricsView, height: int = 460) -> go.Figure:
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
    layout = _live_layout(
        **axes,
        annotations=[*titles, *_change_labels(marked)],
        shapes=[
            _vline(e["step"], EVENT_LINES[e["event"]], n) for e in marked for n in (1, 2, 3, 4)
        ],
        height=height,
        legend={"orientation": "h", "y": -0.08},
    )
    # One constructor call: make_subplots, add_trace and update_layout each validate (and
    # build the template) again, several times the cost of the whole figure otherwise.
    return go.Figure({"data": traces, "layout": layout})


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


def _change_labels(events: Sequence[Any]) -> list[dict[str, Any]]:
    """Label each control line once, at the top of the figure."""
    labels = []
    for event in events:
        text = _control_label(event) if event.get("event") == "control" else ""
        if text:
            labels.append(
                {
                    "x": event["step"],
                    "y": 1.0,
                    "xref": "x",
                    "yref": "paper",
                    "text": text,
                    "showarrow": False,
                    "font": {"size": 10, "color": "#555"},
                    "yanchor": "bottom",
                }
            )
    return labels


def kl_bar_figure(
    kl_per_dim: Sequence[float], active: Sequence[bool], height: int = 260
) -> go.Figure:
    """One bar per latent dimension: active dims in colour, collapsed ones in grey."""
    kl = np.asarray(kl_per_dim, dtype=float)
    active = np.asarray(active, dtype=bool)
    bar = go.Bar(
        x=[f"z{d}" for d in range(len(kl))],
        y=kl.astype(np.float32),
        marker_color=[ACTIVE_COLOR if a else INACTIVE_COLOR for a in active],
        hovertemplate="%{x}: %{y:.3f} nats<extra></extra>",
    )
    layout = _live_layout(
        height=height,
        title=f"KL per dimension: {int(active.sum())} of {len(kl)} active (grey: collapsed)",
        yaxis={"title": {"text": "nats"}},
        showlegend=False,
    )
    return go.Figure(data=[bar], layout=layout)  # one call: the template is built once


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
        name = class_names[label] if 0 <= label < len(class_names) else str(label)
        fig.add_trace(
            go.Scattergl(
                x=coords[mask, 0],
                y=coords[mask, 1],
                mode="markers",
                name=str(name),
                customdata=indices[mask],
                marker={"size": 5, "opacity": 0.7},
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
        legend={"itemsizing": "constant"},
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
