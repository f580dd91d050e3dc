"""Live-drag sliders in headless Chromium: the image follows the thumb before the mouse is released.

Starts `tests/e2e/live_sliders_app.py` under `streamlit run` and drives it with Playwright.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools import devserver

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.e2e

APP = Path(__file__).with_name("live_sliders_app.py")
SCREENSHOTS = Path(__file__).with_name("screenshots")
LATENT_DIM = 8


@pytest.fixture(scope="module")
def app_url() -> Iterator[str]:
    with devserver.serve(APP, args=("mlp", str(LATENT_DIM))) as url:
        yield url


def _open(browser, url: str):
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    page = context.new_page()
    page.received_bytes = []  # sizes of the websocket frames from the server, in order
    page.on(
        "websocket",
        lambda ws: ws.on("framereceived", lambda data: page.received_bytes.append(len(data))),
    )
    page.goto(url)
    return context, page


@pytest.fixture
def page(browser, app_url: str):
    context, page = _open(browser, app_url)
    yield page
    context.close()


def _snapshot(frame) -> dict:
    """Canvas pixels and counters once no decode is pending (decodes are asynchronous)."""
    return frame.evaluate("""() => new Promise((resolve) => {
        const check = () => window.__liveSlidersIdle() ? resolve({
            image: document.getElementById('image').toDataURL(),
            ...window.__liveSlidersStats,
        }) : requestAnimationFrame(check);
        requestAnimationFrame(check);
    })""")


def _reported_z(page) -> list[float]:
    text = page.get_by_text(re.compile(r"^reported z:")).inner_text()
    return [float(v) for v in re.findall(r"-?\d+\.\d+", text)]


def _wait_reported(page, dim: int, predicate) -> list[float]:
    deadline = time.monotonic() + 15
    while not predicate((z := _reported_z(page))[dim]):
        assert time.monotonic() < deadline, f"Python never saw z{dim} change; has {z}"
        page.wait_for_timeout(100)
    return z


def test_image_follows_a_mouse_drag_and_release_reports_the_slider_position(page) -> None:
    frame = devserver.live_sliders_frame(page)
    slider = frame.locator("#z0")
    box = slider.bounding_box()  # main-page coordinates
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2  # z = 0: the middle
    before = _snapshot(frame)

    page.mouse.move(x, y)
    page.mouse.down()
    images = []
    for i in range(1, 21):
        page.mouse.move(x + 0.35 * box["width"] * i / 20, y)
        if i % 5 == 0:
            images.append(_snapshot(frame))
    during = _snapshot(frame)
    assert _reported_z(page)[0] == 0.0  # Python has heard nothing yet: this is browser-side
    assert during["reports"] == before["reports"]
    page.mouse.up()

    assert during["frames"] >= before["frames"] + 4  # decoded again and again while dragging
    assert len({before["image"], *(s["image"] for s in images)}) == 5  # a new image every time
    position = float(slider.input_value())
    assert 0.5 < position <= 3.0
    reported = _wait_reported(page, 0, lambda v: v != 0.0)
    assert reported[0] == pytest.approx(position, abs=0.01)
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "live_sliders.png")


def test_weights_cross_the_websocket_once_not_on_every_rerun(page) -> None:
    frame = devserver.live_sliders_frame(page)
    first_load = sum(page.received_bytes)
    assert first_load > 4 * 784 * 400  # the float32 weights came with the first render
    slider = frame.locator("#z1")
    for _ in range(3):
        slider.press("ArrowRight")  # each step reruns the script
    _wait_reported(page, 1, lambda v: v == pytest.approx(0.03))
    assert sum(page.received_bytes) - first_load < 100_000
    assert _snapshot(frame)["weightsLoads"] == 1


def test_sliders_are_labelled_and_reachable_with_tab_and_arrow_keys(page) -> None:
    frame = devserver.live_sliders_frame(page)
    first = frame.locator("#z0")
    assert first.get_attribute("aria-label") == "latent dimension 0, KL 2.00 nats"
    assert "inactive" in frame.locator("#z3").get_attribute("aria-label")
    first.focus()
    page.keyboard.press("Tab")
    assert frame.evaluate("document.activeElement.id") == "z1"  # next in KL order
    before = _snapshot(frame)["image"]
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    assert _snapshot(frame)["image"] != before
    assert _wait_reported(page, 1, lambda v: v != 0.0)[1] == pytest.approx(-0.02)


def test_python_can_move_the_sliders_back(page) -> None:
    frame = devserver.live_sliders_frame(page)
    start = _snapshot(frame)["image"]
    frame.locator("#z2").press("PageUp")  # a large step
    _wait_reported(page, 2, lambda v: v != 0.0)
    assert _snapshot(frame)["image"] != start
    page.get_by_role("button", name="Reset").click()
    frame.wait_for_function("document.getElementById('z2').value === '0'")
    assert _snapshot(frame)["image"] == start


def test_a_remounted_component_asks_for_the_weights_again(page) -> None:
    devserver.live_sliders_frame(page)
    hide = page.get_by_text("Hide sliders")
    hide.click()
    page.wait_for_function("document.querySelectorAll('iframe').length === 0")
    hide.click()
    frame = devserver.live_sliders_frame(page)  # a fresh iframe that decoded again
    stats = _snapshot(frame)
    assert stats["weightsRequests"] == 1
    assert stats["weightsLoads"] == 1


def test_colour_conv_decoder_draws_and_follows_the_keyboard(browser) -> None:
    with devserver.serve(APP, args=("conv-rgb", "4")) as url:
        context, page = _open(browser, url)
        try:
            frame = devserver.live_sliders_frame(page)
            before = _snapshot(frame)
            assert frame.evaluate(
                "[document.getElementById('image').width, document.getElementById('image').height]"
            ) == [32, 32]
            frame.locator("#z0").press("PageUp")
            after = _snapshot(frame)
            assert after["image"] != before["image"]
            _wait_reported(page, 0, lambda v: v != 0.0)
            page.screenshot(path=SCREENSHOTS / "live_sliders_rgb.png")
        finally:
            context.close()


def _displayed_order(frame) -> list[int]:
    return frame.evaluate("[...document.querySelectorAll('.dim')].map(b => Number(b.dataset.dim))")


def _python_order(page) -> list[int]:
    text = page.get_by_text(re.compile(r"^order:")).inner_text()
    return [int(v) for v in re.findall(r"\d+", text)]


def test_a_new_order_waits_while_a_slider_has_focus(page, checks) -> None:
    frame = devserver.live_sliders_frame(page)
    page.get_by_text("Rotate the order on every run").click()
    frame.wait_for_function(f"document.querySelector('.dim').dataset.dim !== '{0}'")
    # Applied: nobody is on a slider. (The page's "order:" line may land a moment after.)
    deadline = time.monotonic() + 30
    while _displayed_order(frame) != _python_order(page):
        assert time.monotonic() < deadline, (_displayed_order(frame), _python_order(page))
        page.wait_for_timeout(100)
    held = _displayed_order(frame)
    slider = frame.locator("#z1")
    slider.focus()
    for _ in range(3):  # each step reruns the script, which sends a rotated order
        page.keyboard.press("ArrowRight")
    _wait_reported(page, 1, lambda v: v == pytest.approx(0.03))
    assert frame.evaluate("document.activeElement.id") == "z1"  # focus kept
    assert _displayed_order(frame) == held  # the sliders did not move under the keys
    assert _python_order(page) != held
    frame.evaluate("document.activeElement.blur()")  # the user leaves the sliders
    frame.wait_for_function("document.activeElement === document.body")
    checks.idle(page)
    expected = _python_order(page)
    frame.wait_for_function(  # the held-back order lands once focus has settled
        "expected => [...document.querySelectorAll('.dim')].map(b => Number(b.dataset.dim))"
        ".join() === expected.join()",
        arg=expected,
    )


def test_quick_key_presses_are_not_undone_by_earlier_reruns(page, checks) -> None:
    frame = devserver.live_sliders_frame(page)
    slider = frame.locator("#z2")
    slider.focus()
    for _ in range(15):  # faster than the reruns they cause
        page.keyboard.press("ArrowRight")
    assert _wait_reported(page, 2, lambda v: v >= 0.15)[2] == pytest.approx(0.15)
    checks.idle(page)  # the reruns still in flight have arrived
    assert float(slider.input_value()) == pytest.approx(0.15)
    assert _reported_z(page)[2] == pytest.approx(0.15)


def test_a_large_latent_folds_the_lower_kl_dimensions_away(browser) -> None:
    with devserver.serve(APP, args=("mlp", "20", "8")) as url:
        context, page = _open(browser, url)
        try:
            frame = devserver.live_sliders_frame(page)
            top = frame.locator("#sliders .dim")
            assert top.count() == 8 and frame.locator("#more-sliders .dim").count() == 12
            assert frame.locator("#more summary").inner_text() == "12 more dimensions (lower KL)"
            folded = frame.locator("#more-sliders input").first
            assert not folded.is_visible()
            frame.locator("#more summary").click()
            assert folded.is_visible()
            dim = int(folded.get_attribute("id")[1:])
            folded.press("PageUp")
            assert _wait_reported(page, dim, lambda v: v != 0.0)[dim] > 0
        finally:
            context.close()
