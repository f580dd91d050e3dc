from __future__ import annotations

import pytest

from vae_core.config import ModelConfig, TrainConfig


def test_model_config_round_trips_through_json():
    config = ModelConfig(
        image_shape=(3, 64, 64),
        architecture="conv",
        latent_dim=10,
        conv_channels=(8, 16, 32, 32),
        likelihood="gaussian",
    )
    assert ModelConfig.from_json(config.to_json()) == config


def test_train_config_round_trips_through_json():
    config = TrainConfig(dataset="shapes", dataset_options={"image_size": 28}, beta=4.0, lr=3e-4)
    assert TrainConfig.from_json(config.to_json()) == config


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"latent_dim": 0}, "latent_dim must be in 1..256, got 0"),
        ({"latent_dim": 257}, "got 257"),
        ({"architecture": "rnn"}, "architecture must be one of"),
        ({"likelihood": "poisson"}, "likelihood must be one of"),
        (
            {"architecture": "conv", "image_shape": (1, 28, 28), "conv_channels": (8, 8, 8)},
            "divisible by 8, got 28x28",
        ),
        ({"image_shape": (2, 28, 28)}, "channels must be 1 or 3"),
    ],
)
def test_model_config_rejects_bad_values_with_the_value_in_the_message(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        ModelConfig(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": 0}, "lr must be a finite number in"),
        ({"lr": -1e-3}, "got -0.001"),
        ({"lr": float("nan")}, "lr must be a finite number in .* got nan"),
        ({"beta": float("inf")}, "beta must be a finite number in .* got inf"),
        ({"batch_size": 0}, "batch_size must be in 1..65536, got 0"),
        ({"beta": -0.5}, r"beta must be a finite number in \[0, 1000\], got -0.5"),
        ({"epochs": 0}, "epochs must be in 1..10000"),
        ({"epochs": 10**6}, "epochs must be in 1..10000"),
        ({"device": "tpu"}, "device must be one of"),
    ],
)
def test_train_config_rejects_bad_values_with_the_value_in_the_message(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_from_dict_names_unknown_fields():
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['latent'\]"):
        ModelConfig.from_dict({"latent": 3})
