"""Prior samples beside samples of the aggregate posterior's mixture, in headless Chromium,
on a 2-D latent trained on shapes.
"""

from __future__ import annotations

import pytest

from tools import devserver

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.e2e

TIMEOUT_MS = 60_000


def test_prior_and_aggregate_posterior_samples_side_by_side(two_d_run_url, checks) -> None:
    url = f"{two_d_run_url}&view=Prior+samples"
    with devserver.chromium_page(url, height=1000, timeout_ms=TIMEOUT_MS) as page:
        images = page.get_by_test_id("stMain").get_by_test_id("stImage")
        images.filter(has_text="the same noise").wait_for()
        images.filter(has_text="36 samples").wait_for()
        checks.shot(page, "grids")
        checks.no_exception(page)
