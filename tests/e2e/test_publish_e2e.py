"""The published page in Chromium, opened from file:// with every network request blocked:
dragging a slider redraws the image during the drag, the keyboard moves a slider, clicking a
scatter point loads its code, two clicks make the interpolation strip, reseed redraws the
prior grid, and the page fits 375 px without errors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import Page

from vae_core.config import ModelConfig, TrainConfig
from vae_core.publish import build_page
from vae_core.rundir import RunDir
from vae_core.train import train

pytestmark = pytest.mark.e2e
PRIOR_GRID = "[...document.querySelectorAll('#prior-grid canvas')].map(c => c.toDataURL())"
SHOTS = os.environ.get("PUBLISH_SHOTS")  # a folder to keep the screenshots in, to look at


@pytest.fixture(scope="module")
def page_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The page of a finished 1-epoch MLP run on 28px shapes (a few seconds)."""
    root = tmp_path_factory.mktemp("publish")
    model_config = ModelConfig(image_shape=(1, 28, 28), latent_dim=5, hidden_dim=64)
    options = {"image_size": 28, "num_samples": 512}
    train_config = TrainConfig(
        dataset="shapes", dataset_options=options, epochs=1, batch_size=64, num_threads=1
    )
    train(model_config, train_config, RunDir(root / "shapes-run"))
    out = root / "page.html"
    out.write_bytes(build_page(RunDir(root / "shapes-run")).html)
    return out


def open_offline(browser, page_file: Path, width: int) -> tuple[Page, list[str], list[str]]:
    """The page at `width` px, any request but file: aborted; (page, errors, blocked)."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    errors: list[str] = []
    blocked: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    def only_files(route) -> None:
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page.route("**/*", only_files)
    page.goto(page_file.as_uri())
    page.wait_for_function("window.vaePage && vaePage.ready && vaePage.firstDecodeMs !== null")
    return page, errors, blocked


def decoded(page: Page) -> str:
    return page.evaluate("document.getElementById('decoded').toDataURL()")


def test_dragging_a_slider_redraws_the_image_during_the_drag(browser, page_file):
    page, errors, blocked = open_offline(browser, page_file, 1280)
    slider = page.locator("#sliders input[type=range]").first
    box = slider.bounding_box()
    y = box["y"] + box["height"] / 2
    x = box["x"] + box["width"] / 2  # the thumb starts at 0, the middle of -3..3
    page.mouse.move(x, y)
    page.mouse.down()
    images, decodes = [decoded(page)], [page.evaluate("vaePage.decodes")]
    for step in range(1, 6):
        page.mouse.move(x + step * box["width"] / 12, y, steps=2)
        page.wait_for_timeout(60)  # a frame: the decode runs in requestAnimationFrame
        images.append(decoded(page))
        decodes.append(page.evaluate("vaePage.decodes"))
    assert float(slider.input_value()) > 0.5  # still held: the button is not released yet
    page.mouse.up()
    assert len(set(images)) >= 4, "the image did not follow the drag"
    assert decodes == sorted(decodes) and decodes[-1] >= decodes[0] + 4
    # the keyboard moves it too (a native <input type=range>)
    before, value = decoded(page), float(slider.input_value())
    slider.focus()
    page.keyboard.press("ArrowLeft")
    page.wait_for_timeout(60)
    assert float(slider.input_value()) < value and decoded(page) != before
    assert errors == [] and blocked == []
    page.close()


def test_clicking_points_loads_codes_and_interpolates(browser, page_file):
    page, errors, blocked = open_offline(browser, page_file, 1280)
    page.locator("#scatter").scroll_into_view_if_needed()
    codes = np.array(
        page.evaluate("""() => {
        const P = JSON.parse(document.getElementById('payload').textContent);
        const b = atob(P.mu_b64), u = new Uint8Array(b.length);
        for (let i = 0; i < b.length; i++) u[i] = b.charCodeAt(i);
        return Array.from(new Float32Array(u.buffer));
    }""")
    ).reshape(-1, 5)
    x, y = page.evaluate("vaePage.pointOnScreen(3)")
    page.mouse.move(x, y)
    assert page.locator("#tooltip").is_visible()  # hovering shows the image
    page.mouse.click(x, y)
    clicked = page.evaluate("vaePage.code()")
    # the nearest point to 3's position is 3, or one drawn on top of it
    matches = np.abs(codes - np.array(clicked)).max(1) < 1e-6
    assert matches.any() and np.abs(codes[3] - codes[matches][0]).max() < 0.5
    sliders = page.locator("#sliders input[type=range]")
    values = [float(sliders.nth(i).input_value()) for i in range(sliders.count())]
    assert any(abs(v) > 0.05 for v in values), "the sliders did not move"
    assert page.locator("#strip canvas").count() == 0
    x, y = page.evaluate("vaePage.pointOnScreen(40)")
    page.mouse.click(x, y)
    assert page.locator("#strip canvas").count() == 8  # the default steps
    grid = page.evaluate(PRIOR_GRID)
    page.click("#reseed")
    again = page.evaluate(PRIOR_GRID)
    assert len(grid) == len(again) == 16 and grid != again
    assert errors == [] and blocked == []
    page.close()


@pytest.mark.parametrize("width", [375, 1280])
def test_the_page_fits_the_width(browser, page_file, tmp_path, width):
    page, errors, blocked = open_offline(browser, page_file, width)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    for box in (page.locator(s).bounding_box() for s in ("#decoded", "#scatter", "#sliders")):
        assert box["x"] >= 0 and box["x"] + box["width"] <= width
    shots = Path(SHOTS) if SHOTS else tmp_path
    page.screenshot(path=str(shots / f"publish-{width}.png"), full_page=True)
    assert errors == [] and blocked == []
    page.close()
