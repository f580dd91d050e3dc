"""Shared fixtures: tiny configs, a tiny batch, a temporary run directory, fixed seeds, and a
small run trained in-process on generated shapes."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from vae_core.config import ModelConfig, TrainConfig
from vae_core.rundir import RunDir

MODEL_CONFIGS = {
    "mlp-28": ModelConfig(image_shape=(1, 28, 28), architecture="mlp", latent_dim=4, hidden_dim=32),
    "conv-28": ModelConfig(
        image_shape=(1, 28, 28),
        architecture="conv",
        latent_dim=3,
        hidden_dim=16,
        conv_channels=(4, 8),
    ),
    "conv-rgb-32": ModelConfig(
        image_shape=(3, 32, 32),
        architecture="conv",
        latent_dim=5,
        hidden_dim=16,
        conv_channels=(4, 8, 8),
        likelihood="gaussian",
    ),
}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(params=list(MODEL_CONFIGS), ids=list(MODEL_CONFIGS))
def tiny_model_config(request: pytest.FixtureRequest) -> ModelConfig:
    return MODEL_CONFIGS[request.param]


@pytest.fixture
def tiny_batch(tiny_model_config: ModelConfig) -> torch.Tensor:
    return torch.rand(6, *tiny_model_config.image_shape)  # (B, C, H, W) in [0, 1]


@pytest.fixture
def tmp_run_dir(tmp_path) -> RunDir:
    return RunDir(tmp_path / "run").create()


USER_VAES = Path(__file__).resolve().parent / "user_vaes"  # VAE classes vae_core does not know
SMALL_SHAPES = {"image_size": 28, "num_samples": 512}


@pytest.fixture
def user_vaes(monkeypatch: pytest.MonkeyPatch) -> Path:
    """tests/user_vaes importable here and in trainer subprocesses, as a user's module is."""
    monkeypatch.syspath_prepend(str(USER_VAES))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(USER_VAES), os.environ.get("PYTHONPATH")]))
    )
    return USER_VAES


@pytest.fixture(scope="session")
def train_shapes_run() -> Callable[..., RunDir]:
    """Train a small MLP VAE on 28 px generated shapes into `path`, in this process (seconds):
    `train_shapes_run(path, latent_dim=4, num_samples=2048, epochs=2, **train_options)`."""
    from vae_core.train import train  # the tests that never train need not import the loop

    def make(
        path: Path,
        latent_dim: int = 4,
        num_samples: int = 2048,
        epochs: int = 2,
        **train_options: Any,
    ) -> RunDir:
        model_config = ModelConfig(
            image_shape=(1, 28, 28), architecture="mlp", latent_dim=latent_dim, hidden_dim=64
        )
        train_config = TrainConfig(
            dataset="shapes",
            dataset_options={"image_size": 28, "num_samples": num_samples},
            epochs=epochs,
            num_threads=1,
            **{"batch_size": 64, **train_options},
        )
        run = RunDir(path)
        train(model_config, train_config, run)
        return run

    return make
