"""The time-lapse, "Fork from here" and Compare end to end in headless Chromium, on a small
shapes run trained in-process. Screenshots go to $VAE_E2E_SHOTS (default tests/e2e/screenshots).
"""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools import devserver
from vae_core.process import kill_trainer
from vae_core.rundir import list_runs

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.e2e

TIMEOUT_MS = 90_000
RUN = "shapes-run"
# The time-lapse slider's shown frame (plotly's own state), -1 before it exists.
ACTIVE_FRAME = """() => {
    for (const gd of document.querySelectorAll('.js-plotly-plot'))
        if (gd._fullLayout && gd._fullLayout.sliders && gd._fullLayout.sliders.length)
            return gd._fullLayout.sliders[0].active;
    return -1;
}"""


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory: pytest.TempPathFactory, train_shapes_run) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("runs")
    train_shapes_run(root / RUN, latent_dim=4, num_samples=2048, epochs=2)
    shutil.copytree(root / RUN, root / "twin", ignore=lambda _d, n: [x for x in n if x == "lock"])
    yield root
    for run in list_runs(root):  # trainers run in their own session: kill them by pid
        kill_trainer(run, signal.SIGKILL)


@pytest.fixture(scope="module")
def browser_url(runs_root: Path) -> Iterator[tuple[object, str]]:
    if not Path(devserver.CHROMIUM).exists():
        pytest.skip(f"no Chromium at {devserver.CHROMIUM}")
    with devserver.serve("explorer/app.py", env={"VAE_EXPLORER_RUNS": str(runs_root)}) as url:
        with playwright_api.sync_playwright() as p:
            browser = devserver.launch_chromium(p)
            page = browser.new_page(viewport={"width": 1400, "height": 1400})
            page.set_default_timeout(TIMEOUT_MS)
            yield page, url
            browser.close()


def test_timelapse_plays_and_forks(browser_url, runs_root, checks) -> None:
    page, url = browser_url
    started = time.perf_counter()
    page.goto(f"{url}/?run={RUN}&view=Scatter")
    page.get_by_text("Time-lapse", exact=True).click()
    chart = page.locator(".js-plotly-plot").filter(has=page.locator(".slider-container"))
    chart.wait_for()
    print(f"time-lapse first display: {time.perf_counter() - started:.1f} s")
    checks.shot(page, "newest")
    newest = page.evaluate(ACTIVE_FRAME)
    chart.get_by_text("▶ Play").click()
    page.wait_for_function(f"() => ({ACTIVE_FRAME})() !== {newest}")  # the animation moved
    checks.shot(page, "playing")
    assert page.locator('[data-testid="stException"]').count() == 0
    expander = page.get_by_test_id("stExpander").filter(has_text="Fork from a history point")
    expander.get_by_text("Fork from a history point").click()
    option = page.get_by_role("option").filter(has_text="plain autoencoder")
    for _ in range(5):  # a rerun in flight can close the dropdown as it opens: try again
        expander.get_by_test_id("stSelectbox").click()
        try:
            option.wait_for(timeout=5000)
            break
        except playwright_api.TimeoutError:
            page.keyboard.press("Escape")
    option.click()
    page.get_by_role("button", name="Fork from here").click()
    page.get_by_text("Forked shapes-run-fork-").wait_for()
    # The fork's own trainer writes its config.json (the app writes nothing in the folder):
    # wait for it to appear, as a run, with its parent link.
    deadline = time.monotonic() + 120
    while not (forks := [r for r in list_runs(runs_root) if r.read_parent()]):
        assert time.monotonic() < deadline, "the fork's trainer wrote no config.json"
        time.sleep(0.2)
    assert len(forks) == 1 and forks[0].read_config()[1].beta == 0.0
    checks.shot(page, "forked")


def test_compare_view_shows_two_runs(browser_url, checks) -> None:
    page, url = browser_url
    page.goto(f"{url}/?run={RUN}&view=Compare")
    page.get_by_text("Pick at least two runs").wait_for()
    page.get_by_test_id("stMultiSelect").click()
    page.get_by_role("option", name="twin").click()
    page.keyboard.press("Escape")
    page.get_by_text("One projection for all").wait_for()
    page.get_by_text("twin: T = 1.00, seed 0").wait_for()
    page.set_viewport_size({"width": 1400, "height": 2200})
    checks.shot(page, "compare")
    assert page.locator('[data-testid="stException"]').count() == 0
