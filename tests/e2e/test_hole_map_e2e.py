"""The prior-hole map in headless Chromium, on a 2-D latent trained on shapes: log q - log p
shades the scatter's plane, and the sliders' point gets an on / off-manifold badge.
"""

from __future__ import annotations

import pytest

from tools import devserver

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.e2e

TIMEOUT_MS = 60_000
HAS_HEATMAP = """() => [...document.querySelectorAll('.js-plotly-plot')]
    .some(gd => gd._fullData && gd._fullData[0].type === 'heatmap')"""


def test_the_hole_map_shades_the_scatter_and_badges_the_point(two_d_run_url, checks) -> None:
    url = f"{two_d_run_url}&view=Latent+sliders"  # the sliders give the session its point
    with devserver.chromium_page(url, height=1000, timeout_ms=TIMEOUT_MS) as page:
        main = page.get_by_test_id("stMain")
        devserver.live_sliders_frame(page)
        page.get_by_test_id("stButtonGroup").get_by_text("Scatter", exact=True).click()
        toggle = main.get_by_text("Prior-hole map", exact=True)
        toggle.wait_for()
        checks.idle(page)
        toggle.click()
        page.wait_for_function(HAS_HEATMAP)
        main.get_by_text("Slider point ★").wait_for()
        main.get_by_text("manifold").first.wait_for()  # on- or off-manifold
        checks.shot(page, "scatter")
        checks.no_exception(page)
