"""How noisy is the encoder's ELBO gradient? Reparameterisation versus the score function.

For one batch x and S independent draws eps_s ~ N(0, I) (one z per image per draw), each
estimator gives S single-sample estimates g_s of grad_phi ELBO, phi the encoder's parameters
and the ELBO averaged over the batch, in nats:

- reparameterisation (Kingma & Welling 2014, eq. 10):
      g = grad_phi log p(x | mu + sigma * eps)
- score function / REINFORCE (Williams 1992), z = mu + sigma * eps held fixed (detached):
      g = (log p(x|z) - b) * grad_phi log q(z|x)
  with b = 0, or b = the mean of log p(x|z') over the other S - 1 draws of the same image:
  independent of this z, so the estimator stays unbiased while its variance drops.

The KL term is the analytic Gaussian KL. Its gradient is exact and identical in every
estimate, so it is included (each estimator's mean is the ELBO's gradient) and adds no
variance. Reported: the per-parameter variance of the g_s summed over the encoder's
parameters (the trace of the estimator's covariance), and its ratio to the reparameterisation's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from vae_core.models import LatentVariableModel
from vae_core.objectives import LOG_2PI, gaussian_kl_per_dim, model_log_likelihood

ESTIMATORS = ("reparam", "score", "score_baseline")


@dataclass(frozen=True)
class EstimatorStats:
    mean: torch.Tensor  # (P,) float64: the average of the S estimates
    variance: torch.Tensor  # (P,) float64: their unbiased per-parameter variance

    @property
    def total_variance(self) -> float:
        """Summed over the encoder's P parameters: trace of the covariance."""
        return float(self.variance.sum())


@dataclass(frozen=True)
class GradVariance:
    stats: dict[str, EstimatorStats]  # ESTIMATORS -> stats
    samples: int  # S single-sample estimates per estimator
    batch_size: int  # B images, one z each per estimate

    def summary(self) -> dict[str, float | int | bool]:
        """Flat JSON-ready figures: the variance of each estimator and the ratios."""
        var = {name: s.total_variance for name, s in self.stats.items()}
        out: dict[str, float | int | bool] = {
            "samples": self.samples,
            "batch_size": self.batch_size,
            "encoder_params": int(self.stats["reparam"].variance.numel()),
            "kl_included": True,
        }
        out.update({f"var_{name}": value for name, value in var.items()})
        for name in ESTIMATORS[1:]:
            out[f"ratio_{name}"] = var[name] / var["reparam"] if var["reparam"] > 0 else math.inf
        return out


class _Moments:
    """Running mean and variance of flat vectors (Welford), in float64."""

    def __init__(self) -> None:
        self.n, self.mean, self.m2 = 0, torch.zeros(0), torch.zeros(0)

    def add(self, g: torch.Tensor) -> None:
        g = g.double().cpu()
        if self.n == 0:
            self.mean, self.m2 = torch.zeros_like(g), torch.zeros_like(g)
        self.n += 1
        delta = g - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (g - self.mean)

    def stats(self) -> EstimatorStats:
        return EstimatorStats(self.mean, self.m2 / (self.n - 1))


def _flat_grad(objective: torch.Tensor, params: list[torch.nn.Parameter]) -> torch.Tensor:
    """grad of a scalar w.r.t. params as one flat vector (P,); keeps the encoder's graph."""
    grads = torch.autograd.grad(objective, params, retain_graph=True, allow_unused=True)
    flat = [
        torch.zeros_like(p).flatten() if g is None else g.flatten()
        for g, p in zip(grads, params, strict=True)
    ]
    return torch.cat(flat)  # (P,)


def _log_q(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))) summed over dims: (B,), differentiable in mu, logvar."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar)).sum(-1)


def gradient_variance(
    model: LatentVariableModel, x: torch.Tensor, samples: int = 100, seed: int = 0
) -> GradVariance:
    """Mean and variance of the three estimators of grad_phi ELBO on the batch x: (B, C, H, W).

    Every estimator uses the same S draws of eps (a paired comparison). The model is not
    changed: no .grad is written and no parameter moves.
    """
    if samples < 2:
        raise ValueError(f"samples must be >= 2 to estimate a variance, got {samples}")
    params = list(model.encoder.parameters())
    generator = torch.Generator().manual_seed(seed)
    with torch.enable_grad():
        mu, logvar = model.encode(x)  # (B, D), one encoder graph shared by every estimate
        std = torch.exp(0.5 * logvar)
        kl = gaussian_kl_per_dim(mu, logvar).sum(-1).mean()  # analytic: same in every estimate
        eps = torch.randn(samples, *mu.shape, generator=generator).to(mu)  # (S, B, D)
        reparam = _Moments()
        log_px = torch.empty(samples, x.shape[0], dtype=mu.dtype, device=mu.device)  # (S, B)
        for s in range(samples):
            z = mu + std * eps[s]  # (B, D); the gradient flows through mu and sigma
            ll = model_log_likelihood(model, x, model.decode(z))  # (B,) log p(x|z), nats
            reparam.add(_flat_grad(ll.mean() - kl, params))
            log_px[s] = ll.detach()
        # Score function: the same z, detached; only log q(z|x) carries the gradient.
        baseline = (log_px.sum(0) - log_px) / (samples - 1)  # (S, B) leave-one-out mean
        score, score_baseline = _Moments(), _Moments()
        for s in range(samples):
            log_q = _log_q((mu + std * eps[s]).detach(), mu, logvar)  # (B,)
            score.add(_flat_grad((log_px[s] * log_q).mean() - kl, params))
            weight = log_px[s] - baseline[s]  # (B,)
            score_baseline.add(_flat_grad((weight * log_q).mean() - kl, params))
    stats = {"reparam": reparam.stats(), "score": score.stats()}
    stats["score_baseline"] = score_baseline.stats()
    return GradVariance(stats, samples, x.shape[0])
