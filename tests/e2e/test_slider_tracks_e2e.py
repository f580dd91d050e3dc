"""The live sliders' tracks in headless Chromium, on a 2-D latent trained on shapes: each
track's histogram of the aggregate posterior q with the prior drawn over it, and an
attribute-vector slider that moves z along its direction in the browser.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tools import devserver

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.e2e

TIMEOUT_MS = 60_000
OUTPUTS = "[...document.querySelectorAll('output')].map(o => Number(o.value))"


@pytest.fixture
def page(two_d_run_url: str) -> Iterator[object]:
    url = f"{two_d_run_url}&view=Latent+sliders"
    with devserver.chromium_page(url, height=1000, timeout_ms=TIMEOUT_MS) as page:
        yield page


def test_each_track_shows_q_with_the_prior_over_it(page, checks) -> None:
    frame = devserver.live_sliders_frame(page)
    frame.wait_for_function("document.querySelectorAll('svg.hist path.q').length === 2")
    bars = frame.locator("svg.hist path.q").first.get_attribute("d")
    assert bars.count("M") == 32  # one bar per bin
    assert frame.locator("svg.hist polyline.p").count() == 2
    stats = frame.evaluate("({...window.__liveSlidersStats})")
    print(f"histograms drawn in {stats['histogramMs']:.2f} ms")  # reported by the -s run
    checks.no_exception(page)


def test_an_attribute_vector_becomes_a_slider_that_moves_z_along_it(page, checks) -> None:
    main = page.get_by_test_id("stMain")
    devserver.live_sliders_frame(page)  # the sliders drew: the expander below is in place
    main.get_by_text("Attribute vectors", exact=True).first.click()
    main.get_by_test_id("stMetric").filter(has_text="AUC").wait_for()  # two classes by default
    main.get_by_role("button", name="Add slider").click()
    # The frame that shows the new slider (the component may be mounted again for it).
    frame = devserver.live_sliders_frame(page, holding="#a0")
    before = frame.evaluate(OUTPUTS)
    # One key press, not a queue of them: End moves the thumb to the top of its range.
    frame.locator("#a0").press("End")
    frame.wait_for_function(
        f"before => {OUTPUTS}.some((value, i) => Math.abs(value - before[i]) > 0.2)", arg=before
    )
    after = frame.evaluate(OUTPUTS)
    assert after[0] != before[0] and after[1] != before[1]  # z0, z1 moved together, along v
    checks.shot(page, "attribute_slider")
    checks.no_exception(page)
