"""Pure Plotly figure builders from metric rows and numpy arrays (no Streamlit calls).

Metric rows use the vocabulary of metrics.jsonl: step, split ("train" | "test"), elbo,
recon, kl, kl_per_dim, beta, lr; control rows carry event="control", failures event="failed".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

# The four live curves: (row key, panel title). beta*KL is derived from kl and beta.
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
ACTIVE_COLOR, INACTIVE_COLOR = "#1f77b4", "#c7c7c7"
_LAYOUT = {"margin": {"l": 40, "r": 10, "t": 40, "b": 30}, "template": "plotly_white"}


def events(rows: Sequence[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """Event rows ("control" or "failed")."""
    return [r for r in rows if r.get("event") == kind]


def _series(rows: Sequence[dict[str, Any]], split: str, key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one split; beta_kl weighs kl by the beta in force at that step."""
    steps, values = [], []
    last_beta = 1.0
    for r in rows:
        # Test rows are evaluated at beta = 1 and carry no beta: train and control rows do.
        last_beta = r.get("beta", last_beta)
        if r.get("split") != split:
            continue
        if key == "beta_kl":
            value = None if r.get("kl") is None else r["kl"] * last_beta
        else:
            value = r.get(key)
        if value is not None:
            steps.append(r["step"])
            values.append(value)
    return steps, values


def _control_label(row: dict[str, Any]) -> str:
    parts = [f"{k}={row[k]:.3g}" for k in ("beta", "lr") if isinstance(row.get(k), float | int)]
    command = row.get("command")
    return ", ".join(([command] if command else []) + parts)


def curves_figure(rows: Sequence[dict[str, Any]], height: int = 460) -> go.Figure:
    """2x2 panels of ELBO / reconstruction / KL / beta*KL over steps, train and test,
    with a dashed vertical line at each live beta / lr change and a red one at a failure."""
    fig = make_subplots(rows=2, cols=2, subplot_titles=[title for _, title in CURVES])
    for i, (key, _) in enumerate(CURVES):
        row, col = divmod(i, 2)
        for split, style in SPLIT_STYLE.items():
            steps, values = _series(rows, split, key)
            fig.add_trace(
                go.Scatter(
                    x=steps,
                    y=values,
                    name=split,
                    legendgroup=split,
                    showlegend=i == 0,
                    mode="lines+markers" if split == "test" else "lines",
                    line=style,
                ),
                row=row + 1,
                col=col + 1,
            )
    for event in events(rows, "control"):
        fig.add_vline(x=event["step"], line={"dash": "dash", "color": "#888", "width": 1})
    for event in events(rows, "failed"):
        fig.add_vline(x=event["step"], line={"color": "#d62728", "width": 2})
    _annotate_changes(fig, rows)
    fig.update_layout(height=height, legend={"orientation": "h", "y": -0.08}, **_LAYOUT)
    fig.update_xaxes(title_text=None)
    return fig


def _annotate_changes(fig: go.Figure, rows: Sequence[dict[str, Any]]) -> None:
    """Label each control line once, at the top of the figure."""
    for event in events(rows, "control"):
        label = _control_label(event)
        if label:
            fig.add_annotation(
                x=event["step"],
                y=1.0,
                xref="x",
                yref="paper",
                text=label,
                showarrow=False,
                font={"size": 10, "color": "#555"},
                yanchor="bottom",
            )


def kl_bar_figure(
    kl_per_dim: Sequence[float], active: Sequence[bool], height: int = 260
) -> go.Figure:
    """One bar per latent dimension: active dims in colour, collapsed ones in grey."""
    kl = np.asarray(kl_per_dim, dtype=float)
    active = np.asarray(active, dtype=bool)
    fig = go.Figure(
        go.Bar(
            x=[f"z{d}" for d in range(len(kl))],
            y=kl,
            marker_color=[ACTIVE_COLOR if a else INACTIVE_COLOR for a in active],
            hovertemplate="%{x}: %{y:.3f} nats<extra></extra>",
        )
    )
    fig.update_layout(
        height=height,
        title=f"KL per dimension: {int(active.sum())} of {len(kl)} active (grey: collapsed)",
        yaxis_title="nats",
        showlegend=False,
        **_LAYOUT,
    )
    return fig


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
