"""Cold start of the explorer against a trivial Streamlit app, side by side, in Chromium.

    python bench/cold_start.py [--launches 3] [--warmup 1]

Launches `streamlit run explorer/app.py` (on an empty runs root, so the sidebar's New run
form is open) and a one-button sidebar app written to a temp file, alternately and the
same way (headless, free port, repository root as cwd), and times each from the server's
process start to a visible "Start" button in headless Chromium (a fresh browser context per
launch; the browser itself is started once, before). Prints every launch, the two medians
and their ratio. Warm-up launches (both apps) fill the OS file cache and are not counted.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Browser, sync_playwright

from tools import devserver

TRIVIAL_APP = 'import streamlit as st\n\nst.sidebar.button("Start")\n'
TIMEOUT_S = 120


def time_to_start_button(browser: Browser, script: Path, env: dict[str, str]) -> float:
    """Seconds from launching `streamlit run script` to a visible Start button."""
    port = devserver.free_port()
    url = f"http://127.0.0.1:{port}"
    t0 = time.monotonic()
    process = devserver.start_streamlit(script, port, env)
    try:
        devserver.wait_healthy(url, process, TIMEOUT_S)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        try:
            page = context.new_page()
            page.goto(url)
            button = page.get_by_role("button", name="Start", exact=True)
            button.wait_for(state="visible", timeout=TIMEOUT_S * 1000)
            return time.monotonic() - t0
        finally:
            context.close()
    finally:
        devserver.stop(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--launches", type=int, default=3, help="timed launches of each app")
    parser.add_argument("--warmup", type=int, default=1, help="untimed launches of each first")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        trivial = Path(tmp) / "trivial_app.py"
        trivial.write_text(TRIVIAL_APP)
        runs_root = Path(tmp) / "runs"
        runs_root.mkdir()
        env = {"VAE_EXPLORER_RUNS": str(runs_root)}
        apps = {"explorer": devserver.REPO / "explorer" / "app.py", "trivial": trivial}
        browser = devserver.launch_chromium(p)
        times: dict[str, list[float]] = {name: [] for name in apps}
        for i in range(args.warmup + args.launches):
            for name, script in apps.items():
                seconds = time_to_start_button(browser, script, env)
                counted = i >= args.warmup
                if counted:
                    times[name].append(seconds)
                print(f"{name:9s} {seconds:6.2f} s{'' if counted else '  (warm-up)'}", flush=True)
        browser.close()

    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"median explorer: {medians['explorer']:.2f} s, trivial: {medians['trivial']:.2f} s")
    print(f"ratio explorer / trivial: {medians['explorer'] / medians['trivial']:.2f}")


if __name__ == "__main__":
    main()
