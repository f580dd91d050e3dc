"""The browser decoder (decoder.mjs, run in Node) matches PyTorch's decode_image to 1e-4."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from vae_core.config import ModelConfig
from vae_core.export import decoder_payload
from vae_core.models import VAE

ROOT = Path(__file__).resolve().parents[2]
DECODER_JS = ROOT / "explorer" / "components" / "live_decoder" / "decoder.mjs"
RUNNER = Path(__file__).with_name("parity_runner.mjs")
NODE = shutil.which("node")

PARITY_CONFIGS = {
    **{
        f"mlp-28-d{d}": ModelConfig(architecture="mlp", latent_dim=d, hidden_dim=400)
        for d in (2, 10, 32)
    },
    **{
        f"conv-28-d{d}": ModelConfig(
            architecture="conv", latent_dim=d, hidden_dim=256, conv_channels=(32, 64)
        )
        for d in (2, 10, 32)
    },
    "conv-64-d10": ModelConfig(
        image_shape=(1, 64, 64),
        architecture="conv",
        latent_dim=10,
        hidden_dim=128,
        conv_channels=(16, 32, 32, 32),
    ),
    "conv-rgb-32-gaussian-d10": ModelConfig(
        image_shape=(3, 32, 32),
        architecture="conv",
        latent_dim=10,
        hidden_dim=128,
        conv_channels=(16, 32, 32),
        likelihood="gaussian",
    ),
    "mlp-rgb-32-gaussian-d32": ModelConfig(
        image_shape=(3, 32, 32),
        architecture="mlp",
        latent_dim=32,
        hidden_dim=64,
        likelihood="gaussian",
    ),
}

pytestmark = pytest.mark.skipif(NODE is None, reason="node (Node.js) is not on PATH")


def _node_decode(payload: dict, latents: torch.Tensor) -> np.ndarray:
    request = json.dumps({"payload": payload, "latents": latents.tolist()})
    result = subprocess.run(
        [NODE, str(RUNNER), str(DECODER_JS)],
        input=request,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return np.asarray(json.loads(result.stdout)["images"], dtype=np.float32)


def _unsaturated_model(config: ModelConfig) -> VAE:
    """A random-init VAE whose images vary but sit mostly inside (0, 1), so parity means something.

    Default init gives near-constant outputs (logits ~ 0); rescale the last layer so the raw
    outputs have std 2 (logits) or 0.3 around 0.5 (Gaussian means, some of which clamp).
    """
    model = VAE(config).eval()
    last = model.decoder.out if config.architecture == "mlp" else model.decoder.deconvs[-1]
    spread, center = (0.3, 0.5) if config.likelihood == "gaussian" else (2.0, 0.0)
    with torch.no_grad():
        out = model.decode(torch.randn(64, config.latent_dim))
        k = spread / out.std()
        # out' = k * (out - mean) + center, folded into the last layer's weight and bias
        last.weight.mul_(k)
        last.bias.sub_(out.mean()).mul_(k).add_(center)
    return model


@pytest.mark.parametrize("name", list(PARITY_CONFIGS))
def test_js_decoder_matches_pytorch_within_1e_4(name: str) -> None:
    config = PARITY_CONFIGS[name]
    model = _unsaturated_model(config)
    z = torch.cat([torch.randn(4, config.latent_dim), 3 * torch.rand(2, config.latent_dim).sign()])
    expected = model.decode_image(z).flatten(1).numpy()  # (B, C*H*W)
    assert 0.05 < expected.std()  # the images vary, so matching them means something
    actual = _node_decode(decoder_payload(model), z)
    np.testing.assert_allclose(actual, expected, atol=1e-4, rtol=0)


def test_js_decoder_refuses_a_latent_of_the_wrong_size() -> None:
    payload = decoder_payload(VAE(ModelConfig(latent_dim=3, hidden_dim=8)))
    with pytest.raises(subprocess.CalledProcessError) as error:
        _node_decode(payload, torch.zeros(1, 4))
    assert "z has 4 values" in error.value.stderr
