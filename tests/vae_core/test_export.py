"""vae_core.export: the decoder payload is JSON-able, self-describing and decodes like PyTorch."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vae_core.config import ModelConfig
from vae_core.export import decoder_payload
from vae_core.models import VAE


def _weights(payload: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(payload["weights_b64"]), dtype="<f4")


def _reference_decode(payload: dict, z: np.ndarray) -> np.ndarray:
    """Interpret the payload with numpy/torch functional ops, using nothing but the payload."""
    weights = _weights(payload)

    def tensor(name: str) -> torch.Tensor:
        start, length = payload["offsets"][name]
        return torch.from_numpy(weights[start : start + length].copy())

    x = torch.from_numpy(z).float()  # (B, D)
    for op in payload["layers"]:
        kind = op["op"]
        if kind == "linear":
            x = F.linear(x, tensor(op["w"]).view(op["out"], op["in"]), tensor(op["b"]))
        elif kind == "conv_transpose2d":
            k = op["kernel"]
            w = tensor(op["w"]).view(op["in_ch"], op["out_ch"], k, k)
            x = F.conv_transpose2d(x, w, tensor(op["b"]), op["stride"], op["padding"])
        elif kind == "reshape":
            x = x.reshape(x.shape[0], *op["shape"])
        elif kind == "relu":
            x = torch.relu(x)
        elif kind == "sigmoid":
            x = torch.sigmoid(x)
        elif kind == "clamp01":
            x = x.clamp(0, 1)
    return x.numpy()


def test_payload_survives_a_json_round_trip(tiny_model_config: ModelConfig) -> None:
    payload = decoder_payload(VAE(tiny_model_config))
    assert json.loads(json.dumps(payload)) == payload


def test_weight_buffer_holds_exactly_the_decoder_parameters(tiny_model_config: ModelConfig) -> None:
    model = VAE(tiny_model_config)
    payload = decoder_payload(model)
    num_params = sum(p.numel() for p in model.decoder.parameters())
    assert payload["num_floats"] == num_params == _weights(payload).size
    assert sum(length for _, length in payload["offsets"].values()) == num_params


def test_offsets_point_at_the_named_parameters(tiny_model_config: ModelConfig) -> None:
    model = VAE(tiny_model_config)
    payload = decoder_payload(model)
    weights = _weights(payload)
    for name, tensor in model.state_dict().items():
        if name.startswith("decoder."):
            start, length = payload["offsets"][name]
            np.testing.assert_array_equal(weights[start : start + length], tensor.view(-1).numpy())


def test_payload_decodes_like_decode_image(tiny_model_config: ModelConfig) -> None:
    model = VAE(tiny_model_config)
    payload = decoder_payload(model)
    z = torch.randn(5, tiny_model_config.latent_dim)
    expected = model.decode_image(z).numpy()
    np.testing.assert_allclose(_reference_decode(payload, z.numpy()), expected, atol=1e-6)


def test_mlp_ops_mirror_the_mlp_decoder() -> None:
    config = ModelConfig(architecture="mlp", latent_dim=3, hidden_dim=8)
    ops = [op["op"] for op in decoder_payload(VAE(config))["layers"]]
    assert ops == ["linear", "relu", "linear", "reshape", "sigmoid"]


def test_conv_ops_upsample_to_the_image_shape() -> None:
    config = ModelConfig(
        image_shape=(3, 32, 32),
        architecture="conv",
        latent_dim=4,
        hidden_dim=8,
        conv_channels=(4, 8, 8),
        likelihood="gaussian",
    )
    layers = decoder_payload(VAE(config))["layers"]
    deconvs = [op for op in layers if op["op"] == "conv_transpose2d"]
    assert [op["out_hw"] for op in deconvs] == [[8, 8], [16, 16], [32, 32]]
    assert deconvs[-1]["out_ch"] == 3
    assert layers[-1] == {"op": "clamp01"}


def test_version_defaults_to_a_hash_that_changes_with_the_weights() -> None:
    model = VAE(ModelConfig(latent_dim=2, hidden_dim=8))
    first = decoder_payload(model)["version"]
    assert decoder_payload(model)["version"] == first
    with torch.no_grad():
        model.decoder.out.bias.add_(1.0)
    assert decoder_payload(model)["version"] != first


def test_explicit_version_is_passed_through() -> None:
    model = VAE(ModelConfig(latent_dim=2, hidden_dim=8))
    assert decoder_payload(model, version=7)["version"] == 7


def test_unknown_decoder_layer_is_refused_not_skipped() -> None:
    model = VAE(ModelConfig(architecture="conv", latent_dim=2, hidden_dim=8, conv_channels=(4, 8)))
    model.decoder.deconvs.insert(1, nn.BatchNorm2d(4))
    with pytest.raises(TypeError, match="BatchNorm2d"):
        decoder_payload(model)
