"""Threads the app can hold are bounded (issue 22: the page went blank on "can't start new
thread"): one torch thread per session's script run in the UI process, and app-started
trainers share the cores instead of each taking all of them."""

from __future__ import annotations

import math
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from explorer import runs

REPO = Path(__file__).resolve().parents[2]
SHAPES = runs.RunChoices(dataset="shapes", latent_dim=3, epochs=1, image_size=28, num_samples=256)

# Six script runs at once in a UI process whose OpenMP default is 8 threads (as on an 8-core
# machine): prints the threads before, and while all six are inside torch ops. A matrix
# product uses MKL's team, which torch.set_num_threads misses in a new thread: unbounded,
# each script thread brings up to cores - 1 more (MKL caps its team at the physical cores).
_SESSIONS = """
import os, threading
os.environ["OMP_NUM_THREADS"] = "8"
from explorer import runs
runs.keep_ui_threads()  # app.py: before the views import torch
import torch
runs.keep_ui_threads()  # app.py: after
torch.ones(1)
count = lambda: len(os.listdir("/proc/self/task"))
before, ready, done = count(), threading.Barrier(7), threading.Event()
def script_run():
    for _ in range(3):
        (torch.randn(384, 384) @ torch.randn(384, 384)).relu_().sum()
    ready.wait()
    done.wait()
threads = [threading.Thread(target=script_run) for _ in range(6)]
for t in threads:
    t.start()
ready.wait()
print(before, count())
done.set()
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc")
def test_concurrent_script_runs_hold_one_thread_each() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _SESSIONS],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    before, during = map(int, result.stdout.split())
    # Each script thread is its own thread and no more (unbounded: 6 x 7 OpenMP threads more).
    assert during - before <= 6 + 2


def test_the_app_gives_its_process_one_torch_thread_once_a_run_is_open(
    app, runs_root, run_name
) -> None:
    torch.set_num_threads(4)
    at = app(run_name, "Training")
    assert not at.exception
    seen: list[int] = []  # what the next session's script thread gets
    thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    assert seen == [runs.UI_TORCH_THREADS] == [1]


def test_trainers_share_the_cores_instead_of_each_taking_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runs.os, "cpu_count", lambda: 17)
    assert runs.trainer_threads(running=0) == 16  # alone: all cores but the UI's
    held = sum(runs.trainer_threads(running=n) for n in range(17))  # the default limit
    assert held <= 16 * (1 + math.log(17))  # not 17 x 16 = 272
    monkeypatch.setattr(runs, "running_trainers", lambda: 3)
    _, train_config = runs.configs_from_choices(SHAPES)
    assert train_config.num_threads == 4  # the fourth trainer: 16 // 4
