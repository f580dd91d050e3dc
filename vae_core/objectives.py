"""The VAE objective as pure functions: per-dim KL, likelihoods, ELBO terms, IWAE bound.

Every quantity is in nats per example. The loss is the negative ELBO, with the KL
term weighted by beta for training; the reported ELBO always uses beta = 1.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from vae_core.models import LatentVariableModel, VAEOutput

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

    def loss(self, beta: float = 1.0, free_bits: float = 0.0) -> torch.Tensor:
        """Training objective, mean over the batch: recon + beta * KL.

        With free bits (Kingma et al. 2016, eq. 15) each dimension's batch-mean KL counts as
        at least `free_bits` nats, so no gradient pushes a dimension below it.
        """
        kl_per_dim = self.kl_per_dim.mean(0)  # (D,)
        if free_bits > 0:
            kl_per_dim = kl_per_dim.clamp(min=free_bits)
        return self.recon.mean() + beta * kl_per_dim.sum()


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


def model_log_likelihood(
    model: LatentVariableModel, x: torch.Tensor, decoded: torch.Tensor
) -> torch.Tensor:
    """log p(x|z) under `model`'s likelihood: (B,)."""
    return log_likelihood(x, decoded, model.config.likelihood, getattr(model, "log_scale", None))


def elbo_terms(model: LatentVariableModel, x: torch.Tensor) -> ElboTerms:
    """One-sample Monte Carlo ELBO terms for a batch x: (B, C, H, W) in [0, 1]."""
    return terms_from_output(model, x, model(x))


def terms_from_output(model: LatentVariableModel, x: torch.Tensor, out: VAEOutput) -> ElboTerms:
    """ELBO terms from a forward pass already made (e.g. by DDP, or under autocast): they are
    computed in fp32, since a bf16 log-likelihood summed over pixels loses whole nats."""
    decoded, mu, logvar = out.decoded.float(), out.mu.float(), out.logvar.float()
    recon = -model_log_likelihood(model, x, decoded)
    return ElboTerms(recon=recon, kl_per_dim=gaussian_kl_per_dim(mu, logvar))


def _log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))) summed over the last dim."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar)).sum(-1)


DECODE_BUDGET = 2**22  # decoded values (pixels x images) held at once: 16 MB of float32


@torch.no_grad()
def log_likelihood_iwae(
    model: LatentVariableModel, x: torch.Tensor, k: int = 5000, max_decode_batch: int | None = None
) -> torch.Tensor:
    """Importance-weighted estimate of log p(x) with k samples: (B,).

    log p(x) ~= logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log k
    (Burda et al. 2015, eq. 8). At most `max_decode_batch` images are decoded at once: a
    group of images shares one decode when k is small, and k is split in chunks when large.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if max_decode_batch is None:  # 5,350 images at 28x28, 341 at 64x64 RGB
        max_decode_batch = max(1, DECODE_BUDGET // x[0].numel())
    mu, logvar = model.encode(x)  # (B, D)
    group = max(1, max_decode_batch // k)  # images per decode
    chunk = min(k, max_decode_batch)  # samples per decode
    estimates = []
    for start in range(0, x.shape[0], group):
        xs, mus, logvars = (t[start : start + group] for t in (x, mu, logvar))
        log_w = torch.cat(
            [_log_weights(model, xs, mus, logvars, min(chunk, k - s)) for s in range(0, k, chunk)]
        )  # (k, g)
        estimates.append(torch.logsumexp(log_w, 0) - math.log(k))
    return torch.cat(estimates)


def _log_weights(
    model: LatentVariableModel, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, n: int
) -> torch.Tensor:
    """log p(x|z) + log p(z) - log q(z|x) for n samples z ~ q(z|x) of each image: (n, g)."""
    g = x.shape[0]
    mu_n, logvar_n = mu.expand(n, g, -1), logvar.expand(n, g, -1)  # (n, g, D)
    z = model.reparameterize(mu_n, logvar_n)  # (n, g, D)
    x_n = x.expand(n, *x.shape).reshape(n * g, *x.shape[1:])  # (n * g, C, H, W)
    decoded = model.decode(z.reshape(n * g, -1))
    log_px_z = model_log_likelihood(model, x_n, decoded).view(n, g)
    log_pz = _log_normal(z, torch.zeros_like(z), torch.zeros_like(z))  # (n, g)
    return log_px_z + log_pz - _log_normal(z, mu_n, logvar_n)
