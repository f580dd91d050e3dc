"""VAEs that vae_core does not know: their own layer names, ops the built-in models lack,
other return types, a spatial latent. The import tests load them as `foreign_vaes:Class`
(this folder on PYTHONPATH), exactly as a user's own module would be loaded."""

from __future__ import annotations

import torch
from torch import nn


class GroupNormVAE(nn.Module):
    """28x28 greyscale; GroupNorm + SiLU convolutions and transposed convolutions."""

    def __init__(self, zdim: int = 8, width: int = 16) -> None:
        super().__init__()
        self.zdim = zdim
        self.stem = nn.Sequential(
            nn.Conv2d(1, width, 3, stride=2, padding=1),  # 14x14
            nn.GroupNorm(4, width),
            nn.SiLU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1),  # 7x7
            nn.GroupNorm(4, width),
            nn.SiLU(),
        )
        self.to_stats = nn.Linear(width * 7 * 7, 2 * zdim)
        self.from_z = nn.Linear(zdim, width * 7 * 7)
        self.head = nn.Sequential(
            nn.GroupNorm(4, width),
            nn.SiLU(),
            nn.ConvTranspose2d(width, width, 4, stride=2, padding=1),  # 14x14
            nn.GroupNorm(4, width),
            nn.SiLU(),
            nn.ConvTranspose2d(width, 1, 4, stride=2, padding=1),  # 28x28
        )
        self.width = width

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.to_stats(self.stem(x).flatten(1)).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(self.from_z(z).view(-1, self.width, 7, 7))  # logits


class NormalVAE(nn.Module):
    """An MLP whose encode returns a torch.distributions.Normal; tanh, no ReLU."""

    def __init__(self, zdim: int = 6) -> None:
        super().__init__()
        self.enc_stack = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.Tanh())
        self.loc = nn.Linear(64, zdim)
        self.raw_scale = nn.Linear(64, zdim)
        self.dec_stack = nn.Sequential(nn.Linear(zdim, 64), nn.Tanh(), nn.Linear(64, 784))

    def encode(self, x: torch.Tensor) -> torch.distributions.Normal:
        h = self.enc_stack(x)
        return torch.distributions.Normal(self.loc(h), nn.functional.softplus(self.raw_scale(h)))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.dec_stack(z).view(-1, 1, 28, 28)


class SpatialVAE(nn.Module):
    """A spatial latent (channels x 7 x 7), as in an image-diffusion autoencoder."""

    def __init__(self, channels: int = 2) -> None:
        super().__init__()
        self.down = nn.Sequential(
            nn.Conv2d(1, 8, 4, stride=2, padding=1), nn.SiLU(), nn.Conv2d(8, 2 * channels, 4, 2, 1)
        )
        self.up = nn.Sequential(
            nn.ConvTranspose2d(channels, 8, 4, 2, 1), nn.SiLU(), nn.ConvTranspose2d(8, 1, 4, 2, 1)
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.down(x).chunk(2, dim=1)  # (B, C, 7, 7) each
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.up(z)


class OneTensorEncoder(NormalVAE):
    """Breaks the contract: encode returns one tensor."""

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.loc(self.enc_stack(x))


class WrongSizeDecoder(NormalVAE):
    """Breaks the contract: decodes 14x14 images for a 28x28 dataset."""

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.dec_stack(z)[:, :196].reshape(-1, 1, 14, 14)


class FrozenVAE(GroupNormVAE):
    """Explorable but not trainable: every weight is frozen."""

    def __init__(self, zdim: int = 4) -> None:
        super().__init__(zdim)
        self.requires_grad_(False)


NOT_A_MODULE = 42
