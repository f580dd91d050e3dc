"""components.ticker in headless Chromium: the fragment holding it reruns on its clock while
the page is visible, not at all while it is hidden, and at once when it is shown again."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools import devserver

pytestmark = pytest.mark.e2e

APP = Path(__file__).with_name("ticker_app.py")
TICKER_URL = re.compile(r"ticker/index\.html")
# Headless Chromium never hides a page: override what the clock's frame reads, then tell it.
SET_VISIBILITY = """(hidden) => {
    Object.defineProperty(document, 'visibilityState',
        {configurable: true, get: () => hidden ? 'hidden' : 'visible'});
    document.dispatchEvent(new Event('visibilitychange'));
}"""


@pytest.fixture(scope="module")
def page(browser) -> Iterator[object]:
    with devserver.serve(APP) as url:
        page = browser.new_page(viewport={"width": 800, "height": 400})
        page.set_default_timeout(60_000)
        page.goto(url)
        page.wait_for_selector("text=/runs [3-9]/")  # the clock runs
        yield page
        page.close()


def _runs(page) -> int:
    return int(
        re.search(r"runs (\d+)", page.inner_text("[data-testid=stCaptionContainer]")).group(1)
    )


def _wait_runs_above(page, n: int) -> None:
    page.wait_for_function(
        """(n) => +(document.querySelector("[data-testid=stCaptionContainer]")?.innerText
            .match(/runs (\\d+)/) || [0, 0])[1] > n""",
        arg=n,
    )


def test_a_hidden_page_reruns_nothing_and_catches_up_at_once_when_shown(page) -> None:
    clock = page.frame(url=TICKER_URL)
    _wait_runs_above(page, _runs(page) + 2)  # visible: it ticks
    clock.evaluate(SET_VISIBILITY, True)
    page.wait_for_timeout(500)  # a report already sent lands meanwhile
    hidden_at = _runs(page)
    page.wait_for_timeout(2000)  # 8 ticks' worth
    assert _runs(page) == hidden_at
    clock.evaluate(SET_VISIBILITY, False)
    _wait_runs_above(page, hidden_at)  # at once: well before a clock would have caught up
    # The frame takes no room: the caption is the page's only visible content.
    assert page.locator('iframe[title*="ticker"]').bounding_box()["height"] == 0
