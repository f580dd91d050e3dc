"""UI latency of the explorer in headless Chromium, with a trainer running in the background.

    python bench/ui_latency.py [--presses 30] [--dataset shapes]

Prints the cold start (server launch -> first interactive page) and, p50 / p95 over N
presses, the time from a slider key press to the new image on the page, for both slider
paths: the live-drag component (browser-side decode onto a canvas) and the server-side
st.slider fallback (rerun, decode, new <img>). The server and the trainer are killed at the end.
"""

from __future__ import annotations

import argparse
import re
import signal
import statistics
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Frame, Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from explorer import devserver, runs
from vae_core.process import kill_trainer
from vae_core.rundir import RunDir

DECODED_SRC = """() => {
    const box = [...document.querySelectorAll('[data-testid="stImage"]')]
        .find(e => e.innerText.includes('decoded'));
    const img = box && box.querySelector('img');
    return img && img.complete ? img.src : null;
}"""
# In the component's iframe: on the next keydown, time until the canvas pixels differ.
# Decodes run in requestAnimationFrame, so check after each frame's callbacks have run.
# window.__benchLatency: undefined while waiting, ms once changed, null if unchanged for 2 s.
ARM_CANVAS_TIMER = """() => {
    const canvas = document.getElementById('image');
    const before = canvas.toDataURL();
    window.__benchLatency = undefined;
    document.addEventListener('keydown', () => {
        const t0 = performance.now();
        const check = () => {
            const ms = performance.now() - t0;
            if (canvas.toDataURL() !== before) window.__benchLatency = ms;
            else if (ms > 2000) window.__benchLatency = null;
            else requestAnimationFrame(() => setTimeout(check, 0));
        };
        requestAnimationFrame(() => setTimeout(check, 0));
    }, {once: true, capture: true});
}"""


def _wait_snapshot(run: RunDir, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while run.snapshot_version() == 0:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{run.path}: no snapshot; see {run.log_path}")
        time.sleep(0.2)


def _arrow(i: int) -> str:
    """Ten steps right, ten left, ...: stays inside the slider range."""
    return "ArrowRight" if (i // 10) % 2 == 0 else "ArrowLeft"


def _live_press_latencies(page: Page, frame: Frame, presses: int) -> tuple[list[float], int, int]:
    """Live component: milliseconds from each keydown on a focused slider to new canvas
    pixels, timed in the page; also presses that left the uint8 image unchanged, and how
    often the slider had lost focus (the sliders are rebuilt when the KL order changes)."""
    dim = frame.locator("input[type=range]").first.get_attribute("id")  # highest KL
    latencies, unchanged, refocused = [], 0, 0
    for i in range(presses):
        if frame.evaluate("document.activeElement.id") != dim:
            frame.locator(f"#{dim}").focus()
            refocused += i > 0
        frame.evaluate(ARM_CANVAS_TIMER)
        page.keyboard.press(_arrow(i))
        frame.wait_for_function("window.__benchLatency !== undefined", timeout=5_000)
        ms = frame.evaluate("window.__benchLatency")
        if ms is None:
            unchanged += 1
        else:
            latencies.append(ms)
        page.wait_for_timeout(150)  # a user's pace; lets the page settle
    return latencies, unchanged, refocused


def _server_press_latencies(page: Page, presses: int) -> tuple[list[float], int, int]:
    """Server fallback: milliseconds from each st.slider key press to the decoded image's
    new src being loaded (a rerun and a server-side decode per press).

    A step can round to the same uint8 image (a weak dimension early in training): such
    presses are counted as unchanged rather than timed. Also returns how often the slider
    had lost focus (the grid is rebuilt when the KL order changes) and was focused again.
    """
    # the latent sliders are the ones labelled "z<d> · ..."; keep stepping the first one
    dim = page.get_by_test_id("stSlider").filter(has_text="·").first.inner_text().split()[0]
    label = re.compile(rf"^{dim} ·")
    slider = page.get_by_test_id("stSlider").filter(has_text=label).get_by_role("slider")
    latencies, unchanged, refocused = [], 0, 0
    for i in range(presses):
        while slider.count() != 1:  # mid-rerun the old element can still be there
            page.wait_for_timeout(50)
        if not slider.evaluate("e => e === document.activeElement"):
            slider.focus()
            refocused += i > 0
        before = page.evaluate(DECODED_SRC)
        t0 = time.perf_counter()
        page.keyboard.press(_arrow(i))
        try:
            page.wait_for_function(
                f"old => {{ const s = ({DECODED_SRC})(); return s && s !== old; }}",
                arg=before,
                polling="raf",
                timeout=3_000,
            )
        except PlaywrightTimeout:
            unchanged += 1
            continue
        latencies.append(1000 * (time.perf_counter() - t0))
        page.wait_for_timeout(150)  # a user's pace; lets the page settle
    return latencies, unchanged, refocused


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _summary(what: str, latencies: list[float], unchanged: int, refocused: int) -> str:
    return (
        f"{what} over {len(latencies)} presses: "
        f"p50 {statistics.median(latencies):.0f} ms, "
        f"p95 {_percentile(latencies, 0.95):.0f} ms, "
        f"min {min(latencies):.0f} ms, max {max(latencies):.0f} ms "
        f"({unchanged} presses gave an identical image and are not timed; "
        f"the slider lost focus {refocused} times and was focused again)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presses", type=int, default=30)
    parser.add_argument("--dataset", default="shapes")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="vae-bench-"))
    choices = runs.RunChoices(
        dataset=args.dataset, latent_dim=10, epochs=1000, image_size=28, num_samples=5000
    )
    run = runs.start_run(choices, root)  # trains in the background for the whole bench
    try:
        _wait_snapshot(run)
        t_launch = time.perf_counter()
        with (
            devserver.serve("explorer/app.py", env={"VAE_EXPLORER_RUNS": str(root)}) as url,
            sync_playwright() as p,
        ):
            t_healthy = time.perf_counter()
            browser = devserver.launch_chromium(p)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            t_goto = time.perf_counter()
            page.goto(f"{url}/?run={run.path.name}")
            # Interactive: the training readouts are drawn and the script run is over.
            page.get_by_test_id("stMetric").first.wait_for(timeout=60_000)
            page.wait_for_function(
                "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
                timeout=60_000,
            )
            t_ready = time.perf_counter()
            page.get_by_test_id("stButtonGroup").get_by_text("Latent sliders").click()
            frame = devserver.live_sliders_frame(page, timeout_s=60)
            page.wait_for_timeout(1000)
            live = _live_press_latencies(page, frame, args.presses)
            decode_ms = frame.evaluate("window.__liveSlidersStats.meanDecodeMs")
            # the server-side fallback: the "Live drag" toggle off shows the st.slider grid
            page.get_by_test_id("stMain").get_by_text("Live drag", exact=True).click()
            page.wait_for_function(DECODED_SRC, timeout=60_000)
            page.wait_for_timeout(1000)
            server = _server_press_latencies(page, args.presses)
            browser.close()
        status = run.read_status()
        print(f"trainer state during the bench: {status.state if status else None}")
        print(f"cold start: server healthy {t_healthy - t_launch:.2f} s after launch; ", end="")
        print(f"first interactive page {t_ready - t_goto:.2f} s after navigation, ", end="")
        print(f"{t_ready - t_launch:.2f} s after launch")
        print(
            _summary("live component: key press -> new canvas pixels", *live)
            + f"; in-browser decode {decode_ms:.2f} ms"
        )
        print(_summary("server fallback: key press -> new decoded image", *server))
    finally:
        kill_trainer(run, signal.SIGKILL)
        runs.reap_children()


if __name__ == "__main__":
    main()
