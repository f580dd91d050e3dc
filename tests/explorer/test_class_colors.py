"""One class -> one colour in every class-coloured picture the app draws for a run, each with
a legend: the scatter, the scatter over the prior-hole map, the time-lapse (every frame) and
its GIF, Compare's latent maps and the inspector's scatter."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageColor
from streamlit.testing.v1 import AppTest

from explorer import images, runs, state

CLASSES = ("square", "ellipse", "heart")  # the shapes dataset's


@pytest.fixture
def two_runs(finished_run_root: Path, run_name: str, tmp_path: Path, monkeypatch) -> Path:
    root = tmp_path / "runs"
    root.mkdir()
    for name in (run_name, "twin"):
        shutil.copytree(finished_run_root / run_name, root / name, ignore=_no_lock)
    monkeypatch.setenv(runs.RUNS_ROOT_ENV, str(root))
    return root


def _no_lock(_folder: str, names: list[str]) -> list[str]:
    return [n for n in names if n == "lock"]


def _figures(at: AppTest, key_part: str) -> list[dict]:
    assert not at.exception, at.exception
    found = [json.loads(c.proto.spec) for c in at.get("plotly_chart") if key_part in c.proto.id]
    assert found, f"no chart with {key_part!r}"
    return found


def _class_map(traces: list[dict]) -> dict[str, str]:
    """class name -> marker colour, from the traces named after a class."""
    return {t["name"]: t["marker"].get("color") for t in traces if t.get("name") in CLASSES}


def _has_class_legend(figure: dict) -> bool:
    layout = figure["layout"]
    shown = [t for t in figure["data"] if t.get("name") in CLASSES]
    return layout.get("showlegend") is True and all(t.get("showlegend", True) for t in shown)


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (28, 28), 200).save(buffer, format="PNG")
    return buffer.getvalue()


def test_every_class_coloured_picture_uses_one_colour_per_class_and_has_a_legend(
    app, two_runs, run_name, monkeypatch
) -> None:
    pictures: dict[str, list[dict]] = {
        "scatter": _figures(app(run_name, "Scatter"), state.SCATTER_CHART),
        "hole map": _figures(
            app(run_name, "Scatter", **{state.SCATTER_HOLES: True}), state.SCATTER_CHART
        ),
        "compare": _figures(
            app(run_name, "Compare", **{state.COMPARE_RUNS: [run_name, "twin"]}), "compare.map"
        ),
    }
    gifs = []
    monkeypatch.setattr(images, "scatter_gif", _spy(images.scatter_gif, gifs))
    at = app(run_name, "Scatter", **{state.SCATTER_TIMELAPSE: "Time-lapse"})
    next(b for b in at.button if b.label == "Make a GIF of the time-lapse").click().run()
    pictures["time-lapse"] = _figures(at, "timelapse")
    at = app(run_name, "Inspect image", **{state.INSPECT_MODE: "Your own image"})
    at.file_uploader(key=state.OWN_UPLOAD).set_value(("grey.png", _png(), "image/png"))
    pictures["inspector"] = _figures(at.run(), "inspector.scatter")

    assert any(t["type"] == "heatmap" for t in pictures["hole map"][0]["data"])  # shaded
    reference = _class_map(pictures["scatter"][0]["data"])
    assert set(reference) == set(CLASSES) and len(set(reference.values())) == len(CLASSES)
    for where, figures in pictures.items():
        for figure in figures:
            assert _class_map(figure["data"]) == reference, where
            assert _has_class_legend(figure), where
    for frame in pictures["time-lapse"][0]["frames"]:
        assert _class_map(frame["data"]) == reference

    (gif,) = gifs
    drawn = {CLASSES[c]: gif.colors[c % len(gif.colors)] for c in np.unique(gif.labels)}
    assert {k: v.lower() for k, v in drawn.items()} == reference
    legend = _legend_colours(gif.data)
    assert {ImageColor.getrgb(c) for c in reference.values()} <= legend


class _Gif:
    """One call of images.scatter_gif: its inputs and the GIF it made."""

    def __init__(self, data: bytes, args: tuple) -> None:
        self.data = data
        self.frames, self.labels, _, _, self.colors = args[:5]


def _spy(real, calls: list):
    def spy(*args, **kwargs):
        data = real(*args, **kwargs)
        calls.append(_Gif(data, args))
        return data

    return spy


def _legend_colours(gif: bytes) -> set[tuple[int, int, int]]:
    """The colours in the band below the plot (the legend) of the GIF's first frame."""
    with Image.open(io.BytesIO(gif)) as picture:
        rgb = np.asarray(picture.convert("RGB"))  # (H, W, 3)
    plot_bottom = 16 + 320  # the title band and the plot (images.scatter_gif's default size)
    band = rgb[plot_bottom:].reshape(-1, 3)
    return {tuple(int(v) for v in c) for c in np.unique(band, axis=0)}
