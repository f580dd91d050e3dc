"""What watching a run costs: a CLI trainer on one thread, with and without Training tabs.

    python bench/watch_cost.py [--seconds 15] [--repeats 3] [--tabs 1 8] [--dataset fashion-mnist]

Starts `python -m vae_core train --threads 1` (Fashion-MNIST MLP when Debian's copy is
installed, else shapes), the app under `streamlit run`, and headless Chromium tabs on
`?run=NAME&view=Training`. For each repeat and tab count it measures, over the same window:
the trainer's speed (steps/s from its own metrics rows) against the trainer alone just
before, the Streamlit server's CPU and the browser's CPU (every Chromium process, from
/proc), in cores. Then one tab is hidden (document.visibilityState, emulated: headless
Chromium never hides a page) for a window, and shown again: what the hidden tab cost, and
how long until its step readout moved again.

Goals (issue 21): one tab: browser <= 0.10 core, server <= 0.03 core, trainer keeps >= 95 %;
eight tabs: trainer keeps >= 85 %; a hidden tab costs nothing.
The machine may be shared: the load average from `uptime` is printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tools import devserver
from vae_core.catalog import is_available_offline
from vae_core.process import kill_trainer
from vae_core.rundir import RunDir

RUN_NAME = "watch"
MIN_ROWS = 5  # train rows a window must hold for a speed
TICK_S = os.sysconf("SC_CLK_TCK")
# The step readout: in the live charts' frame, or (before them) an st.metric.
STEP_READOUT = '#readouts .readout[data-label="Step"] strong'
STEP_METRIC = '[data-testid="stMetricValue"] >> nth=1'
LIVE_CHARTS = re.compile(r"live_charts/index\.html")
# Emulate hiding / showing a tab: override visibilityState in every frame, then fire the event.
SET_VISIBILITY = """(hidden) => {
    for (const doc of [document]) {
        Object.defineProperty(doc, 'visibilityState', {configurable: true,
            get: () => hidden ? 'hidden' : 'visible'});
        Object.defineProperty(doc, 'hidden', {configurable: true, get: () => hidden});
        doc.dispatchEvent(new Event('visibilitychange'));
    }
}"""


def _cpu_s(pid: int) -> float:
    """utime + stime of one process, in seconds; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK_S


def _process_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command name) of every process now."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                head, tail = (entry / "stat").read_text().rsplit(")", 1)
            except OSError:  # gone meanwhile
                continue
            table[int(entry.name)] = (int(tail.split()[1]), head.split("(", 1)[1])
    return table


def _chromium_pids() -> list[int]:
    """The Chromium processes this bench started (others on the machine are not counted)."""
    table = _process_table()
    mine, grew = {os.getpid()}, True
    while grew:
        children = {pid for pid, (ppid, _) in table.items() if ppid in mine} - mine
        mine |= children
        grew = bool(children)
    return [pid for pid in mine if table.get(pid, (0, ""))[1].startswith(("chrom", "headless"))]


class CpuMeter:
    """CPU seconds of the server and of the browser between start() and stop()."""

    def __init__(self, server_pid: int) -> None:
        self._server_pid = server_pid

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._server0 = _cpu_s(self._server_pid)
        self._browser0 = {pid: _cpu_s(pid) for pid in _chromium_pids()}

    def stop(self) -> tuple[float, float]:
        """(server cores, browser cores) averaged over the window."""
        wall = time.monotonic() - self._t0
        server = _cpu_s(self._server_pid) - self._server0
        browser = sum(_cpu_s(pid) - self._browser0.get(pid, 0.0) for pid in _chromium_pids())
        return server / wall, browser / wall


def _steps_per_s(run: RunDir, t0: float, t1: float) -> float:
    """The trainer's speed between wall times t0 and t1, from its train rows."""
    rows = [
        r
        for r in run.read_metrics()
        if r.get("split") == "train" and t0 <= r.get("time", 0.0) <= t1
    ]
    if len(rows) < 2:
        raise RuntimeError(f"the trainer logged {len(rows)} rows in the window; see {run.log_path}")
    return (rows[-1]["step"] - rows[0]["step"]) / (rows[-1]["time"] - rows[0]["time"])


def _window(run: RunDir, meter: CpuMeter, seconds: float) -> tuple[float, float, float]:
    """(trainer steps/s, server cores, browser cores) over the next `seconds`."""
    t0 = time.time()
    meter.start()
    time.sleep(seconds)
    while _rows_since(run, t0) < MIN_ROWS and time.time() - t0 < 10 * seconds:
        time.sleep(1)  # an evaluation, or a loaded machine: wait for enough rows
    server, browser = meter.stop()
    return _steps_per_s(run, t0, time.time()), server, browser


def _rows_since(run: RunDir, t0: float) -> int:
    return sum(r.get("split") == "train" and r.get("time", 0.0) >= t0 for r in run.read_metrics())


def _start_trainer(root: Path, dataset: str) -> RunDir:
    run = RunDir(root / RUN_NAME)
    command = [sys.executable, "-m", "vae_core", "train", "--run-dir", str(run.path)]
    command += ["--dataset", dataset, "--model", "mlp", "--threads", "1", "--epochs", "10000"]
    log = open(root / "trainer.log", "wb")  # open as long as the trainer lives
    subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=devserver.REPO)
    deadline = time.monotonic() + 180
    while not run.metrics_path.exists() or len(run.read_metrics()) < 5:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the trainer did not start; see {root / 'trainer.log'}")
        time.sleep(0.5)
    return run


def _open_tabs(context: BrowserContext, url: str, n: int) -> list[Page]:
    pages = []
    for _ in range(n):
        page = context.new_page()
        page.set_default_timeout(300_000)  # a loaded, shared machine
        page.goto(f"{url}/?run={RUN_NAME}&view=Training")
        pages.append(page)
    for page in pages:
        _wait_step_moves(page)
    return pages


def _step_text(page: Page) -> str:
    frame = page.frame(url=LIVE_CHARTS)
    if frame is not None and frame.locator(STEP_READOUT).count():
        return frame.locator(STEP_READOUT).inner_text()
    metric = page.locator(STEP_METRIC)
    return metric.inner_text() if metric.count() else ""


def _wait_step_moves(page: Page, timeout_s: float = 300) -> float:
    """Seconds until the Step readout shows another value than now (and a value)."""
    before, t0 = _step_text(page), time.monotonic()
    while _step_text(page) in (before, ""):
        if time.monotonic() - t0 > timeout_s:
            raise TimeoutError("the step readout did not move")
        page.wait_for_timeout(20)
    return time.monotonic() - t0


def _set_hidden(page: Page, hidden: bool) -> None:
    for frame in page.frames:
        frame.evaluate(SET_VISIBILITY, hidden)


def _repeat(browser: Browser, url: str, run: RunDir, meter: CpuMeter, args) -> dict:
    """One pass: the trainer alone, then with each tab count; one hidden tab at the end."""
    figures: dict = {}
    for n in args.tabs:
        alone, _, _ = _window(run, meter, args.seconds)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        _open_tabs(context, url, n)
        time.sleep(3)  # let the first draws settle
        speed, server, browser_cpu = _window(run, meter, args.seconds)
        figures[n] = (speed / alone, server, browser_cpu)
        print(
            f"  {n} tab(s): {speed / alone:.1%} of {alone:.1f} steps/s alone, server "
            f"{server:.3f} core, browser {browser_cpu:.3f} core, load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        context.close()
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    (page,) = _open_tabs(context, url, 1)
    _set_hidden(page, True)
    time.sleep(2)
    _, server, browser_cpu = _window(run, meter, args.seconds)
    _set_hidden(page, False)
    figures["hidden"] = (server, browser_cpu, _wait_step_moves(page))
    print(
        f"  hidden: server {server:.3f} core, browser {browser_cpu:.3f} core, caught up "
        f"after {figures['hidden'][2]:.2f} s",
        flush=True,
    )
    context.close()
    return figures


def _spread(values: list[float], fmt: str) -> str:
    """min / median / max."""
    return "/".join(format(v, fmt) for v in (min(values), statistics.median(values), max(values)))


def _report(passes: list[dict], tabs: list[int]) -> None:
    print("figures are min/median/max over the repeats")
    for n in tabs:
        keeps = [100 * p[n][0] for p in passes]
        print(
            f"{n} tab(s) on Training: trainer keeps {_spread(keeps, '.0f')} %, "
            f"server {_spread([p[n][1] for p in passes], '.3f')} core, "
            f"browser {_spread([p[n][2] for p in passes], '.3f')} core"
        )
    hidden = [p["hidden"] for p in passes]
    print(
        f"1 hidden tab: server {_spread([h[0] for h in hidden], '.3f')} core, "
        f"browser {_spread([h[1] for h in hidden], '.3f')} core; shown again: the step "
        f"readout moved after {_spread([h[2] for h in hidden], '.2f')} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15, help="length of each window")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tabs", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--dataset", default=None, help="default: fashion-mnist if on disk")
    args = parser.parse_args()
    dataset = args.dataset or (
        "fashion-mnist" if is_available_offline("fashion-mnist") else "shapes"
    )
    print(f"load before: {os.getloadavg()}; dataset {dataset}, {args.seconds:g} s windows")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run = _start_trainer(root, dataset)
        try:
            env = {"VAE_EXPLORER_RUNS": str(root)}
            port = devserver.free_port()
            server = devserver.start_streamlit("explorer/app.py", port, env)
            try:
                url = f"http://127.0.0.1:{port}"
                devserver.wait_healthy(url, server)
                meter = CpuMeter(server.pid)
                with sync_playwright() as p:
                    browser = devserver.launch_chromium(p)
                    passes = [_repeat(browser, url, run, meter, args) for _ in range(args.repeats)]
                    browser.close()
            finally:
                devserver.stop(server)
        finally:
            kill_trainer(run, signal.SIGKILL)
    print(f"load after: {os.getloadavg()}")
    _report(passes, args.tabs)
    print(json.dumps({"passes": [{str(k): v for k, v in p.items()} for p in passes]}))


if __name__ == "__main__":
    main()
