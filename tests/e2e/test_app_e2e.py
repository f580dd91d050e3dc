"""The explorer end to end in headless Chromium: start a short shapes run from the sidebar,
watch the readouts move, step a slider, select a scatter point, build an interpolation.

Runs `streamlit run explorer/app.py` with VAE_EXPLORER_RUNS in a temp folder; the server
and every trainer it started are killed afterwards. Screenshots go to tests/e2e/screenshots/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools import devserver

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.e2e

TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def app_url(runs_root: Path) -> Iterator[str]:
    with devserver.serve("explorer/app.py", env={"VAE_EXPLORER_RUNS": str(runs_root)}) as url:
        yield url


@pytest.fixture(scope="module")
def page(app_url: str) -> Iterator[object]:
    with devserver.chromium_page(app_url, height=1000, timeout_ms=TIMEOUT_MS) as page:
        yield page


def _start_shapes_run(page) -> None:
    page.get_by_text("Pick a dataset and a model").wait_for()
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_test_id("stSelectbox").filter(has_text="Dataset").click()
    page.get_by_role("option", name="Shapes (generated, dSprites-like)").click()
    for label, value in (("Shapes: images", "2048"), ("Epochs", "500"), ("Latent size", "6")):
        field = sidebar.get_by_role("spinbutton", name=label)
        field.fill(value)
        field.press("Tab")
    sidebar.get_by_role("button", name="Start", exact=True).click()


def _view(page, name: str):
    """The view selector's button for `name`."""
    return page.get_by_test_id("stButtonGroup").get_by_text(name, exact=True)


def _decoded_src(page) -> str:
    return (
        page.get_by_test_id("stImage")
        .filter(has_text="decoded")
        .locator("img")
        .get_attribute("src")
    )


def _canvas(frame) -> str:
    return frame.evaluate("document.getElementById('image').toDataURL()")


def _click_first_scatter_point(page) -> None:
    """Click a data point: plotly's own axes map its data coordinates to page pixels."""
    plot = page.locator(".js-plotly-plot:visible").first
    plot.wait_for()
    x, y = plot.evaluate(
        """gd => {
            const L = gd._fullLayout, t = gd._fullData[0];
            return [L._size.l + L.xaxis.d2p(t.x[0]), L._size.t + L.yaxis.d2p(t.y[0])];
        }"""
    )
    box = plot.bounding_box()
    page.mouse.click(box["x"] + x, box["y"] + y)


def test_train_slide_select_interpolate(page, checks) -> None:
    _start_shapes_run(page)
    # -- readouts move while the run trains in the background (in the live charts' frame) --
    frame = devserver.live_charts_frame(page)
    step = '#readouts .readout[data-label="Step"] strong'
    frame.wait_for_function(
        f"() => /^[1-9]/.test(document.querySelector('{step}')?.textContent || '')",
        timeout=TIMEOUT_MS,
    )
    first = frame.locator(step).inner_text()
    frame.wait_for_function(  # the readout refreshes every second
        f"v => document.querySelector('{step}').textContent !== v", arg=first, timeout=30_000
    )
    checks.shot(page, "training")
    checks.no_exception(page)

    # -- live drag: a keyboard step in the browser-side sliders redraws the canvas --
    _view(page, "Latent sliders").click()
    frame = devserver.live_sliders_frame(page)
    before = _canvas(frame)
    frame.locator("input[type=range]").first.focus()
    for _ in range(30):
        frame.page.keyboard.press("ArrowRight")
    frame.wait_for_function(
        "src => document.getElementById('image').toDataURL() !== src", arg=before
    )
    checks.shot(page, "sliders_live")
    checks.no_exception(page)

    # -- the server-side fallback: st.slider step -> new decoded image --
    page.get_by_test_id("stMain").get_by_text("Live drag", exact=True).click()
    page.get_by_test_id("stImage").filter(has_text="decoded").wait_for()
    before = _decoded_src(page)
    page.get_by_role("slider").first.focus()
    for _ in range(10):
        page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "src => [...document.querySelectorAll('[data-testid=\"stImage\"]')].some("
        "e => e.innerText.includes('decoded') && e.querySelector('img').src !== src)",
        arg=page.evaluate("s => new URL(s, location.href).href", before),
    )
    checks.shot(page, "sliders")
    checks.no_exception(page)

    # -- selecting a scatter point shows the image and its reconstruction --
    _view(page, "Scatter").click()
    checks.idle(page)
    _click_first_scatter_point(page)
    page.get_by_text("Test image #").wait_for()
    page.get_by_test_id("stImage").filter(
        has=page.get_by_text("reconstruction", exact=True)
    ).wait_for()
    checks.shot(page, "scatter")
    checks.no_exception(page)

    # -- t-SNE on demand: computed in the background, then it replaces PCA --
    page.get_by_test_id("stMain").get_by_test_id("stButtonGroup").get_by_text("t-SNE").click()
    page.get_by_text(re.compile(r"\(t-SNE\); click a point")).wait_for(timeout=TIMEOUT_MS)
    checks.idle(page)
    checks.shot(page, "scatter_tsne")
    checks.no_exception(page)

    # -- an interpolation from the selected point to a prior sample --
    _view(page, "Interpolation").click()
    panel = page.get_by_test_id("stMain")
    panel.get_by_text("Selected point").first.click()
    checks.idle(page)
    panel.get_by_text("Prior sample").nth(1).click()
    checks.idle(page)
    panel.get_by_test_id("stImage").filter(has_text="A → B").wait_for()
    assert panel.get_by_role("button", name="Download GIF").is_visible()
    checks.shot(page, "interpolation")
    checks.no_exception(page)

    stop = page.get_by_test_id("stSidebar").get_by_role("button", name="Stop", exact=True)
    if stop.is_enabled():
        stop.click()
        checks.idle(page)
