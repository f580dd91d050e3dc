"""explorer.speed: the New run form's run-time estimate, from the speed runs measured."""

from __future__ import annotations

from pathlib import Path

from explorer import speed
from vae_core.config import ModelConfig, TrainConfig
from vae_core.rundir import RunDir


def _finished_run(root: Path, name: str, dataset: str, arch: str, per_s: float) -> None:
    run = RunDir(root / name)
    run.path.mkdir(parents=True)
    run.write_config(
        ModelConfig(architecture=arch, image_shape=(1, 28, 28), latent_dim=4),
        TrainConfig(dataset=dataset),
    )
    run.write_status("finished", samples_per_s=per_s, step=10)


def test_the_estimate_is_the_median_speed_of_runs_of_the_same_kind(tmp_path: Path) -> None:
    assert speed.estimate_line(tmp_path, "fashion-mnist", "mlp", 5, 0).startswith(
        "Run time: no estimate yet"
    )
    for i, per_s in enumerate((1000.0, 3000.0, 2000.0)):
        _finished_run(tmp_path, f"f{i}", "fashion-mnist", "mlp", per_s)
    _finished_run(tmp_path, "other-model", "fashion-mnist", "conv", 10.0)
    _finished_run(tmp_path, "other-data", "shapes", "mlp", 10.0)
    assert speed.measured_speed(tmp_path, "fashion-mnist", "mlp") == (2000.0, 3)
    line = speed.estimate_line(tmp_path, "fashion-mnist", "mlp", 4, 0)
    assert line.startswith(
        "About 2 min of training, at 2,000 images/s (median of the last 3"
    )  # 4 x 60,000 / 2,000
    assert speed.estimate_line(tmp_path, "shapes", "mlp", 1, 1200).startswith("About 2 min")
    assert "no estimate" in speed.estimate_line(tmp_path, "folder", "mlp", 1, 0)


def test_durations_read_naturally() -> None:
    assert [speed.duration(s) for s in (0.2, 40, 420, 7500)] == [
        "1 s",
        "40 s",
        "7 min",
        "2 h 05 min",
    ]
