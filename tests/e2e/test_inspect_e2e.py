"""Inspect image and Disentanglement in headless Chromium: upload a PNG, draw a stroke on the
canvas, see the point land on the scatter, refuse a bad file, click a cell of the MI heat map.

A tiny finished shapes run is trained in-process first; `streamlit run explorer/app.py`
opens it by URL. Prints the time from upload to the point on the scatter; screenshots go to
tests/e2e/screenshots/inspect_*.png.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from explorer import devserver

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.e2e

SCREENSHOTS = Path(__file__).with_name("screenshots")
TIMEOUT_MS = 60_000
RUN = "inspect-shapes"
CANVAS_URL = re.compile(r"draw_canvas/index\.html")
OWN_POINT = """() => {
    for (const gd of document.querySelectorAll('.js-plotly-plot'))
        for (const t of gd._fullData || []) if (t.name === 'your image') return [t.x[0], t.y[0]];
    return null;
}"""
HAS_OWN_POINT = """() => [...document.querySelectorAll('.js-plotly-plot')].some(
    gd => (gd.data || []).some(t => t.name === 'your image'))"""


@pytest.fixture(scope="module")
def app_url(runs_root: Path, train_shapes_run) -> Iterator[str]:
    train_shapes_run(runs_root / RUN, latent_dim=4, num_samples=3000, epochs=3)
    with devserver.serve("explorer/app.py", env={"VAE_EXPLORER_RUNS": str(runs_root)}) as url:
        yield url


@pytest.fixture(scope="module")
def page(app_url: str) -> Iterator[object]:
    with devserver.chromium_page(
        f"{app_url}/?run={RUN}&view=Inspect+image", height=2000, timeout_ms=TIMEOUT_MS
    ) as page:
        yield page


def _shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"inspect_{name}.png"), full_page=True)


def _idle(page) -> None:
    """Wait until the script run triggered by the last action has finished."""
    page.wait_for_timeout(300)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=TIMEOUT_MS
    )


def _no_exception(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0


def _button_group(page, name: str):
    return page.get_by_test_id("stButtonGroup").get_by_text(name, exact=True)


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _a_square() -> bytes:
    """A 120 x 90 RGB image of a white square on black: converted and resized on upload."""
    pixels = np.zeros((90, 120, 3), np.uint8)
    pixels[25:65, 40:80] = 255
    return _png(pixels)


def _draw_stroke(page) -> None:
    frame = None
    deadline = time.monotonic() + 30
    while (frame := page.frame(url=CANVAS_URL)) is None:
        assert time.monotonic() < deadline, "the drawing canvas never appeared"
        page.wait_for_timeout(100)
    pad = frame.locator("#pad")
    pad.wait_for()
    box = pad.bounding_box()  # page coordinates, iframe offset included
    x0, y0, w = box["x"], box["y"], box["width"]
    page.mouse.move(x0 + 0.3 * w, y0 + 0.2 * w)
    page.mouse.down()
    for t in np.linspace(0, 1, 12):  # a "7": across, then down to the left
        page.mouse.move(x0 + (0.3 + 0.4 * t) * w, y0 + 0.2 * w)
    for t in np.linspace(0, 1, 12):
        page.mouse.move(x0 + (0.7 - 0.25 * t) * w, y0 + (0.2 + 0.6 * t) * w)
    page.mouse.up()


def test_upload_draw_and_see_it_on_the_scatter(page) -> None:
    page.get_by_text("Test image #0").wait_for()
    _idle(page)
    _shot(page, "test_image")
    _no_exception(page)

    _button_group(page, "Your own image").click()
    uploader = page.locator('[data-testid="stFileUploader"] input[type=file]')
    uploader.wait_for(state="attached")
    start = time.perf_counter()
    uploader.set_input_files(files=[{"name": "square.png", "mimeType": "image/png",
                                     "buffer": _a_square()}])  # fmt: skip
    page.wait_for_function(HAS_OWN_POINT, timeout=TIMEOUT_MS)
    elapsed = time.perf_counter() - start
    print(f"\nupload -> point on the scatter: {elapsed * 1000:.0f} ms")
    page.get_by_text("converted RGB → grayscale to match the run's 1 channel").wait_for()
    _idle(page)
    _shot(page, "upload")
    _no_exception(page)

    before = page.evaluate(OWN_POINT)
    _draw_stroke(page)
    start = time.perf_counter()  # from the pen lifting
    page.wait_for_function(
        f"p => JSON.stringify(({OWN_POINT})()) !== JSON.stringify(p)", arg=before
    )
    page.get_by_text("Your drawing, snapshot").wait_for()
    print(f"stroke end -> point on the scatter: {(time.perf_counter() - start) * 1000:.0f} ms")
    _idle(page)
    _shot(page, "drawing")
    _no_exception(page)

    _button_group(page, "Scatter").click()
    page.wait_for_function(HAS_OWN_POINT, timeout=TIMEOUT_MS)
    _idle(page)
    _shot(page, "scatter")
    _no_exception(page)


def test_a_bad_upload_shows_one_message(page) -> None:
    _button_group(page, "Inspect image").click()
    _idle(page)
    _button_group(page, "Your own image").click()
    uploader = page.locator('[data-testid="stFileUploader"] input[type=file]')
    uploader.set_input_files(files=[{"name": "fake.png", "mimeType": "image/png",
                                     "buffer": b"not an image at all"}])  # fmt: skip
    page.get_by_text("this file is not an image").wait_for()
    _idle(page)
    assert page.get_by_test_id("stAlertContentError").count() == 1
    assert page.evaluate(HAS_OWN_POINT) is False  # nothing else drawn
    _no_exception(page)


def test_a_click_on_the_mi_heat_map_opens_that_dimension(page) -> None:
    _button_group(page, "Disentanglement").click()
    page.get_by_role("button", name="Compute MIG").click()
    page.get_by_test_id("stMetric").filter(has_text="MIG").first.wait_for()
    _idle(page)
    _shot(page, "disentanglement")
    plot = page.locator(".js-plotly-plot:visible").first
    x, y = plot.evaluate(
        """gd => {
            const L = gd._fullLayout, t = gd._fullData[1];
            return [L._size.l + L.xaxis.d2p(t.x[2]), L._size.t + L.yaxis.d2p(t.y[2])];
        }"""
    )  # the cell of z2, first factor
    box = plot.bounding_box()
    page.mouse.click(box["x"] + x, box["y"] + y)
    page.get_by_text("rows: z2").wait_for()
    _idle(page)
    _shot(page, "sliders_from_heatmap")
    _no_exception(page)
