"""explorer.reproduce and the sliders' "Copy state": the snippet regenerates the app's image
bit for bit, and the URL reopens the same point."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from explorer import images, reproduce, state
from explorer.views import sliders

SNIPPET_RUNNER = """
import sys
exec(sys.stdin.read())
sys.stdout.buffer.write(np.ascontiguousarray(image).tobytes())
"""


def _view(**changes) -> reproduce.ViewState:
    fields = dict(
        run_ref="my-run",
        run_dir="/runs/my-run",
        snapshot_version=7,
        frozen=False,
        z=(0.15, -1.0 / 3.0, 2.9999999),
        slider_order=(2, 0, 1),
        projection="PCA",
        seed=4,
    )
    return reproduce.ViewState(**(fields | changes))


def test_z_text_round_trips_float32_exactly() -> None:
    z = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    back = np.array([float(v) for v in reproduce.z_text(z)], dtype=np.float32)
    assert back.tobytes() == z.tobytes()


def test_url_names_run_view_and_z() -> None:
    link = reproduce.url("http://box:8501/app/?run=old&view=Scatter", _view())
    parts = urlsplit(link)
    assert (parts.scheme, parts.netloc, parts.path) == ("http", "box:8501", "/app/")
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query[state.RUN_PARAM] == "my-run" and query[state.APP_VIEW] == "Latent sliders"
    z = np.array(query[state.Z_PARAM].split(","), dtype=np.float32)
    assert z.tobytes() == _view().z32.tobytes()
    assert reproduce.url(None, _view()).startswith("http://localhost:8501/?run=my-run")


def test_state_json_holds_the_view_and_the_image_digest() -> None:
    image = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    data = json.loads(reproduce.state_json(_view(), image))
    assert data["run"] == "my-run" and data["snapshot_version"] == 7
    assert data["slider_order"] == [2, 0, 1] and data["projection"] == "PCA"
    assert data["seed"] == 4 and data["image_shape"] == [2, 2, 3]
    assert np.array(data["z"], dtype=np.float32).tobytes() == _view().z32.tobytes()
    assert data["image_sha256"] == hashlib.sha256(image.tobytes()).hexdigest()


def test_snippet_is_five_lines_and_z_npy_loads_back() -> None:
    snippet = reproduce.python_snippet(_view(run_dir="/runs/it's here"))
    assert len(snippet.strip().splitlines()) == 5
    assert 'RunDir("/runs/it\'s here")' in snippet
    z = np.load(io.BytesIO(reproduce.z_npy([0.5, -2.0])))
    assert z.dtype == np.float32 and z.tolist() == [0.5, -2.0]


def _sliders_app(app_path: str, run: str, z_param: str | None = None) -> AppTest:
    at = AppTest.from_file(app_path, default_timeout=60)
    at.session_state[state.SLIDERS_LIVE] = False  # server-side sliders and image
    at.session_state[state.APP_VIEW] = "Latent sliders"
    at.query_params[state.RUN_PARAM] = run
    if z_param is not None:
        at.query_params[state.Z_PARAM] = z_param
    return at.run()


def _decoded_image_urls(at: AppTest) -> list[str]:
    return [
        img.url
        for element in at.get("image")
        for img in element.proto.imgs
        if img.caption.startswith("decoded")
    ]


def _png_url(png: bytes) -> str:
    """The media URL st.image gives these PNG bytes (the id hashes the bytes)."""
    from streamlit.runtime.memory_media_file_storage import _calculate_file_id

    return f"/mock/media/{_calculate_file_id(png, 'image/png')}.png"


def test_copy_state_snippet_regenerates_the_apps_image_bit_for_bit(
    app_path, runs_root, run_name
) -> None:
    at = _sliders_app(app_path, run_name)
    slider = next(s for s in at.slider if s.key == state.slider_key(0))
    slider.set_value(1.35).run()
    assert not at.exception
    code = {c.language: c.value for c in at.code}
    view = json.loads(code["json"])
    z = at.session_state[state.SLIDERS_Z]
    assert view["z"][0] == pytest.approx(1.35) and len(view["z"]) == len(z)
    assert view["slider_order"] == list(at.session_state[state.SLIDERS_ORDER])

    result = subprocess.run(
        [sys.executable, "-c", SNIPPET_RUNNER],
        input=code["python"].encode(),
        capture_output=True,
        timeout=120,
        check=True,
    )
    image = np.frombuffer(result.stdout, np.uint8).reshape(view["image_shape"])
    assert hashlib.sha256(image.tobytes()).hexdigest() == view["image_sha256"]
    # ...and it is the very image the page shows (same PNG bytes, hence the same media URL)
    assert _png_url(images.png_bytes(image, sliders.IMAGE_PX)) in _decoded_image_urls(at)
    labels = [d.proto.label for d in at.get("download_button")]
    assert "Download z.npy" in labels


def test_copy_state_url_reopens_the_same_point(app_path, runs_root, run_name) -> None:
    at = _sliders_app(app_path, run_name)
    next(s for s in at.slider if s.key == state.slider_key(1)).set_value(-2.2).run()
    link = next(c.value for c in at.code if c.value.startswith("http"))
    query = {k: v[0] for k, v in parse_qs(urlsplit(link).query).items()}
    assert query[state.APP_VIEW] == "Latent sliders"

    other = _sliders_app(app_path, query[state.RUN_PARAM], query[state.Z_PARAM])
    assert not other.exception
    assert other.session_state[state.SLIDERS_Z] == pytest.approx(at.session_state[state.SLIDERS_Z])
    assert other.query_params[state.Z_PARAM] == query[state.Z_PARAM]  # kept in the address
    assert _decoded_image_urls(other) == _decoded_image_urls(at)
    next(s for s in other.slider if s.key == state.slider_key(0)).set_value(0.5).run()
    moved = [float(v) for v in other.query_params[state.Z_PARAM].split(",")]
    assert moved == pytest.approx(other.session_state[state.SLIDERS_Z])  # it follows the point
    assert moved[0] == pytest.approx(0.5) and moved[1] == pytest.approx(-2.2)
    reload = _sliders_app(app_path, query[state.RUN_PARAM], other.query_params[state.Z_PARAM])
    assert reload.session_state[state.SLIDERS_Z] == pytest.approx(moved)  # a reload keeps it


@pytest.mark.parametrize("bad", ["1,2", "a,b,c,d,e", "nan,0,0,0,0", ""])
def test_a_malformed_z_in_the_url_starts_at_zero(app_path, runs_root, run_name, bad) -> None:
    at = _sliders_app(app_path, run_name, bad)
    assert not at.exception
    assert all(v == 0 for v in at.session_state[state.SLIDERS_Z])
