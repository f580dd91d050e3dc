"""Start, attach to and control training runs from the UI (no Streamlit calls here).

The run directory is the source of truth: the UI keeps only a run's name or path, so a
page reload or a second browser tab sees the same runs and never starts a duplicate.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vae_core.config import ModelConfig, TrainConfig
from vae_core.data import dataset_info
from vae_core.process import resume_training, start_training
from vae_core.rundir import MetricsReader, RunDir, Status, list_runs

RUNS_ROOT_ENV = "VAE_EXPLORER_RUNS"
LIVE_STATES = ("starting", "running", "paused")

# Trainers this UI process started. Kept only to reap them when they exit (no zombies);
# they run in their own session, so they outlive the UI and are controlled via the run dir.
_children: list[subprocess.Popen] = []


@dataclass(frozen=True)
class RunChoices:
    """What the user picked in the sidebar: everything needed to build both configs."""

    dataset: str
    architecture: str = "mlp"
    latent_dim: int = 10
    beta: float = 1.0
    lr: float = 1e-3
    batch_size: int = 128
    epochs: int = 5
    image_size: int | None = None  # shapes / folder only
    folder: str = ""  # folder only
    num_samples: int | None = None  # shapes only: training images to generate
    hidden_dim: int = 400
    dataset_options: dict[str, Any] = field(default_factory=dict)  # extra loader options


def runs_root() -> Path:
    """Where new runs go and where the run list looks: $VAE_EXPLORER_RUNS or ./runs."""
    return Path(os.environ.get(RUNS_ROOT_ENV) or "runs").expanduser()


def new_run_name(dataset: str, architecture: str, root: Path, now: float | None = None) -> str:
    """A fresh, sortable run name like 20261124-193000-shapes-mlp (suffixed if taken)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    base = f"{stamp}-{dataset}-{architecture}"
    name, n = base, 2
    while (root / name).exists():
        name, n = f"{base}-{n}", n + 1
    return name


def dataset_options(choices: RunChoices) -> dict[str, Any]:
    """The loader options the chosen dataset understands (others are dropped)."""
    options = dict(choices.dataset_options)
    if choices.dataset == "folder":
        if not choices.folder.strip():
            raise ValueError("dataset 'folder' needs the path of a folder of images")
        folder = Path(choices.folder.strip()).expanduser()
        if not folder.is_dir():
            raise ValueError(f"image folder not found: {folder}")
        options["path"] = str(folder.resolve())
    if choices.dataset in ("shapes", "folder") and choices.image_size:
        options["image_size"] = int(choices.image_size)
    if choices.dataset == "shapes" and choices.num_samples:
        options["num_samples"] = int(choices.num_samples)
    return options


def build_configs(choices: RunChoices) -> tuple[ModelConfig, TrainConfig]:
    """Sidebar choices -> the same validated dataclasses the CLI builds (ValueError if bad)."""
    options = dataset_options(choices)
    info = dataset_info(choices.dataset, **options)
    model_config = ModelConfig(
        image_shape=info.image_shape,
        architecture=choices.architecture,  # type: ignore[arg-type]
        latent_dim=int(choices.latent_dim),
        hidden_dim=int(choices.hidden_dim),
        likelihood=info.likelihood,  # type: ignore[arg-type]
    )
    train_config = TrainConfig(
        dataset=choices.dataset,
        dataset_options=options,
        epochs=int(choices.epochs),
        batch_size=int(choices.batch_size),
        lr=float(choices.lr),
        beta=float(choices.beta),
    )
    return model_config, train_config


def start_run(choices: RunChoices, root: Path | None = None) -> RunDir:
    """Validate the choices, then launch a trainer on a new run dir under `root`.

    Raises ValueError (bad hyperparameters, missing folder) before anything is written.
    """
    model_config, train_config = build_configs(choices)
    root = runs_root() if root is None else root
    root.mkdir(parents=True, exist_ok=True)
    run = RunDir(root / new_run_name(choices.dataset, choices.architecture, root))
    _children.append(start_training(model_config, train_config, run.path))
    return run


def resume_run(run: RunDir) -> None:
    """Continue a run: a live (paused) trainer is told to resume, a dead one is restarted."""
    status = run.read_status()
    if status is not None and status.is_alive():
        run.send_control("resume")
    else:
        _children.append(resume_training(run))


def pause_run(run: RunDir) -> None:
    run.send_control("pause")


def stop_run(run: RunDir) -> None:
    run.send_control("stop")


def apply_live(run: RunDir, beta: float, lr: float) -> None:
    """Send new beta / lr to the running trainer (ValueError when out of range)."""
    run.send_control(None, beta=beta, lr=lr)


def reap_children() -> None:
    """Collect exit codes of finished trainers this process started."""
    _children[:] = [p for p in _children if p.poll() is None]


def resolve_run(ref: str, root: Path | None = None) -> RunDir | None:
    """A run from a name under the root or from a path; None if it is not a run dir."""
    if not ref:
        return None
    root = runs_root() if root is None else root
    path = Path(ref).expanduser()
    candidates = [path] if path.is_absolute() or os.sep in ref else [root / ref, path]
    for candidate in candidates:
        run = RunDir(candidate)
        if run.exists():
            return run
    return None


def run_ref(run: RunDir, root: Path | None = None) -> str:
    """How a run is named in the URL: its folder name under the root, else its full path."""
    root = runs_root() if root is None else root
    try:
        if run.path.resolve().parent == root.resolve():
            return run.path.name
    except OSError:
        pass
    return str(run.path.resolve())


def run_names(root: Path | None = None) -> list[str]:
    """Run folder names under the root, newest first."""
    return [run.path.name for run in list_runs(runs_root() if root is None else root)]


def display_state(status: Status | None) -> str:
    """'starting' before the trainer wrote anything, else Status.display_state."""
    return "starting" if status is None else status.display_state


def is_live(status: Status | None) -> bool:
    """Whether a trainer is (or should soon be) writing this run."""
    return display_state(status) in LIVE_STATES


class MetricsLog:
    """All rows of one run's metrics.jsonl so far, read incrementally (only new bytes).

    One instance per run is shared by every session (see explorer.cache), so a lock keeps
    two sessions from reading the same new bytes twice.
    """

    def __init__(self, run: RunDir) -> None:
        self._reader = MetricsReader(run.metrics_path)
        self._lock = threading.Lock()
        self.rows: list[dict[str, Any]] = []

    def refresh(self) -> list[dict[str, Any]]:
        with self._lock:
            self.rows.extend(self._reader.read_new())
            return list(self.rows)


def latest_kl_per_dim(rows: list[dict[str, Any]]) -> list[float] | None:
    """KL per dimension from the newest train or test row; None before the first one."""
    for row in reversed(rows):
        if row.get("kl_per_dim"):
            return list(row["kl_per_dim"])
    return None


def status_fields(run: RunDir) -> dict[str, Any]:
    """status.json as written, including fields Status does not keep (beta, lr, total_steps)."""
    try:
        data = json.loads(run.status_path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def live_settings(run: RunDir) -> tuple[float, float]:
    """The (beta, lr) the trainer is using now: from status.json, else from config.json."""
    data = status_fields(run)
    try:
        return float(data["beta"]), float(data["lr"])
    except (KeyError, TypeError, ValueError):
        _, cfg = run.read_config()
        return cfg.beta, cfg.lr


def trainer_log_tail(run: RunDir, max_lines: int = 15) -> str:
    """The last lines of trainer.log (stdout/stderr of the trainer), for a failure's details."""
    try:
        text = run.log_path.read_bytes().decode(errors="replace")  # keep the \r of tqdm
    except OSError:
        return ""
    # tqdm redraws with carriage returns; keep only what each line finally showed.
    lines = [line.rsplit("\r", 1)[-1] for line in text.split("\n")]
    return "\n".join([line for line in lines if line.strip()][-max_lines:])
