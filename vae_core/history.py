"""A thinned history of weights, for the latent time-lapse and for forking a run.

The trainer saves the weights at roughly log-spaced steps (dense early, when the latent
space changes fastest) and at every epoch end, into history/step-*.safetensors. Past
MAX_POINTS it deletes the point whose neighbours are closest in log-step, so the count,
and with it the disk, stays bounded for any run length. Each file is written atomically
and carries its step, epoch, wall time and test ELBO in its header.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from vae_core.atomic import atomic_save_tensors
from vae_core.run_errors import RunDamaged
from vae_core.rundir import RunDir
from vae_core.safetensors_io import UnsafeCheckpointError, read_safetensors_metadata

MAX_POINTS = 60
GROWTH = 1.2  # the next log-spaced point comes at least 20 % more steps later...
MIN_GAP = 25  # ...and at least this many steps later (each point costs a small eval + write)
EVAL_IMAGES = 512  # the fixed test subset (the first images) each point's ELBO is taken on


@dataclass(frozen=True)
class HistoryPoint:
    step: int
    epoch: int
    time: float
    test_elbo: float  # nats per example, on a fixed test subset
    path: Path


def history_dir(run: RunDir) -> Path:
    return run.path / "history"


def due(step: int, last_saved: int | None) -> bool:
    """Whether `step` is the next log-spaced point after `last_saved` (None: none yet)."""
    if last_saved is None:
        return True
    return step >= max(last_saved + MIN_GAP, math.ceil(last_saved * GROWTH))


def save_point(
    run: RunDir, model: torch.nn.Module, step: int, epoch: int, test_elbo: float
) -> Path:
    """Write the weights at `step`, then thin the history back to MAX_POINTS."""
    folder = history_dir(run)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step-{step:09d}.safetensors"
    meta = {"step": str(step), "epoch": str(epoch), "time": str(time.time())}
    meta["test_elbo"] = repr(float(test_elbo))
    atomic_save_tensors(path, model.state_dict(), meta)
    thin(run)
    return path


def thin(run: RunDir, max_points: int = MAX_POINTS) -> int:
    """Delete points until at most `max_points` remain; returns how many were deleted.

    The first and the newest always stay; of the rest, the one whose neighbours are closest
    in log-step goes first (its removal opens the smallest hole), which keeps the spacing
    close to log-uniform.
    """
    points = list_points(run)
    deleted = 0
    while len(points) > max_points:
        logs = [math.log1p(p.step) for p in points]
        holes = [logs[i + 1] - logs[i - 1] for i in range(1, len(logs) - 1)]
        victim = 1 + holes.index(min(holes))
        points.pop(victim).path.unlink(missing_ok=True)
        deleted += 1
    return deleted


def list_points(run: RunDir) -> list[HistoryPoint]:
    """The history, oldest first, read from the file headers alone."""
    points = []
    for path in _paths(run):
        try:
            meta = read_safetensors_metadata(path)
            points.append(
                HistoryPoint(
                    step=int(meta["step"]),
                    epoch=int(meta["epoch"]),
                    time=float(meta["time"]),
                    test_elbo=float(meta["test_elbo"]),
                    path=path,
                )
            )
        except FileNotFoundError:
            continue  # thinned away while we listed
        except (OSError, ValueError, KeyError) as e:
            raise RunDamaged(run.path, f"history/{path.name}", _why(e)) from None
    # The step is the header's: the one source for the listing, thinning, resume and forks
    # (a file's name is only a hint, and may be anything a user renamed it to).
    return sorted(points, key=lambda p: p.step)


def _why(error: Exception) -> str:
    if isinstance(error, KeyError):
        return f"its header has no {error}"
    return f"its header is damaged ({error})" if isinstance(error, ValueError) else str(error)


def point_at(run: RunDir, step: int | None) -> HistoryPoint:
    """The point at `step` (None: the newest); ValueError naming the steps there are."""
    points = list_points(run)
    if not points:
        raise ValueError(f"{run.path} has no history yet (it is written while a run trains)")
    if step is None:
        return points[-1]
    for point in points:
        if point.step == step:
            return point
    steps = ", ".join(str(p.step) for p in points[-8:])
    raise ValueError(f"step {step} is not in the history of {run.path}; the newest: {steps}")


def fit_weights(
    model: torch.nn.Module, weights: dict[str, torch.Tensor], run_path: Path, file: str
) -> torch.nn.Module:
    """`model` holding `weights`; RunDamaged in one line when they do not fit it (a weights
    file copied from another run: other keys or shapes)."""
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:  # load_state_dict lists every problem, one per line
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        first = (lines[1:] or lines or ["wrong keys or shapes"])[0]
        first = first if len(first) <= 200 else first[:197] + "..."
        problem = f"its weights do not fit this run's model: {first}"
        raise RunDamaged(run_path, file, problem) from None
    return model


def load_into(model: torch.nn.Module, point: HistoryPoint) -> torch.nn.Module:
    """`model` (of the run's config) holding the weights at `point`; RunDamaged if they do
    not fit or the file is not safetensors."""
    run_path = point.path.parent.parent
    return fit_weights(model, load_weights(point), run_path, f"history/{point.path.name}")


def load_weights(point: HistoryPoint) -> dict[str, torch.Tensor]:
    from vae_core.safetensors_io import load_safetensors

    try:
        return load_safetensors(point.path)[0]
    except UnsafeCheckpointError as e:
        raise RunDamaged(point.path.parent.parent, f"history/{point.path.name}", e) from None


def drop_after(run: RunDir, step: int) -> int:
    """Delete points past `step`: on resume they belong to the dead trainer's lost future."""
    later = [p for p in list_points(run) if p.step > step]
    for point in later:
        point.path.unlink(missing_ok=True)
    return len(later)


def disk_bytes(run: RunDir) -> int:
    return sum(p.stat().st_size for p in _paths(run) if p.exists())


def _paths(run: RunDir) -> list[Path]:
    return sorted(history_dir(run).glob("step-*.safetensors"))
