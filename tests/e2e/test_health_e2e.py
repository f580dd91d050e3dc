"""The health alarms end to end in headless Chromium: start a Fashion-MNIST run at beta = 20
from the sidebar (it collapses on purpose), see the collapse alarm, apply a fix with one
click, and see the trainer take it: control.json, a labelled line on the curves, the alarm
gone. Screenshots go to $VAE_E2E_SHOTS (default tests/e2e/screenshots).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools import devserver
from vae_core.catalog import is_available_offline
from vae_core.rundir import RunDir, list_runs

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not is_available_offline("fashion-mnist"), reason="Fashion-MNIST is not on this machine"
    ),
]

TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def page(runs_root: Path) -> Iterator[object]:
    if not Path(devserver.CHROMIUM).exists():
        pytest.skip(f"no Chromium at {devserver.CHROMIUM}")
    env = {"VAE_EXPLORER_RUNS": str(runs_root)}
    with devserver.serve("explorer/app.py", env=env) as url:
        with playwright_api.sync_playwright() as p:
            browser = devserver.launch_chromium(p)
            # Tall: Streamlit scrolls inside its main block, and the shots show the whole view.
            page = browser.new_page(viewport={"width": 1400, "height": 2400})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(url)
            yield page
            browser.close()


def _start_collapsing_run(page) -> None:
    page.get_by_text("Pick a dataset and a model").wait_for()
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_test_id("stSelectbox").filter(has_text="Dataset").click()
    page.get_by_role("option", name="Fashion-MNIST").click()
    for label, value in (("Epochs", "50"), ("Latent size", "10")):
        field = sidebar.get_by_role("spinbutton", name=label, exact=True)
        field.fill(value)
        field.press("Tab")
    sidebar.get_by_role("button", name="More settings").click()  # beta is in its popover
    beta = page.get_by_role("spinbutton", name="beta", exact=True)
    beta.fill("20")
    beta.press("Tab")
    page.keyboard.press("Escape")
    page.get_by_text("beta 20 (constant)").wait_for()
    sidebar.get_by_role("button", name="Start", exact=True).click()


def _the_run(runs_root: Path) -> RunDir:
    (run,) = list_runs(runs_root)
    return run


def test_a_collapsing_run_raises_the_alarm_and_a_fix_is_applied_live(
    page, runs_root, checks
) -> None:
    _start_collapsing_run(page)
    main = page.get_by_test_id("stMain")
    alarm = main.get_by_test_id("stAlert").filter(has_text="Posterior collapse")
    alarm.wait_for(timeout=TIMEOUT_MS)
    fix = main.get_by_role("button", name="Lower beta to 1")
    assert fix.is_enabled()
    checks.shot(page, "alarm")
    assert page.locator('[data-testid="stException"]').count() == 0
    # The alarm's box shows its newest step, so the page redraws as rows come: at most one
    # rerun a second (the charts' frame holds the others back), never one per row.
    frame = devserver.live_charts_frame(page)
    before = frame.evaluate("[window.__liveCharts.reruns, window.__liveCharts.ticks, Date.now()]")
    frame.wait_for_function(f"window.__liveCharts.ticks >= {before[1] + 4}")
    after = frame.evaluate("[window.__liveCharts.reruns, window.__liveCharts.ticks, Date.now()]")
    assert after[0] - before[0] <= (after[2] - before[2]) / 1000 + 1, (before, after)

    fix.click()
    run = _the_run(runs_root)
    deadline = time.monotonic() + 30
    while run.read_control().get("set") != {"beta": 1.0}:
        assert time.monotonic() < deadline, f"control.json: {run.read_control()}"
        time.sleep(0.2)
    main.get_by_text("Sent at").wait_for()
    # The trainer logs the change; the curves label its line, and the evidence restarts.
    charts = page.frame_locator('iframe[title*="live_charts"]')  # the live curves' frame
    charts.locator("#curves .lines-label", has_text="beta=1").first.wait_for(timeout=60_000)
    alarm.wait_for(state="detached", timeout=60_000)
    events = [r for r in run.read_metrics() if r.get("event") == "control"]
    assert events and events[-1]["changed"] == ["beta"] and events[-1]["beta"] == 1.0
    # The sidebar's live beta follows the value in force: Apply live would not send 20 back.
    # A wait, not a read: on this view the Training panel's tick redraws the page when the
    # beta in force changes (the sidebar has no clock of its own here).
    sidebar_beta = page.get_by_test_id("stSidebar").get_by_role("spinbutton", name="beta")
    playwright_api.expect(sidebar_beta).to_have_value("1.00", timeout=10_000)
    checks.shot(page, "fixed")
    checks.no_exception(page)
