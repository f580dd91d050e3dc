"""The VAE objective as pure functions: per-dim KL, likelihoods, ELBO terms, IWAE bound.

Every quantity is in nats per example. The loss is the negative ELBO, with the KL
term weighted by beta for training; the reported ELBO always uses beta = 1.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from vae_core.models import VAE

LOG_2PI = math.log(2 * math.pi)


class ElboTerms(NamedTuple):
    recon: torch.Tensor  # (B,) -log p(x|z), nats
    kl_per_dim: torch.Tensor  # (B, D) KL(q(z_d|x) || N(0, 1)), nats

    @property
    def kl(self) -> torch.Tensor:
        return self.kl_per_dim.sum(-1)  # (B,)

    @property
    def elbo(self) -> torch.Tensor:
        return -(self.recon + self.kl)  # (B,)

    def loss(self, beta: float = 1.0) -> torch.Tensor:
        """Training objective, mean over the batch: recon + beta * KL."""
        return (self.recon + beta * self.kl).mean()


def gaussian_kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) per dimension: (B, D).

    Kingma & Welling 2014, Appendix B: -0.5 * (1 + logvar - mu^2 - exp(logvar)).
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def log_likelihood(
    x: torch.Tensor,
    decoded: torch.Tensor,
    likelihood: str,
    log_scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """log p(x|z) summed over pixels: (B,).

    Args:
        x: (B, C, H, W) targets in [0, 1].
        decoded: (B, C, H, W) decoder logits (bernoulli) or means (gaussian).
        log_scale: gaussian only, log sigma of the observation noise (scalar).
    """
    if likelihood == "bernoulli":
        # BCE with logits is the stable form of x log p + (1 - x) log(1 - p).
        nll = F.binary_cross_entropy_with_logits(decoded, x, reduction="none")
    elif likelihood == "gaussian":
        if log_scale is None:
            raise ValueError("gaussian likelihood needs log_scale")
        # -log N(x; mean, sigma^2) = 0.5 * ((x - mean) / sigma)^2 + log sigma + 0.5 log 2pi
        nll = 0.5 * ((x - decoded) * torch.exp(-log_scale)).pow(2) + log_scale + 0.5 * LOG_2PI
    else:
        raise ValueError(f"unknown likelihood {likelihood!r}; use bernoulli or gaussian")
    return -nll.flatten(1).sum(-1)


def model_log_likelihood(model: VAE, x: torch.Tensor, decoded: torch.Tensor) -> torch.Tensor:
    """log p(x|z) under `model`'s likelihood: (B,)."""
    return log_likelihood(x, decoded, model.config.likelihood, getattr(model, "log_scale", None))


def elbo_terms(model: VAE, x: torch.Tensor) -> ElboTerms:
    """One-sample Monte Carlo ELBO terms for a batch x: (B, C, H, W) in [0, 1]."""
    out = model(x)
    recon = -model_log_likelihood(model, x, out.decoded)
    return ElboTerms(recon=recon, kl_per_dim=gaussian_kl_per_dim(out.mu, out.logvar))


def _log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))) summed over the last dim."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar)).sum(-1)


@torch.no_grad()
def log_likelihood_iwae(
    model: VAE, x: torch.Tensor, k: int = 5000, max_decode_batch: int = 8192
) -> torch.Tensor:
    """Importance-weighted estimate of log p(x) with k samples: (B,).

    log p(x) ~= logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log k
    (Burda et al. 2015, eq. 8). Samples are decoded in chunks of at most
    `max_decode_batch` images so k=5000 fits in memory for any B.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    mu, logvar = model.encode(x)  # (B, D)
    estimates = []
    for i in range(x.shape[0]):
        chunk = max(1, max_decode_batch)
        log_w = []
        for start in range(0, k, chunk):
            n = min(chunk, k - start)
            mu_i, logvar_i = mu[i].expand(n, -1), logvar[i].expand(n, -1)  # (n, D)
            z = model.reparameterize(mu_i, logvar_i)  # (n, D)
            x_i = x[i : i + 1].expand(n, *x.shape[1:])  # (n, C, H, W)
            log_px_z = model_log_likelihood(model, x_i, model.decode(z))  # (n,)
            log_pz = _log_normal(z, torch.zeros_like(z), torch.zeros_like(z))
            log_qz_x = _log_normal(z, mu_i, logvar_i)
            log_w.append(log_px_z + log_pz - log_qz_x)
        estimates.append(torch.logsumexp(torch.cat(log_w), 0) - math.log(k))
    return torch.stack(estimates)
