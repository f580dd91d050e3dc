"""Decoders for the live-drag browser tests and bench/live_sliders.py, seeded and deterministic.

Two built-in VAEs (`vae_core.models`) and two "imported" decoders written as plain
nn.Modules behind the wrapper interface an imported model has (`decode(z)` with a flat
(B, D) latent, `decoded_to_image`): one with GroupNorm, SiLU and transposed convolutions
(28x28), and one the size of a tiny image-diffusion autoencoder's decoder (about 1.2M
parameters, a 4x8x8 latent, 64x64 RGB). Random init decodes to near-uniform grey, so each
model's last layer is rescaled until its images vary and mostly sit inside (0, 1).
"""

from __future__ import annotations

import torch
from torch import nn

from vae_core.config import ModelConfig
from vae_core.models import VAE

# name -> (latent_dim, image shape) of the decoders below; the bench's and tests' cases
SHAPES = {
    "mlp": (20, (1, 28, 28)),
    "conv": (20, (1, 28, 28)),
    "conv-rgb": (20, (3, 32, 32)),
    "groupnorm": (16, (1, 28, 28)),
    "big": (256, (3, 64, 64)),
}


class ImportedModel(nn.Module):
    """The wrapper an imported model has: flat z in, the decoder's raw output out."""

    def __init__(self, decoder: nn.Module, latent_shape: tuple[int, ...], to_image: str) -> None:
        super().__init__()
        self.decoder = decoder
        self.latent_shape = latent_shape  # the decoder's own latent shape, e.g. (4, 8, 8)
        self.latent_dim = int(torch.Size(latent_shape).numel())
        self.to_image = to_image  # "sigmoid" (logits) or "tanh-range" (values in [-1, 1])

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z.reshape(z.shape[0], *self.latent_shape))

    def decoded_to_image(self, x: torch.Tensor) -> torch.Tensor:
        if self.to_image == "sigmoid":
            return torch.sigmoid(x)
        return (x * 0.5 + 0.5).clamp(0.0, 1.0)


def _gn_silu(channels: int) -> list[nn.Module]:
    return [nn.GroupNorm(8, channels), nn.SiLU()]


def groupnorm_decoder() -> ImportedModel:
    """16-d latent -> Linear -> (64, 7, 7) -> [GN, SiLU, ConvTranspose] x2 -> 1x28x28 logits."""
    decoder = nn.Sequential(
        nn.Linear(16, 64 * 7 * 7),
        nn.Unflatten(1, (64, 7, 7)),
        *_gn_silu(64),
        nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1),  # 14x14
        *_gn_silu(32),
        nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1),  # 28x28
        *_gn_silu(16),
        nn.Conv2d(16, 1, 3, padding=1),
    )
    return ImportedModel(decoder, (16,), "sigmoid")


class _ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_gn_silu(channels),
            nn.Conv2d(channels, channels, 3, padding=1),
            *_gn_silu(channels),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _up(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, padding=1)]


def big_decoder() -> ImportedModel:
    """A 4x8x8 latent -> 3x64x64, AutoencoderKL-decoder-shaped: conv_in, res blocks with
    GroupNorm + SiLU, nearest upsampling + conv three times, conv_out (about 1.2M params)."""
    decoder = nn.Sequential(
        nn.Conv2d(4, 128, 3, padding=1),
        _ResBlock(128),
        _ResBlock(128),
        *_up(128, 128),  # 16x16
        _ResBlock(128),
        *_up(128, 64),  # 32x32
        _ResBlock(64),
        *_up(64, 32),  # 64x64
        _ResBlock(32),
        *_gn_silu(32),
        nn.Conv2d(32, 3, 3, padding=1),
    )
    return ImportedModel(decoder, (4, 8, 8), "tanh-range")


def _built_in(name: str, latent_dim: int) -> VAE:
    if name == "conv":
        return VAE(ModelConfig(architecture="conv", latent_dim=latent_dim, conv_channels=(32, 64)))
    if name == "conv-rgb":
        config = ModelConfig(
            image_shape=(3, 32, 32),
            architecture="conv",
            latent_dim=latent_dim,
            conv_channels=(16, 32, 32),
            likelihood="gaussian",
        )
        return VAE(config)
    return VAE(ModelConfig(architecture="mlp", latent_dim=latent_dim))


def _last_layer(model: nn.Module) -> nn.Module:
    return [
        m for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d | nn.ConvTranspose2d)
    ][-1]


@torch.no_grad()
def _spread_out(model: nn.Module, latent_dim: int, spread: float, center: float) -> None:
    """Rescale the last layer so the raw outputs have std `spread` around `center`."""
    last = _last_layer(model)
    out = model.decode(torch.randn(64, latent_dim))
    k = spread / out.std()
    last.weight.mul_(k)
    last.bias.sub_(out.mean()).mul_(k).add_(center)


def build(name: str, latent_dim: int | None = None, version: int = 1) -> nn.Module:
    """The decoder `name` (a key of SHAPES) in eval mode; `version` > 1 shifts its output, as
    a newer snapshot of the same model would (same graph, other weights)."""
    torch.manual_seed(0)
    default_dim, _ = SHAPES[name]
    D = latent_dim or default_dim
    if name == "groupnorm":
        model: nn.Module = groupnorm_decoder()
    elif name == "big":
        model = big_decoder()
    else:
        model = _built_in(name, D)
    model.eval()
    logits = name in ("mlp", "conv", "groupnorm")
    spread, center = (2.0, 0.0) if logits else (0.6, 0.0) if name == "big" else (0.3, 0.5)
    _spread_out(model, D, spread, center)
    if version > 1:
        with torch.no_grad():
            _last_layer(model).bias.add_(0.4 * (version - 1) * (1 if logits else 0.25))
    return model


def latent_dim_of(model: nn.Module) -> int:
    config = getattr(model, "config", None)
    return int(config.latent_dim if config is not None else model.latent_dim)
