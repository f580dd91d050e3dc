"""Live drag on ONNX Runtime Web in headless Chromium: what the browser decodes matches
PyTorch for built-in and imported decoders, a snapshot published mid-drag is swapped in with
no blank or stale frame, and a model the browser rejects (or a page without the route its
runtime comes from) falls back to server-side sliders.

Starts `tests/e2e/live_sliders_app.py` under `streamlit run` and drives it with Playwright.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from tools import devserver

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.e2e

APP = Path(__file__).with_name("live_sliders_app.py")
PARITY_DECODERS = ("mlp", "conv-rgb", "groupnorm", "big")


@pytest.fixture(scope="module")
def parity_url() -> Iterator[str]:
    with devserver.serve(APP, args=("mlp", "20")) as url:
        yield url


def _open(browser, url: str):
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    page = context.new_page()
    page.set_default_timeout(120_000)  # a shared, loaded test machine
    page.goto(url)
    return context, page


def _torch_images(model, z: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model.decoded_to_image(model.decode(torch.from_numpy(z))).numpy()


@pytest.mark.parametrize("name", PARITY_DECODERS)
def test_the_browser_decodes_like_pytorch_within_1e_4(
    browser, parity_url: str, live_models, name: str
) -> None:
    latent_dim, shape = live_models.SHAPES[name]
    z = np.random.default_rng(7).normal(0, 1.5, (5, latent_dim)).astype(np.float32)
    expected = _torch_images(live_models.build(name), z)
    assert expected.std() > 0.05  # images that vary: matching them means something
    context, page = _open(browser, f"{parity_url}/?decoder={name}")
    try:
        frame = devserver.live_sliders_frame(page, timeout_s=120)
        assert frame.evaluate("window.__liveSlidersStats.backend") == "onnxruntime-web"
        flat = frame.evaluate("(z) => window.__liveSlidersDecode(z)", z.tolist())  # batch of 5
        actual = np.asarray(flat, dtype=np.float32).reshape(5, *shape)
        assert np.abs(actual - expected).max() <= 1e-4
    finally:
        context.close()


# Every animation frame, whether the canvas shows nothing (never drawn, or cleared).
RECORD_BLANKS = """() => {
  window.__blank = [];
  const canvas = document.getElementById("image");
  const tick = () => {
    const { data } = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
    let drawn = false;
    for (let i = 3; i < data.length && !drawn; i += 4) drawn = data[i] !== 0;
    window.__blank.push(!drawn);
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}"""

CANVAS_PIXELS = """() => {
  const canvas = document.getElementById("image");
  return Array.from(canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data);
}"""


class _Drag:
    """A held thumb that moves a little further right on every step, from the slider's middle
    (z = 0) to 40% of its width beyond it."""

    def __init__(self, page, frame, slider: str) -> None:
        self.page, self.frame = page, frame
        box = frame.locator(slider).bounding_box()
        self.x, self.y, self.width = (
            box["x"] + box["width"] / 2,
            box["y"] + box["height"] / 2,
            box["width"],
        )
        self.steps = 0
        page.mouse.move(self.x, self.y)
        page.mouse.down()

    def until(self, condition: str, min_steps: int = 0) -> None:
        """Keep moving (20 moves a second) until the JS `condition` holds in the frame and
        the thumb has made at least `min_steps` moves."""
        deadline = time.monotonic() + 60
        while self.steps < min_steps or not self.frame.evaluate(condition):
            assert time.monotonic() < deadline, f"still not {condition}"
            self.steps += 1
            self.page.mouse.move(self.x + min(0.4, 0.004 * self.steps) * self.width, self.y)
            self.page.wait_for_timeout(50)


def test_a_snapshot_published_mid_drag_swaps_in_without_a_blank_or_stale_frame(
    browser, live_models, tmp_path
) -> None:
    version_file = tmp_path / "version"
    version_file.write_text("1")
    env = {"LIVE_DRAG_VERSION_FILE": str(version_file)}
    with devserver.serve(APP, env=env, args=("mlp", "8")) as url:
        context, page = _open(browser, url)
        try:
            frame = devserver.live_sliders_frame(page, timeout_s=120)
            frame.evaluate(RECORD_BLANKS)
            drag = _Drag(page, frame, "#z0")
            drag.until("window.__liveSlidersStats.frames > 5")
            version_file.write_text("2")  # the trainer publishes while the thumb is held
            drag.until("window.__liveSlidersStats.swaps === 1")
            frames_at_swap = frame.evaluate("window.__liveSlidersStats.frames")
            # On: the swap can land before the thumb has moved at all.
            drag.until(f"window.__liveSlidersStats.frames > {frames_at_swap + 3}", min_steps=10)
            page.mouse.up()
            stats = frame.evaluate("({...window.__liveSlidersStats})")
            z = np.asarray(
                [[float(frame.locator(f"#z{d}").input_value()) for d in range(8)]], np.float32
            )
            shown = np.asarray(frame.evaluate(CANVAS_PIXELS), np.float64).reshape(28, 28, 4)
            blanks = frame.evaluate("window.__blank")
        finally:
            context.close()
    assert stats["version"] == "2" and stats["weightsLoads"] == 2 and stats["blankFrames"] == 0
    assert len(blanks) > 10 and not any(blanks)  # the old image stayed up while v2 loaded
    assert z[0, 0] > 0.05  # the thumb did move
    newer = np.round(255 * _torch_images(live_models.build("mlp", 8, version=2), z)[0, 0])
    older = np.round(255 * _torch_images(live_models.build("mlp", 8, version=1), z)[0, 0])
    assert np.abs(shown[..., 0] - newer).max() <= 1  # the new weights at the thumb's z...
    assert np.abs(shown[..., 0] - older).mean() > 10  # ...not the old ones


def _fallback_line(browser, script: Path, args: tuple[str, ...]) -> str:
    """The line a page that cannot decode in the browser shows, once its server-side sliders
    are drawn in place of the component."""
    with devserver.serve(script, args=args) as url:
        context, page = _open(browser, url)
        try:
            line = page.get_by_text("Live drag is off: the browser cannot run this decoder")
            line.wait_for(timeout=120_000)
            # The same rerun draws the server's sliders after the line: wait, not peek.
            page.get_by_text("z0 (server-side)").wait_for(timeout=60_000)
            page.wait_for_function("document.querySelectorAll('iframe').length === 0")
            return line.inner_text()
        finally:
            context.close()


def test_a_model_the_browser_rejects_falls_back_to_server_sliders_with_the_reason(
    browser,
) -> None:
    line = _fallback_line(browser, APP, ("unsupported", "4"))
    assert "org.example.missing:NoSuchOp(-1) is not a registered" in line


def test_a_page_served_without_the_wasm_route_falls_back_and_says_how_to_serve_it(
    browser,
) -> None:
    # The page script alone, not the st.App around it that adds explorer.ort_files' route.
    line = _fallback_line(browser, APP.with_name("live_sliders_page.py"), ("mlp", "4"))
    assert "streamlit run explorer/app.py" in line
