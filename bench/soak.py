"""Soak: one app, runs training, browser tabs opened and closed across every view, trainer
control cycles and uploads, while the server's threads, memory and open files are sampled.

    python bench/soak.py [--minutes 60] [--tabs 3] [--sample-s 10]

Starts `streamlit run explorer/app.py` on a temp runs root and a Shapes run from the same
process (as the sidebar's Start does). Then, until the time is up: every few seconds a new
Chromium tab opens a random view of a random run (the oldest tab closes beyond --tabs), an
upload goes into *Inspect image* now and then, and the newest run is cycled through Pause /
Resume / Stop / Resume / Fork. Prints a sample line (threads, RSS, open files of the server)
every --sample-s and, at the end: first / last / max of each, exceptions in the server's log
and in the pages, and runs whose status or config can no longer be read. Flat, 0, 0 is a pass.
"""

from __future__ import annotations

import argparse
import io
import random
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image
from playwright.sync_api import Page, sync_playwright

from explorer import runs
from tools import devserver
from vae_core.run_errors import RunDamaged
from vae_core.rundir import RunDir

VIEWS = ("Training", "Latent sliders", "Scatter", "Interpolation", "Inspect image",
         "Disentanglement", "Prior samples", "Compare")  # fmt: skip
# Epochs enough to outlast the soak: a finished run refuses Pause / Stop, and a fork asks for
# more epochs than its parent's.
EPOCHS = 5_000
CHOICES = runs.RunChoices(dataset="shapes", latent_dim=4, epochs=EPOCHS, image_size=28,
                          num_samples=2048, hidden_dim=64, batch_size=64)  # fmt: skip
CONTROLS = ("pause", "resume", "stop", "resume", "fork")


def sample(pid: int) -> tuple[int, float, int]:
    """(threads, RSS in MB, open files) of process `pid`."""
    proc = Path(f"/proc/{pid}")
    status = (proc / "status").read_text()
    rss_kib = int(next(line.split()[1] for line in status.splitlines() if line[:6] == "VmRSS:"))
    return len(list((proc / "task").iterdir())), rss_kib / 1024, len(list((proc / "fd").iterdir()))


def open_file_kinds(pid: int) -> Counter:
    """The server's open files by kind (socket, pipe, anon_inode:..., or a file's suffix)."""
    kinds: Counter = Counter()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = str(fd.readlink())
        except OSError:  # closed meanwhile
            continue
        kind = target.split("[")[0] if not target.startswith("/") else Path(target).suffix
        kinds[kind or "other"] += 1
    return kinds


def upload_png() -> bytes:
    rng = np.random.default_rng()
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def open_tab(context, url: str, run: RunDir, view: str, upload: bool) -> tuple[Page, int]:
    """A new tab on `view` of `run`; (the page, exceptions shown once it settled)."""
    page = context.new_page()
    page.goto(f"{url}/?run={run.path.name}&view={view.replace(' ', '+')}")
    page.wait_for_timeout(3000)
    if upload and view == "Inspect image":
        own = page.get_by_test_id("stButtonGroup").get_by_text("Your own image", exact=True)
        if own.count():
            own.first.click()
            uploader = page.locator('[data-testid="stFileUploader"] input[type=file]')
            uploader.wait_for(state="attached", timeout=30_000)
            uploader.set_input_files(
                files=[{"name": "soak.png", "mimeType": "image/png", "buffer": upload_png()}]
            )
            page.wait_for_timeout(2000)
    return page, page.locator('[data-testid="stException"]').count()


def control(step: int, root: Path, trained: list[RunDir]) -> None:
    """The next of Pause / Resume / Stop / Resume / Fork on the newest run (a fork stops its
    parent: one trainer at a time); refusals logged."""
    run, action = trained[-1], CONTROLS[step % len(CONTROLS)]
    try:
        if action == "pause":
            runs.pause_run(run)
        elif action == "stop":
            runs.stop_run(run)
        elif action == "resume":
            runs.resume_run(run)
        else:
            trained.append(runs.fork_and_start(run, None, {"epochs": EPOCHS + 1}, root=root))
            runs.stop_run(run)
    except (RuntimeError, ValueError, OSError) as err:
        print(f"  {action} refused: {err}")


def damaged(root: Path) -> list[str]:
    """Runs under `root` whose config or status cannot be read (dot-folders are the app's own)."""
    bad = []
    for path in sorted(p for p in root.iterdir() if p.is_dir() and p.name[0] != "."):
        try:
            RunDir(path).read_status()
            RunDir(path).read_config()
        except (RunDamaged, OSError, ValueError) as err:
            bad.append(f"{path.name}: {err}")
    return bad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--tabs", type=int, default=3, help="tabs open at once")
    parser.add_argument("--sample-s", type=float, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root, log_path = Path(tmp) / "runs", Path(tmp) / "server.log"
        root.mkdir()
        trained = [runs.start_run(CHOICES, root)]
        port = devserver.free_port()
        url = f"http://127.0.0.1:{port}"
        with log_path.open("wb") as log:
            server = devserver.start_streamlit(
                "explorer/app.py", port, {runs.RUNS_ROOT_ENV: str(root)}, log=log
            )
        try:
            devserver.wait_healthy(url, server)
            samples, page_exceptions = soak(url, server.pid, root, log_path, trained, args)
        finally:
            devserver.stop(server)
            for run in trained:
                if runs.run_status(run).is_live:
                    runs.stop_run(run)
        report(samples, page_exceptions, log_path.read_text(errors="replace"), damaged(root))
        deadline = time.monotonic() + 60  # the folder goes away once no trainer writes in it
        while any(runs.run_status(r).is_live for r in trained) and time.monotonic() < deadline:
            time.sleep(1)


SESSION_TTL_S = 120  # Streamlit's server.disconnectedSessionTTL, left at its default
TCP_STATES = {"01": "established", "06": "time_wait", "08": "close_wait", "0A": "listen"}


def socket_kinds(pid: int) -> Counter:
    """The server's sockets by kind: TCP by state (from /proc/net/tcp*), unix, other."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = str(fd.readlink())
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    kinds: Counter = Counter()
    for table in ("tcp", "tcp6", "unix"):
        lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        for line in lines:
            fields = line.split()
            inode = fields[6] if table == "unix" else fields[9]
            if inode in inodes:
                inodes.discard(inode)
                kinds["unix" if table == "unix" else TCP_STATES.get(fields[3], fields[3])] += 1
    kinds["other socket"] += len(inodes)
    return +kinds


def soak(
    url: str, pid: int, root: Path, log_path: Path, trained: list[RunDir], args
) -> tuple[list, int]:
    samples, page_exceptions, tabs, step = [], 0, [], 0
    deadline, next_sample = time.monotonic() + args.minutes * 60, 0.0
    with sync_playwright() as p:
        browser = devserver.launch_chromium(p)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        while time.monotonic() < deadline:
            if time.monotonic() >= next_sample:
                samples.append(sample(pid))
                threads, rss, files = samples[-1]
                line = f"threads {threads:4d}  rss {rss:7.1f} MB  files {files:4d}"
                tracebacks = log_path.read_text(errors="replace").count("Traceback")
                line += f"  exceptions: page {page_exceptions} log {tracebacks}"
                line += f"  sockets {dict(socket_kinds(pid))}"
                print(
                    f"{len(samples) * args.sample_s:6.0f} s  {line}  runs {len(trained)}",
                    flush=True,
                )
                next_sample = time.monotonic() + args.sample_s
            run, view = random.choice(trained), random.choice(VIEWS)
            page, shown = open_tab(context, url, run, view, upload=random.random() < 0.3)
            page_exceptions += shown
            tabs.append(page)
            while len(tabs) > args.tabs:
                tabs.pop(0).close()
            if random.random() < 0.2:
                control(step, root, trained)
                step += 1
        print(f"open files by kind at the end: {dict(open_file_kinds(pid).most_common())}")
        print(f"sockets at the end: {dict(socket_kinds(pid))}")
        browser.close()
    # What the server holds once no page is open. Streamlit keeps a closed tab's session (and
    # its script event loop: two unix sockets) for server.disconnectedSessionTTL (120 s).
    closed = time.monotonic()
    while time.monotonic() - closed < SESSION_TTL_S + 30:
        time.sleep(args.sample_s)
        threads, rss, files = sample(pid)
        print(
            f"{time.monotonic() - closed:4.0f} s after the browser closed: threads {threads}, "
            f"rss {rss:.1f} MB, files {files}, sockets {dict(socket_kinds(pid))}",
            flush=True,
        )
    return samples, page_exceptions


def report(samples: list, page_exceptions: int, log: str, bad: list[str]) -> None:
    for name, values in zip(
        ("threads", "rss MB", "open files"), zip(*samples, strict=True), strict=True
    ):
        print(f"{name}: first {values[0]:.0f}, last {values[-1]:.0f}, max {max(values):.0f}")
    print(f"tracebacks in the server log: {log.count('Traceback')}")
    print(f"exceptions shown in pages: {page_exceptions}")
    print(f"runs damaged: {len(bad)}" + "".join(f"\n  {line}" for line in bad))


if __name__ == "__main__":
    main()
