"""vae_core.history: log-spaced, bounded weight history written by the trainer."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from safetensors.torch import save_file

from vae_core import history
from vae_core.config import ModelConfig, TrainConfig
from vae_core.models import VAE
from vae_core.run_errors import RunDamaged
from vae_core.rundir import RunDir
from vae_core.train import train

SHAPES = {"image_size": 28, "num_samples": 512}


def tiny_configs(**overrides) -> tuple[ModelConfig, TrainConfig]:
    model_config = ModelConfig(image_shape=(1, 28, 28), latent_dim=3, hidden_dim=32)
    settings = {"dataset": "shapes", "dataset_options": SHAPES, "epochs": 3, "batch_size": 16}
    return model_config, TrainConfig(**{**settings, "num_threads": 1, "iwae_k": 0, **overrides})


def test_points_come_dense_early_and_log_spaced_later():
    saved, steps = [], None
    for step in range(100_000):
        if history.due(step, steps):
            saved.append(step)
            steps = step
    assert saved[:3] == [0, 25, 50]
    ratios = [b / a for a, b in itertools.pairwise(saved[5:])]
    assert all(1.19 < r < 1.21 for r in ratios)  # log-spaced once past the minimum gap
    assert len(saved) < 60


def test_thinning_keeps_first_and_newest_and_spreads_the_rest_in_log_step(tmp_run_dir):
    model = VAE(ModelConfig(latent_dim=2, hidden_dim=4))
    for step in range(0, 200, 2):  # far more points than the cap, evenly spaced
        history.save_point(tmp_run_dir, model, step, epoch=0, test_elbo=-float(step))
        history.thin(tmp_run_dir, max_points=10)
    steps = [p.step for p in history.list_points(tmp_run_dir)]
    assert len(steps) == 10 and steps[0] == 0 and steps[-1] == 198
    # log-step gaps, leaving out the first (from 0) and the last (the newest always stays)
    gaps = [math.log1p(b) - math.log1p(a) for a, b in itertools.pairwise(steps[1:-1])]
    assert max(gaps) / min(gaps) < 2.5  # close to log-uniform, not bunched at either end
    point = history.point_at(tmp_run_dir, 198)
    assert point.test_elbo == -198.0 and point.epoch == 0


def test_the_trainer_writes_a_bounded_history_with_every_epoch_end(tmp_path):
    run = RunDir(tmp_path / "run")
    train(*tiny_configs(), run)  # 32 steps an epoch, 96 in all
    points = history.list_points(run)
    steps = [p.step for p in points]
    assert steps[0] == 0 and {32, 64, 96} <= set(steps)
    assert steps == sorted(steps) and len(steps) <= history.MAX_POINTS
    assert [p.epoch for p in points if p.step in (32, 64, 96)] == [1, 2, 3]
    assert all(p.test_elbo < 0 for p in points)
    assert points[-1].test_elbo > points[0].test_elbo  # it learned
    weights = history.load_weights(points[-1])
    final = run.load_snapshot()[0]
    assert all(torch.equal(weights[k], final[k]) for k in final)
    assert history.disk_bytes(run) == sum(p.path.stat().st_size for p in points)


def test_a_resume_drops_points_the_dead_trainer_wrote_after_its_checkpoint(tmp_path):
    run = RunDir(tmp_path / "run")
    train(*tiny_configs(epochs=1), run)
    model = VAE(tiny_configs()[0])
    history.save_point(run, model, 999, epoch=5, test_elbo=-1.0)  # a lost future
    train(*tiny_configs(epochs=2), run, resume=True)
    steps = [p.step for p in history.list_points(run)]
    assert 999 not in steps and steps[-1] == 64


def test_a_renamed_history_file_resumes_by_its_header_step(tmp_path):
    run = RunDir(tmp_path / "run")
    train(*tiny_configs(epochs=1), run)
    point = history.list_points(run)[2]
    point.path.rename(point.path.with_name("step-abc.safetensors"))
    train(*tiny_configs(epochs=2), run, resume=True)  # drops and thins by the header's step
    steps = [p.step for p in history.list_points(run)]
    assert point.step in steps and steps == sorted(steps) and steps[-1] == 64


def test_a_history_file_without_a_step_is_named_in_one_line(tmp_path):
    run = RunDir(tmp_path / "run")
    train(*tiny_configs(epochs=1), run)
    model = VAE(tiny_configs()[0])
    bad = history.history_dir(run) / "step-abc.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, bad, {"step": "abc"})
    with pytest.raises(RunDamaged) as damaged:
        train(*tiny_configs(epochs=2), run, resume=True)
    assert "history/step-abc.safetensors" in str(damaged.value)
    assert "\n" not in str(damaged.value)


def test_weights_of_another_model_are_damaged_in_one_line(tmp_path):
    run = RunDir(tmp_path / "run").create()
    other = VAE(ModelConfig(image_shape=(1, 28, 28), latent_dim=3, hidden_dim=8))
    history.save_point(run, other, 10, epoch=0, test_elbo=-1.0)
    (point,) = history.list_points(run)
    with pytest.raises(RunDamaged, match=r"step-000000010\.safetensors: its weights do not fit"):
        history.load_into(VAE(tiny_configs()[0]), point)
