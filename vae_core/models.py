"""The VAE: MLP and convolutional encoders/decoders behind one `VAE(config)` module.

Inputs are float images in [0, 1] of shape (B, C, H, W). The decoder returns
logits (Bernoulli) or means (Gaussian); `decode_image` maps either to [0, 1].
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from vae_core.config import ModelConfig


class VAEOutput(NamedTuple):
    decoded: torch.Tensor  # (B, C, H, W) logits or means
    mu: torch.Tensor  # (B, D)
    logvar: torch.Tensor  # (B, D)
    z: torch.Tensor  # (B, D)


class MLPEncoder(nn.Module):
    def __init__(self, num_pixels: int, hidden_dim: int, latent_dim: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(num_pixels, hidden_dim)
        self.mu = nn.Linear(hidden_dim, latent_dim)
        self.logvar = nn.Linear(hidden_dim, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.relu(self.hidden(x.flatten(1)))  # (B, hidden)
        return self.mu(h), self.logvar(h)


class MLPDecoder(nn.Module):
    def __init__(self, latent_dim: int, hidden_dim: int, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.image_shape = image_shape
        self.hidden = nn.Linear(latent_dim, hidden_dim)
        self.out = nn.Linear(hidden_dim, math.prod(image_shape))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.hidden(z))  # (B, hidden)
        return self.out(h).view(-1, *self.image_shape)  # (B, C, H, W)


class ConvEncoder(nn.Module):
    """Stride-2 4x4 convolutions halve H and W per layer, then a dense layer."""

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        conv_channels: tuple[int, ...],
        hidden_dim: int,
        latent_dim: int,
    ) -> None:
        super().__init__()
        C, H, W = image_shape
        layers: list[nn.Module] = []
        for c_in, c_out in zip((C, *conv_channels[:-1]), conv_channels, strict=True):
            layers += [nn.Conv2d(c_in, c_out, kernel_size=4, stride=2, padding=1), nn.ReLU()]
        self.convs = nn.Sequential(*layers)
        scale = 2 ** len(conv_channels)
        self.hidden = nn.Linear(conv_channels[-1] * (H // scale) * (W // scale), hidden_dim)
        self.mu = nn.Linear(hidden_dim, latent_dim)
        self.logvar = nn.Linear(hidden_dim, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.convs(x).flatten(1)  # (B, C_last * H/s * W/s)
        h = torch.relu(self.hidden(h))  # (B, hidden)
        return self.mu(h), self.logvar(h)


class ConvDecoder(nn.Module):
    """Mirror of ConvEncoder: dense, reshape, stride-2 4x4 transposed convolutions."""

    def __init__(
        self,
        latent_dim: int,
        hidden_dim: int,
        conv_channels: tuple[int, ...],
        image_shape: tuple[int, int, int],
    ) -> None:
        super().__init__()
        C, H, W = image_shape
        scale = 2 ** len(conv_channels)
        self.start_shape = (conv_channels[-1], H // scale, W // scale)
        self.hidden = nn.Linear(latent_dim, hidden_dim)
        self.project = nn.Linear(hidden_dim, math.prod(self.start_shape))
        reversed_channels = conv_channels[::-1]
        layers: list[nn.Module] = []
        for i, c_in in enumerate(reversed_channels):
            last = i == len(reversed_channels) - 1
            c_out = C if last else reversed_channels[i + 1]
            layers.append(nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1))
            if not last:
                layers.append(nn.ReLU())
        self.deconvs = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.hidden(z))  # (B, hidden)
        h = torch.relu(self.project(h)).view(-1, *self.start_shape)  # (B, C_last, H/s, W/s)
        return self.deconvs(h)  # (B, C, H, W)


class LatentVariableModel(nn.Module):
    """What every view and the trainer rely on, whoever built the networks.

    Subclasses set `config` and define `encode(x) -> (mu, logvar)` with flat (B, D) codes
    and `decode(z) -> (B, C, H, W)` logits or means on the [0, 1] pixel scale; a gaussian
    likelihood also needs a scalar `log_scale` parameter.
    """

    config: ModelConfig

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """z = mu + sigma * eps, eps ~ N(0, I) (Kingma & Welling 2014, eq. 10)."""
        eps = torch.randn_like(mu)
        return mu + torch.exp(0.5 * logvar) * eps

    def forward(self, x: torch.Tensor) -> VAEOutput:
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar)
        return VAEOutput(self.decode(z), mu, logvar, z)

    def decoded_to_image(self, decoded: torch.Tensor) -> torch.Tensor:
        """Map decoder output to displayable pixel values in [0, 1]."""
        if self.config.likelihood == "bernoulli":
            return torch.sigmoid(decoded)
        return decoded.clamp(0.0, 1.0)

    @torch.no_grad()
    def decode_image(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, D) -> images (B, C, H, W) in [0, 1]: probabilities or clamped means."""
        return self.decoded_to_image(self.decode(z))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decode the posterior mean: the deterministic reconstruction shown in the UI."""
        mu, _ = self.encode(x)
        return self.decode_image(mu)


class VAE(LatentVariableModel):
    """q(z|x) = N(mu(x), diag(exp(logvar(x)))), p(z) = N(0, I), p(x|z) from the decoder."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        if c.architecture == "mlp":
            self.encoder: nn.Module = MLPEncoder(c.num_pixels, c.hidden_dim, c.latent_dim)
            self.decoder: nn.Module = MLPDecoder(c.latent_dim, c.hidden_dim, c.image_shape)
        else:
            self.encoder = ConvEncoder(c.image_shape, c.conv_channels, c.hidden_dim, c.latent_dim)
            self.decoder = ConvDecoder(c.latent_dim, c.hidden_dim, c.conv_channels, c.image_shape)
        if c.likelihood == "gaussian":
            # One learned observation noise scale shared by all pixels (sigma-VAE, Rybkin et al.
            # 2021): a fixed sigma would silently act as a hidden beta.
            self.log_scale = nn.Parameter(torch.zeros(()))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, C, H, W) in [0, 1] -> mu, logvar: (B, D)."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, D) -> logits (bernoulli) or means (gaussian): (B, C, H, W)."""
        return self.decoder(z)


def pick_device(choice: str = "auto", gpu: int | None = None) -> torch.device:
    """CUDA when present (or asked for), else CPU; `gpu` picks one (a torchrun local rank)."""
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for but no CUDA GPU is available; use auto")
        return torch.device("cuda", gpu) if gpu is not None else torch.device("cuda")
    return torch.device("cpu")
