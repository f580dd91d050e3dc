"""The Training view in headless Chromium while a CLI trainer runs: every chart (curves,
schedule, ELBO gap, KL per dimension, reconstructions) and every readout moves; a hidden tab
asks for nothing and catches up as soon as it is shown. Waits on the app's own state (the
live charts' counters, the trainer's progress), never on fixed sleeps.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from explorer import charts, live_feed, runs
from explorer.components import live_charts
from tools import devserver
from vae_core.rundir import RunDir

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.e2e

RUN = "live"
TIMEOUT_MS = 120_000
SLOTS = ("readouts", "curves", "schedule", "gap", "gap_line", "kl", "recon")
# Override the page's visibility the way a hidden browser tab reports it (headless
# Chromium never hides a page), then tell the page.
SET_VISIBILITY = """(hidden) => {
    Object.defineProperty(document, 'visibilityState',
        {configurable: true, get: () => hidden ? 'hidden' : 'visible'});
    Object.defineProperty(document, 'hidden', {configurable: true, get: () => hidden});
    document.dispatchEvent(new Event('visibilitychange'));
}"""


def _start_trainer(root: Path) -> RunDir:
    """A small shapes run that evaluates often (16 steps an epoch) and lasts minutes."""
    run = RunDir(root / RUN)
    command = [sys.executable, "-m", "vae_core", "train", "--run-dir", str(run.path)]
    command += ["--dataset", "shapes", "--num-samples", "2048", "--latent-dim", "4"]
    command += ["--hidden-dim", "64", "--epochs", "500", "--threads", "1"]
    subprocess.Popen(
        command, cwd=devserver.REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return run


@pytest.fixture(scope="module")
def page(runs_root: Path) -> Iterator[object]:
    if not Path(devserver.CHROMIUM).exists():
        pytest.skip(f"no Chromium at {devserver.CHROMIUM}")
    run = _start_trainer(runs_root)
    env = {"VAE_EXPLORER_RUNS": str(runs_root)}
    with devserver.serve("explorer/app.py", env=env) as url:
        _wait_for(lambda: run.snapshot_version() > 0, "the trainer's first snapshot")
        with playwright_api.sync_playwright() as p:
            browser = devserver.launch_chromium(p)
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.set_default_timeout(TIMEOUT_MS)
            # Every message the page sends the server (a rerun request, a widget value): a
            # hidden page must send none.
            page.sent = []
            page.on("websocket", lambda ws: ws.on("framesent", lambda data: page.sent.append(data)))
            # Every tick the charts fetch from the live feed's route.
            page.fetched = []
            page.on("request", lambda r: live_feed.PATH in r.url and page.fetched.append(r.url))
            page.goto(f"{url}/?run={RUN}&view=Training")
            yield page
            browser.close()


def _wait_for(condition, what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _readouts(frame) -> dict[str, str]:
    return frame.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('#readouts .readout')]
            .map(box => [box.dataset.label, box.querySelector('strong').textContent]))"""
    )


def test_every_chart_and_readout_moves(page) -> None:
    frame = devserver.live_charts_frame(page)
    first = frame.evaluate("({...window.__liveCharts.updates})")
    # Each slot updated again after the page first drew it: the curves and bars every tick,
    # the ELBO gap at the next evaluation, the images with the next snapshot.
    frame.wait_for_function(
        """([slots, first]) => slots.every(
            s => (window.__liveCharts.updates[s] || 0) > (first[s] || 0) + 1)""",
        arg=[list(SLOTS), first],
    )
    # Every figure is a uPlot canvas (one per subplot), and no Plotly was loaded at all.
    for name, plots in (("curves", 4), ("schedule", 1), ("gap", 2), ("kl", 1)):
        assert frame.locator(f"#{name} .uplot canvas").count() == plots, name
        assert frame.locator(f"#{name} .main-svg").count() == 0, name
    assert frame.evaluate("typeof window.Plotly") == "undefined"
    assert "KL per dimension" in frame.locator("#kl .lines-title").inner_text()
    assert frame.locator("#recon img").get_attribute("src").startswith("data:image/png")
    assert "≈ KL(q(z|x) ‖ p(z|x))" in frame.locator("#gap_line").inner_text()
    before = _readouts(frame)
    assert before["State"] == "running"
    # The heartbeat is written every second: on an idle machine "Last update" reads "1 s ago"
    # tick after tick, so it is checked for freshness, not for change.
    assert re.fullmatch(r"[0-5] s ago", before["Last update"]), before["Last update"]
    for label in ("Step", "Epoch", "Samples/s"):
        frame.wait_for_function(
            """([label, value]) => document.querySelector(
                `#readouts .readout[data-label="${label}"] strong`).textContent !== value""",
            arg=[label, before[label]],
        )


CURVES_PIXELS = "document.querySelector('#curves .uplot canvas').toDataURL()"
LEGEND = "[...document.querySelectorAll('#curves .lines-entry')].map(e => e.textContent)"
SUBTITLES = "[...document.querySelectorAll('#curves .lines-subtitle')].map(e => e.textContent)"


def test_the_curves_are_canvases_that_grow_with_new_rows(page) -> None:
    frame = devserver.live_charts_frame(page)
    assert frame.evaluate(LEGEND) == ["train", "test"]  # one entry per legend group
    assert frame.evaluate(SUBTITLES) == [
        "ELBO (nats, higher is better)",
        "Reconstruction -log p(x|z) (nats)",
        "KL(q(z|x) || p(z)) (nats)",
        "beta * KL (the objective's KL term)",
    ]
    points = frame.evaluate("window.__liveCharts.points.curves[0]")
    pixels = frame.evaluate(CURVES_PIXELS)
    frame.wait_for_function(f"window.__liveCharts.points.curves[0] > {points}")
    # New train rows arrived as rows, and the ELBO plot's canvas was drawn again with them.
    assert frame.evaluate(CURVES_PIXELS) != pixels


# A BarFigure drawn from `spec` in a box of its own in the charts' frame; returns, per bar,
# the canvas colour half-way up it, the bar count after an update to `wider`, and the hover
# box over bar 2.
DRAW_BARS = """async ([spec, wider]) => {
    const { BarFigure } = await import(new URL('bars.mjs', location.href).href);
    const host = document.createElement('div');
    host.style.width = '480px';
    document.body.append(host);
    const chart = new BarFigure(host, spec);
    const frame = () => new Promise(r => requestAnimationFrame(() => setTimeout(r)));
    await frame();
    const u = chart.plot;
    const colors = spec.data[0].y.map((y, i) => {
        const x = Math.round(u.valToPos(i, 'x', true));
        const pixel = u.ctx.getImageData(x, Math.round(u.valToPos(y / 2, 'y', true)), 1, 1).data;
        return '#' + [...pixel.slice(0, 3)].map(c => c.toString(16).padStart(2, '0')).join('');
    });
    u.setCursor({ left: u.valToPos(2, 'x'), top: 20 });
    const tip = host.querySelector('.lines-tip').textContent;
    chart.update(wider);
    await frame();
    const after = [chart.plot.data[0].length, host.querySelectorAll('.uplot').length];
    chart.destroy();
    host.remove();
    return { colors, tip, after };
}"""


def test_the_kl_bars_are_coloured_and_labelled_from_their_spec(page) -> None:
    frame = devserver.live_charts_frame(page)
    kl = [0.8, 0.3, 1.5, 0.6]
    spec = charts.kl_bar_spec(kl, [True, False, True, False], threshold=0.1, free_bits=0.05)
    wider = charts.kl_bar_spec([0.5] * 6, [True] * 6, threshold=0.1)
    plain = [json.loads(live_charts.figure_json(s)) for s in (spec, wider)]
    for s, y in zip(plain, (kl, [0.5] * 6), strict=True):
        s["data"][0]["y"] = y  # JSON numbers: the page decodes typed arrays, not this test
    drawn = frame.evaluate(DRAW_BARS, plain)
    active, inactive = charts.ACTIVE_COLOR, charts.INACTIVE_COLOR
    assert drawn["colors"] == [active, inactive, active, inactive]
    assert drawn["tip"] == "z2: 1.500 nats"
    assert drawn["after"] == [6, 1]  # six bars, drawn by one new plot


def test_a_hidden_tab_asks_for_nothing_and_catches_up_when_shown(page, runs_root) -> None:
    frame = devserver.live_charts_frame(page)
    run = RunDir(runs_root / RUN)
    frame.wait_for_function("(window.__liveCharts.points.curves || [0])[0] > 0")
    frame.evaluate(SET_VISIBILITY, True)
    hidden_at = frame.evaluate("({...window.__liveCharts})")
    # Meanwhile the trainer logs more than one tick's worth of rows.
    step = run.read_status().step
    _wait_for(lambda: run.read_status().step > step + 100, "the trainer to go on")
    now = frame.evaluate("({...window.__liveCharts})")
    assert now["ticks"] == hidden_at["ticks"] and now["have"] == hidden_at["have"]
    frame.evaluate(SET_VISIBILITY, False)
    # Shown again: it asks at once, and the new rows arrive as rows, not whole figures.
    # (How soon is bench/watch_cost.py's figure; a loaded machine must not fail this.)
    frame.wait_for_function(f"window.__liveCharts.have > {now['have']}")
    points = frame.evaluate("window.__liveCharts.points.curves[0]")
    assert points > hidden_at["points"]["curves"][0]


def _hide_page(page, hidden: bool) -> None:
    """The whole tab hidden or shown: every frame (the page, the charts, the clocks)."""
    for frame in page.frames:
        frame.evaluate(SET_VISIBILITY, hidden)


def test_a_hidden_page_sends_the_server_nothing(page, runs_root) -> None:
    devserver.live_charts_frame(page)
    run = RunDir(runs_root / RUN)
    _hide_page(page, True)
    page.wait_for_timeout(1500)  # a request already on its way lands meanwhile
    sent, fetched = len(page.sent), len(page.fetched)
    step = run.read_status().step
    _wait_for(lambda: run.read_status().step > step + 100, "the trainer to go on")
    page.wait_for_timeout(3000)  # beyond the sidebar's and the fork panel's clocks too
    assert (len(page.sent), len(page.fetched)) == (sent, fetched)
    _hide_page(page, False)
    _wait_for(lambda: len(page.fetched) > fetched, "the shown page to ask again", timeout_s=10)


def test_a_tick_is_a_fetch_not_a_rerun(page) -> None:
    """The curves move with no message on the page's WebSocket but the reruns the charts
    ask for when the page around them must change (none while the run is healthy): the
    page is not re-rendered every second."""
    frame = devserver.live_charts_frame(page)
    frame.wait_for_function("window.__liveCharts.ticks >= 2")  # past the first page's messages
    sent, before = len(page.sent), frame.evaluate("({...window.__liveCharts})")
    frame.wait_for_function(
        f"window.__liveCharts.points.curves[0] > {before['points']['curves'][0]}"
    )
    frame.wait_for_function(f"window.__liveCharts.ticks >= {before['ticks'] + 3}")
    reruns = frame.evaluate("window.__liveCharts.reruns") - before["reruns"]
    assert len(page.sent) - sent == reruns  # no clock of the page's own
    if frame.locator("#health").inner_text().startswith("Health: no alarm"):
        assert reruns == 0  # an alarm's box shows its newest step, so it redraws per tick


def test_a_pause_from_elsewhere_reaches_the_sidebar_without_a_clock_of_its_own(
    page, runs_root
) -> None:
    devserver.live_charts_frame(page)
    run = RunDir(runs_root / RUN)
    resume = page.locator('[data-testid="stSidebar"]').get_by_role("button", name="Resume")
    assert resume.is_disabled()
    runs.pause_run(run)  # as the CLI's `control pause` does
    try:
        # The Training panel's tick sees the new state and redraws the page, sidebar included.
        page.locator('[data-testid="stSidebar"]').get_by_text("paused").wait_for()
        assert resume.is_enabled()
    finally:
        runs.resume_run(run)
    page.locator('[data-testid="stSidebar"]').get_by_text("running").wait_for()
