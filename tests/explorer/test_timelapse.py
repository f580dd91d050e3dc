"""The time-lapse, "Fork from here" and the Compare view under AppTest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from explorer import charts, images, runs, state
from explorer.panels import fork
from vae_core import history
from vae_core.process import kill_trainer, wait_for_state
from vae_core.rundir import RunDir


@pytest.fixture
def own_root(finished_run_root: Path, run_name: str, tmp_path: Path, monkeypatch) -> Path:
    """A runs root of this test's own: the finished run and a copy named "twin"."""
    root = tmp_path / "runs"
    root.mkdir()
    for name in (run_name, "twin"):
        shutil.copytree(finished_run_root / run_name, root / name, ignore=_no_lock)
    monkeypatch.setenv(runs.RUNS_ROOT_ENV, str(root))
    yield root
    for child in root.iterdir():
        kill_trainer(RunDir(child))
    for process in list(runs._launches.values()):
        process.kill()
        process.wait(timeout=30)
    runs.reap_children()


def _no_lock(_folder: str, names: list[str]) -> list[str]:
    return [n for n in names if n == "lock"]


def _figure(at: AppTest, key_part: str) -> dict:
    charts_ = [c for c in at.get("plotly_chart") if key_part in c.proto.id]
    assert charts_, f"no chart with {key_part!r}"
    return json.loads(charts_[0].proto.spec)


def test_timelapse_has_one_titled_frame_per_history_point(app, own_root, run_name) -> None:
    at = app(run_name, "Scatter", **{state.SCATTER_TIMELAPSE: "Time-lapse"})
    assert not at.exception
    points = history.list_points(RunDir(own_root / run_name))
    spec = _figure(at, "timelapse")
    assert len(spec["frames"]) == len(points) >= 2
    first, last = points[0], points[-1]
    assert spec["frames"][0]["layout"]["title"]["text"].startswith(f"step {first.step} ·")
    assert f"test ELBO {last.test_elbo:.1f}" in spec["layout"]["title"]["text"]
    assert spec["layout"]["xaxis"]["autorange"] is False  # fixed axes across frames
    assert [s["label"] for s in spec["layout"]["sliders"][0]["steps"]] == [
        str(p.step) for p in points
    ]


def test_timelapse_follows_the_clicked_point(app, own_root, run_name) -> None:
    session = {state.SCATTER_TIMELAPSE: "Time-lapse", state.SCATTER_SELECTED: 3}
    spec = _figure(app(run_name, "Scatter", **session), "timelapse")
    assert all(any(t.get("name") == "test image #3" for t in f["data"]) for f in spec["frames"])


def test_fork_from_here_creates_a_run_that_names_its_parent(app, own_root, run_name) -> None:
    at = app(run_name, "Scatter", **{state.SCATTER_TIMELAPSE: "Time-lapse"})
    step = history.list_points(RunDir(own_root / run_name))[-1].step
    at.selectbox(key="scatter.fork.preset").set_value(fork.PLAIN_AE)
    at = at.run()
    next(b for b in at.button if b.label == "Fork from here").click()
    at = at.run()
    assert not at.exception, at.exception
    forked = own_root / f"{run_name}-fork-{step}"
    wait_for_state(RunDir(forked), {"running", "finished", "failed"}, timeout_s=120)
    config = json.loads((forked / "config.json").read_text())
    parent = RunDir(own_root / run_name)
    assert config["parent"] == {"run": str(parent.path), "step": step, "id": parent.run_id()}
    assert RunDir(forked).read_config()[1].beta == 0.0
    assert at.query_params[state.RUN_PARAM] == forked.name


def test_compare_view_draws_curves_table_maps_and_samples(app, own_root, run_name) -> None:
    at = app(run_name, "Compare", **{state.COMPARE_RUNS: [run_name, "twin"]})
    assert not at.exception, at.exception
    assert len(at.dataframe) == 1 and len(at.dataframe[0].value) == 2
    assert len(at.get("plotly_chart")) == 3  # curves + two latent maps
    assert any("One projection for all" in c.value for c in at.caption)
    captions = [i.caption for e in at.get("image") for i in e.proto.imgs]
    assert sum("seed 0" in c for c in captions) == 2


def test_scatter_gif_has_one_frame_per_point() -> None:
    from PIL import Image

    frames = np.random.default_rng(0).normal(size=(5, 50, 2)).astype(np.float32)
    gif = images.scatter_gif(
        frames, np.arange(50) % 3, [f"f{t}" for t in range(5)], charts.fixed_ranges(frames),
        charts.CLASS_COLORS,
    )  # fmt: skip
    with Image.open(__import__("io").BytesIO(gif)) as picture:
        assert picture.n_frames == 5


def test_training_view_offers_a_fork_of_the_newest_point(
    app, own_root, run_name, components_of
) -> None:
    at = app(run_name, "Training")
    assert not at.exception
    step = history.list_points(RunDir(own_root / run_name))[-1].step
    assert any(e.label == "Fork from the newest saved step" for e in at.expander)
    assert not [s for s in at.selectbox if s.key == "training.fork.preset"]  # closed: no form
    clocks = [c.key for c in components_of(at, "ticker")]
    assert state.TRAINING_FORK_CLOCK not in clocks  # ...and no clock
    at.session_state[state.TRAINING_FORK_EXPANDER] = True  # what opening it sets
    at.run()
    assert at.selectbox(key="training.fork.preset").options == list(fork.PRESETS)
    assert f"continues from step {step} " in " ".join(c.value for c in at.caption)


def test_a_history_file_of_another_model_is_one_line_not_a_traceback(
    app, own_root, run_name
) -> None:
    from vae_core.config import ModelConfig
    from vae_core.models import VAE

    run = RunDir(own_root / run_name)
    other = VAE(ModelConfig(image_shape=(1, 28, 28), latent_dim=2, hidden_dim=8))
    step = history.list_points(run)[-1].step + 1
    history.save_point(run, other, step, epoch=1, test_elbo=-1.0)  # copied from elsewhere
    at = app(run_name, "Scatter", **{state.SCATTER_TIMELAPSE: "Time-lapse"})
    assert not at.exception
    (error,) = at.error
    text = error.value.replace("\\", "")  # markdown escapes
    assert f"step-{step:09d}.safetensors: its weights do not fit" in text and "\n" not in text


def test_the_gif_stays_downloadable_when_the_fork_preset_changes(app, own_root, run_name) -> None:
    at = app(run_name, "Scatter", **{state.SCATTER_TIMELAPSE: "Time-lapse"})
    next(b for b in at.button if b.label == "Make a GIF of the time-lapse").click().run()
    assert [d.proto.label for d in at.get("download_button")].count("Download GIF") == 1
    made = at.session_state[state.SCATTER_TIMELAPSE_GIF_MADE]
    assert made[2][:6] == b"GIF89a"
    at.selectbox(key="scatter.fork.preset").set_value(fork.PLAIN_AE).run()
    assert not at.exception
    assert [d.proto.label for d in at.get("download_button")].count("Download GIF") == 1
    assert at.session_state[state.SCATTER_TIMELAPSE_GIF_MADE] is made  # not made again
    assert any("β = 0" in c.value or "beta = 0" in c.value for c in at.caption)


def test_the_history_is_encoded_point_by_point_under_a_progress_bar(
    app, own_root, run_name, monkeypatch
) -> None:
    from explorer import cache

    encoded: list[int] = []
    bars: list[str] = []
    history_codes, progress = cache.history_codes, st.progress

    def counted(run_path, step, point):
        encoded.append(step)
        return history_codes(run_path, step, point)

    def recorded(value, text=None):
        bars.append(text)
        return progress(value, text=text)

    monkeypatch.setattr(cache, "history_codes", counted)
    monkeypatch.setattr(st, "progress", recorded)
    at = app(run_name, "Scatter", **{state.SCATTER_TIMELAPSE: "Time-lapse"})
    assert not at.exception
    points = history.list_points(RunDir(own_root / run_name))
    # every point, oldest first, under the bar; then time_lapse reads them from the cache
    assert encoded[: len(points)] == [p.step for p in points]
    assert bars == ["Encoding the history…"]
    assert not at.get("progress")  # the bar is gone once the frames are drawn
