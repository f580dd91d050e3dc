"""Runs an explorer script under `streamlit run`, headless on a free local port, for the
browser tests (tests/e2e) and the benches (bench/); also opens headless Chromium and finds
the live-drag component's iframe. No st.* calls.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:  # playwright is a test/bench dependency only
    from playwright.sync_api import Browser, Frame, Page, Playwright

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking")
LIVE_SLIDERS_URL = re.compile(r"live_sliders/index\.html")
LIVE_CHARTS_URL = re.compile(r"live_charts/index\.html")
LOGS = Path(os.environ.get("VAE_E2E_LOGS", Path(tempfile.gettempdir()) / "vae-explorer-e2e-logs"))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_streamlit(
    script: str | Path,
    port: int,
    env: dict[str, str] | None = None,
    args: Sequence[str] = (),
    log: BinaryIO | None = None,
) -> subprocess.Popen:
    """`streamlit run script -- *args` headless on 127.0.0.1:port, from the repo root.

    `env` is added to this process's environment; the server's output goes to `log`
    (discarded when None).
    """
    command = [
        *(sys.executable, "-m", "streamlit", "run", str(script)),
        *("--server.headless", "true", "--server.port", str(port)),
        *("--server.address", "127.0.0.1"),  # other settings: .streamlit/config.toml (cwd)
        *(("--", *args) if args else ()),
    ]
    return subprocess.Popen(
        command,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdout=log or subprocess.DEVNULL,
        stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
    )


def wait_healthy(url: str, process: subprocess.Popen, timeout_s: float = 60) -> None:
    """Return once `url/_stcore/health` answers 200; raise if the server exits or times out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"streamlit did not come up at {url}")


def stop(process: subprocess.Popen) -> None:
    """Terminate the server; kill it if it has not exited within 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def serve(
    script: str | Path, env: dict[str, str] | None = None, args: Sequence[str] = ()
) -> Iterator[str]:
    """Start `script` on a free port; yield its URL once healthy; always stop the server.
    The server's output is kept in LOGS/streamlit-PORT.log, for when a browser test fails."""
    port = free_port()
    LOGS.mkdir(parents=True, exist_ok=True)
    with open(LOGS / f"streamlit-{port}.log", "wb") as log:
        process = start_streamlit(script, port, env, args, log=log)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, process)
            yield url
        finally:
            stop(process)


def launch_chromium(playwright: Playwright) -> Browser:
    """Headless system Chromium (no sandbox, no GPU) from a `sync_playwright()` handle."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))


@contextmanager
def chromium_page(url: str, height: int = 1000, timeout_ms: int = 60_000) -> Iterator[Page]:
    """A 1400-px-wide headless Chromium page opened at `url`; closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": height})
            page.set_default_timeout(timeout_ms)
            page.goto(url)
            yield page
        finally:
            browser.close()


def _frame_with(page: Page, url: re.Pattern[str], selector: str, timeout_s: float) -> Frame:
    """The frame at `url` that holds `selector`. Attached is not yet navigated, and a frame
    mounted again replaces the old one: both are waited out, never a stale frame returned."""
    deadline = time.monotonic() + timeout_s
    while True:
        for frame in page.frames:
            if url.search(frame.url) and not frame.is_detached():
                if frame.locator(selector).count():
                    return frame
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"no frame at {url.pattern} showed {selector} in {timeout_s} s; "
                + _what_shows(page, url)
            )
        page.wait_for_timeout(100)


def _what_shows(page: Page, url: re.Pattern[str]) -> str:
    """For a timeout's message: the matching frames' status lines and the page's alerts,
    since a browser test that fails on CI leaves nothing else behind."""
    from playwright.sync_api import Error as PlaywrightError

    try:
        frames = [
            f"frame {'detached' if f.is_detached() else 'attached'}: "
            + (f.locator("body").inner_text(timeout=2_000)[:300] if not f.is_detached() else "")
            for f in page.frames
            if url.search(f.url)
        ]
        alerts = page.locator("[data-testid=stAlert], [data-testid=stException]")
        return f"{len(frames)} frame(s): {frames}; on the page: {alerts.all_inner_texts()}"
    except PlaywrightError as e:
        return f"(the page could not be read: {e})"


def live_sliders_frame(page: Page, timeout_s: float = 90, holding: str = "#image") -> Frame:
    """The live-drag component's iframe on a Playwright `page`, once its decoder has drawn
    (and it holds `holding`)."""
    frame = _frame_with(page, LIVE_SLIDERS_URL, holding, timeout_s)
    frame.wait_for_function("window.__liveSlidersStats && window.__liveSlidersStats.frames > 0")
    return frame


def live_charts_frame(page: Page, timeout_s: float = 120) -> Frame:
    """The Training view's live charts iframe, once it has applied its first update."""
    frame = _frame_with(page, LIVE_CHARTS_URL, "#readouts", timeout_s)
    frame.wait_for_function("window.__liveCharts && window.__liveCharts.have > 0")
    return frame
