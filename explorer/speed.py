"""How long a new run will take, from the speed recent runs of its kind measured here.

Reads only config.json and status.json (no metrics log, no torch): the New run form is on
the first page.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from vae_core.rundir import list_runs

TRAIN_IMAGES = {"mnist": 60_000, "fashion-mnist": 60_000}  # shapes: the form's count
RECENT_RUNS = 5  # the newest runs of the same kind whose speeds are pooled


def measured_speed(root: Path, dataset: str, architecture: str) -> tuple[float, int] | None:
    """(median training images per second, runs measured) over the newest RECENT_RUNS runs
    under `root` of this dataset and model that measured a speed; None when there are none."""
    speeds = []
    for run in list_runs(root):  # newest first
        try:
            model_cfg, train_cfg = run.read_config()
            status = run.read_status()
        except (ValueError, OSError):
            continue  # a damaged run tells nothing
        if status is None or status.samples_per_s <= 0:
            continue
        if train_cfg.dataset == dataset and model_cfg.architecture == architecture:
            speeds.append(status.samples_per_s)
            if len(speeds) == RECENT_RUNS:
                break
    return (statistics.median(speeds), len(speeds)) if speeds else None


def estimate_line(
    root: Path, dataset: str, architecture: str, epochs: int, shapes_images: int
) -> str:
    """One line for the form: "About 4 min (...)", or why there is no estimate yet."""
    images = TRAIN_IMAGES.get(dataset, shapes_images if dataset == "shapes" else None)
    if images is None:
        return "Run time: no estimate for an image folder (its size is read at Start)."
    measured = measured_speed(root, dataset, architecture)
    if measured is None:
        kind = f"{dataset} {architecture}"
        return f"Run time: no estimate yet (no {kind} run here has measured its speed)."
    per_s, count = measured
    seconds = epochs * images / per_s
    kind = f"{dataset} {architecture}"
    source = f"the last {kind} run" if count == 1 else f"median of the last {count} {kind} runs"
    return (
        f"About {duration(seconds)} of training, at {per_s:,.0f} images/s ({source} here; "
        "evaluation adds a little)."
    )


def duration(seconds: float) -> str:
    """'40 s', '7 min', '2 h 05 min'."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"
