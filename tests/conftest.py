"""Shared fixtures: tiny configs, a tiny batch, a temporary run directory, fixed seeds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from vae_core.config import ModelConfig
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
