"""One image under the microscope: its posterior, its ELBO terms at z = mu, posterior samples,
and where its posterior lands (mean and 1-sigma ellipse) in a 2D projection of the latent space.

Everything but `posterior_samples` is deterministic: the reconstruction term is evaluated at
the posterior mean, a single-point estimate of E_q[log p(x|z)], so a rerun shows the same
numbers. Inputs and outputs are numpy; torch stays in here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from vae_core import objectives
from vae_core.latent import Projection, _device, _eval_mode, _to_uint8_hwc, active_dims
from vae_core.models import LatentVariableModel


@dataclass(frozen=True)
class Inspection:
    """One image's posterior and ELBO terms, all in nats, computed with z = mu."""

    input: np.ndarray  # (H, W, C) uint8, the encoder's input
    reconstruction: np.ndarray  # (H, W, C) uint8, the decoder's mean at z = mu
    abs_error: np.ndarray  # (H, W) float32 |x - x_hat| in [0, 1], mean over channels
    mu: np.ndarray  # (D,) float32
    sigma: np.ndarray  # (D,) float32, exp(logvar / 2)
    kl_per_dim: np.ndarray  # (D,) float32, KL(q(z_d|x) || N(0, 1)) of this image
    recon: float  # -log p(x | z = mu)
    kl: float  # KL(q(z|x) || p(z)), analytic

    @property
    def elbo(self) -> float:
        """log p(x|z=mu) - KL: the ELBO with its expectation replaced by the point z = mu."""
        return -(self.recon + self.kl)


def _as_batch(pixels: np.ndarray, model: LatentVariableModel) -> torch.Tensor:
    """uint8 (C, H, W) -> float (1, C, H, W) in [0, 1] on the model's device."""
    pixels = np.asarray(pixels, dtype=np.uint8)
    expected = tuple(model.config.image_shape)
    if pixels.shape != expected:
        raise ValueError(f"pixels must be (C, H, W) = {expected}, got {pixels.shape}")
    x = torch.tensor(pixels).float().div_(255)  # (C, H, W); a copy: cached arrays are read-only
    return x.unsqueeze(0).to(_device(model))  # (1, C, H, W)


def inspect(model: LatentVariableModel, pixels: np.ndarray) -> Inspection:
    """Posterior, reconstruction and ELBO terms of one uint8 (C, H, W) image, at z = mu."""
    x = _as_batch(pixels, model)  # (1, C, H, W)
    with _eval_mode(model):
        mu, logvar = model.encode(x)  # (1, D)
        decoded = model.decode(mu)  # (1, C, H, W) logits or means at z = mu
        # The same terms as training (objectives.ElboTerms), with z = mu instead of a sample.
        terms = objectives.ElboTerms(
            recon=-objectives.model_log_likelihood(model, x, decoded),  # (1,)
            kl_per_dim=objectives.gaussian_kl_per_dim(mu, logvar),  # (1, D)
        )
        x_hat = model.decoded_to_image(decoded)  # (1, C, H, W) in [0, 1]
    return Inspection(
        input=_to_uint8_hwc(x)[0],
        reconstruction=_to_uint8_hwc(x_hat)[0],
        abs_error=(x - x_hat).abs().mean(1)[0].cpu().numpy().astype(np.float32),  # (H, W)
        mu=mu[0].cpu().numpy().astype(np.float32),
        sigma=torch.exp(0.5 * logvar[0]).cpu().numpy().astype(np.float32),
        kl_per_dim=terms.kl_per_dim[0].cpu().numpy().astype(np.float32),
        recon=float(terms.recon[0]),
        kl=float(terms.kl[0]),
    )


def mean_kl_per_dim(mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """KL per dimension averaged over a set of posteriors: mu, logvar (N, D) -> (D,).

    This is what decides whether a dimension has collapsed (q(z_d|x) = p(z_d) for every x),
    which one image alone cannot tell.
    """
    kl = objectives.gaussian_kl_per_dim(torch.as_tensor(mu), torch.as_tensor(logvar))  # (N, D)
    return kl.mean(0).numpy().astype(np.float32) if len(kl) else np.zeros(kl.shape[1], np.float32)


def collapsed_dims(kl_per_dim: Sequence[float], threshold: float = 0.01) -> np.ndarray:
    """bool (D,): dims whose KL (nats) is at or below `threshold`, the complement of
    vae_core.latent.active_dims with the same threshold."""
    return ~active_dims(kl_per_dim, threshold)


@dataclass(frozen=True)
class PosteriorSamples:
    images: np.ndarray  # (K, H, W, C) uint8, the decoder's mean at K draws z ~ q(z|x)
    std: np.ndarray  # (H, W) float32 pixel-wise standard deviation over the K decodes, [0, 0.5]


def posterior_samples(
    model: LatentVariableModel, pixels: np.ndarray, k: int, seed: int = 0
) -> PosteriorSamples:
    """Decode K draws z = mu + sigma * eps (eps ~ N(0, I), seeded) of one image's posterior."""
    if k < 2:
        raise ValueError(f"k must be >= 2 for a standard deviation, got {k}")
    x = _as_batch(pixels, model)  # (1, C, H, W)
    generator = torch.Generator().manual_seed(seed)  # not the global RNG: same seed, same draws
    with _eval_mode(model):
        mu, logvar = model.encode(x)  # (1, D)
        eps = torch.randn(k, mu.shape[1], generator=generator).to(mu.device)  # (K, D)
        z = mu + torch.exp(0.5 * logvar) * eps  # (K, D), Kingma & Welling 2014, eq. 10
        decoded = model.decode_image(z)  # (K, C, H, W) in [0, 1]
    std = decoded.std(0, unbiased=False).mean(0)  # (H, W): over samples, then channels
    return PosteriorSamples(images=_to_uint8_hwc(decoded), std=std.cpu().numpy().astype(np.float32))


# --- the posterior in the scatter's 2D view -------------------------------------------


def linear_map(projection: Projection, latent_dim: int) -> np.ndarray | None:
    """A (2, D) with view = A (z - mean) for PCA and the identity view; None for t-SNE,
    which has no map for new points (and so no ellipse)."""
    if projection.method == "pca":
        assert projection.components is not None
        return np.asarray(projection.components, dtype=np.float64)  # (2, D)
    if projection.method == "identity":
        return np.eye(2, latent_dim)  # (2, D): z0 -> x, z1 -> y (a zero row when D = 1)
    return None


def ellipse_2d(
    projection: Projection, mu: np.ndarray, sigma: np.ndarray, num_points: int = 73
) -> np.ndarray | None:
    """The 1-sigma ellipse of N(mu, diag(sigma^2)) in the projection's view: (num_points, 2),
    closed (first point = last); None when the projection is not linear (t-SNE).

    A linear map A sends N(mu, S) to N(A mu, A S A^T); the 1-sigma contour of that 2D
    Gaussian is c + V sqrt(L) [cos t, sin t] with A S A^T = V L V^T. Eigenvalues 0 (D = 1, or
    sigma = 0 along a direction) give a segment or a point, which is still correct.
    """
    mu = np.asarray(mu, dtype=np.float64).reshape(-1)  # (D,)
    A = linear_map(projection, len(mu))
    if A is None:
        return None
    cov = (A * np.asarray(sigma, dtype=np.float64) ** 2) @ A.T  # (2, 2) = A diag(s^2) A^T
    eigenvalues, vectors = np.linalg.eigh(cov)  # (2,), (2, 2) columns
    t = np.linspace(0.0, 2 * np.pi, num_points)
    circle = np.stack([np.cos(t), np.sin(t)])  # (2, P)
    offsets = vectors @ (np.sqrt(np.clip(eigenvalues, 0.0, None))[:, None] * circle)  # (2, P)
    center = projection.transform(mu)[0].astype(np.float64)  # (2,)
    return (center[:, None] + offsets).T.astype(np.float32)  # (P, 2)
