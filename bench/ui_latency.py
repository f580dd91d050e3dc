"""UI latency of the explorer in headless Chromium, with a trainer running in the background.

    python bench/ui_latency.py [--presses 30] [--dataset shapes]

Prints the cold start (server launch -> first interactive page) and the time from a
slider key press to the new decoded image on the page (p50 / p95 over N presses).
The server and the trainer are killed at the end.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from explorer import runs
from vae_core.process import kill_trainer
from vae_core.rundir import RunDir

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
DECODED_SRC = """() => {
    const box = [...document.querySelectorAll('[data-testid="stImage"]')]
        .find(e => e.innerText.includes('decoded'));
    const img = box && box.querySelector('img');
    return img && img.complete ? img.src : null;
}"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(root: Path, port: int) -> subprocess.Popen:
    command = [
        *(sys.executable, "-m", "streamlit", "run", "explorer/app.py"),
        *("--server.headless", "true", "--server.port", str(port)),
        *("--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"),
    ]
    env = {**os.environ, "VAE_EXPLORER_RUNS": str(root)}
    return subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _wait_healthy(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(url)


def _wait_snapshot(run: RunDir, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while run.snapshot_version() == 0:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{run.path}: no snapshot; see {run.log_path}")
        time.sleep(0.2)


def _press_latencies(page: Page, presses: int) -> tuple[list[float], int]:
    """Milliseconds from each key press to the decoded image's new src being loaded.

    A step can round to the same uint8 image (a weak dimension early in training): such
    presses are counted as unchanged rather than timed.
    """
    # the latent sliders are the ones labelled "z<d> · ..."
    slider = page.get_by_test_id("stSlider").filter(has_text="·").first.get_by_role("slider")
    slider.focus()
    latencies, unchanged = [], 0
    for i in range(presses):
        before = page.evaluate(DECODED_SRC)
        key = "ArrowRight" if (i // 10) % 2 == 0 else "ArrowLeft"  # stay inside -3..3
        t0 = time.perf_counter()
        page.keyboard.press(key)
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
    return latencies, unchanged


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presses", type=int, default=30)
    parser.add_argument("--dataset", default="shapes")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="vae-bench-"))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    choices = runs.RunChoices(
        dataset=args.dataset, latent_dim=10, epochs=1000, image_size=28, num_samples=5000
    )
    run = runs.start_run(choices, root)  # trains in the background for the whole bench
    server = None
    try:
        _wait_snapshot(run)
        t_launch = time.perf_counter()
        server = _serve(root, port)
        _wait_healthy(url)
        t_healthy = time.perf_counter()
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
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
            page.wait_for_function(DECODED_SRC, timeout=60_000)
            page.wait_for_timeout(1000)
            latencies, unchanged = _press_latencies(page, args.presses)
            browser.close()
        status = run.read_status()
        print(f"trainer state during the bench: {status.state if status else None}")
        print(f"cold start: server healthy {t_healthy - t_launch:.2f} s after launch; ", end="")
        print(f"first interactive page {t_ready - t_goto:.2f} s after navigation, ", end="")
        print(f"{t_ready - t_launch:.2f} s after launch")
        print(
            f"slider key press -> new decoded image over {len(latencies)} presses: "
            f"p50 {statistics.median(latencies):.0f} ms, "
            f"p95 {_percentile(latencies, 0.95):.0f} ms, "
            f"min {min(latencies):.0f} ms, max {max(latencies):.0f} ms "
            f"({unchanged} presses gave an identical image and are not timed)"
        )
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        kill_trainer(run, signal.SIGKILL)
        runs.reap_children()


if __name__ == "__main__":
    main()
