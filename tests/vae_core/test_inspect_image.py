"""vae_core.inspect_image: one image's ELBO terms at z = mu, posterior samples, the ellipse."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vae_core import objectives
from vae_core.config import ModelConfig
from vae_core.inspect_image import (
    collapsed_dims,
    ellipse_2d,
    inspect,
    mean_kl_per_dim,
    posterior_samples,
)
from vae_core.latent import Projection, active_dims, project_2d
from vae_core.models import VAE


@pytest.fixture
def model(tiny_model_config: ModelConfig) -> VAE:
    return VAE(tiny_model_config).eval()


@pytest.fixture
def pixels(tiny_model_config: ModelConfig) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, tiny_model_config.image_shape, dtype=np.uint8)  # (C, H, W)


def test_elbo_terms_match_objectives_with_z_at_the_mean(model: VAE, pixels: np.ndarray) -> None:
    result = inspect(model, pixels)
    x = torch.from_numpy(pixels).float().div(255).unsqueeze(0)  # (1, C, H, W)
    with torch.no_grad():
        mu, logvar = model.encode(x)
        recon = -objectives.model_log_likelihood(model, x, model.decode(mu))
        kl_per_dim = objectives.gaussian_kl_per_dim(mu, logvar)
    assert result.recon == pytest.approx(float(recon[0]), rel=1e-5)
    np.testing.assert_allclose(result.kl_per_dim, kl_per_dim[0].numpy(), rtol=1e-5)
    assert result.kl == pytest.approx(float(kl_per_dim.sum()), rel=1e-5)
    assert result.elbo == pytest.approx(-(result.recon + result.kl))
    np.testing.assert_allclose(result.sigma, torch.exp(0.5 * logvar[0]).numpy(), rtol=1e-6)


def test_inspection_is_deterministic_and_shaped_like_the_image(
    model: VAE, pixels: np.ndarray
) -> None:
    a, b = inspect(model, pixels), inspect(model, pixels)
    assert a.elbo == b.elbo
    C, H, W = pixels.shape
    assert a.input.shape == a.reconstruction.shape == (H, W, C)
    np.testing.assert_array_equal(a.input, pixels.transpose(1, 2, 0))
    assert a.abs_error.shape == (H, W) and 0.0 <= a.abs_error.min() <= a.abs_error.max() <= 1.0


def test_inspection_rejects_the_wrong_shape(model: VAE) -> None:
    with pytest.raises(ValueError, match=r"pixels must be \(C, H, W\)"):
        inspect(model, np.zeros((2, 5, 5), np.uint8))


def test_posterior_samples_are_seeded_and_vary(model: VAE, pixels: np.ndarray) -> None:
    a = posterior_samples(model, pixels, k=6, seed=3)
    b = posterior_samples(model, pixels, k=6, seed=3)
    C, H, W = pixels.shape
    assert a.images.shape == (6, H, W, C) and a.std.shape == (H, W)
    np.testing.assert_array_equal(a.images, b.images)
    assert a.std.max() > 0  # sigma > 0, so the decodes differ


def test_collapsed_dims_are_the_complement_of_active_dims() -> None:
    kl = [0.5, 0.001, 0.02, 0.0]
    np.testing.assert_array_equal(collapsed_dims(kl), ~active_dims(kl))
    np.testing.assert_array_equal(collapsed_dims(kl, 0.1), [False, True, True, True])


def test_mean_kl_is_zero_for_posteriors_equal_to_the_prior() -> None:
    mu, logvar = np.zeros((4, 3), np.float32), np.zeros((4, 3), np.float32)
    mu[:, 0] = 2.0  # KL of N(2, 1) || N(0, 1) = 2
    np.testing.assert_allclose(mean_kl_per_dim(mu, logvar), [2.0, 0.0, 0.0], atol=1e-6)


def _on_ellipse(points: np.ndarray, center: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Mahalanobis radius of each point: 1 on the 1-sigma contour."""
    d = points - center
    return np.sqrt(np.einsum("pi,ij,pj->p", d, np.linalg.inv(cov), d))


def test_ellipse_through_a_known_pca_map() -> None:
    # Axes: PC1 = (z0 + z1) / sqrt 2, PC2 = z2; mean (1, 0, 0).
    s = 1 / np.sqrt(2)
    projection = Projection(
        method="pca",
        coords=np.zeros((1, 2), np.float32),
        components=np.array([[s, s, 0.0], [0.0, 0.0, 1.0]], np.float32),
        mean=np.array([1.0, 0.0, 0.0], np.float32),
    )
    mu, sigma = np.array([3.0, 1.0, -2.0]), np.array([2.0, 1.0, 0.5])
    ellipse = ellipse_2d(projection, mu, sigma, num_points=41)
    center = np.array([s * (2.0 + 1.0), -2.0])  # A (mu - mean)
    cov = np.diag([0.5 * (4.0 + 1.0), 0.25])  # A diag(sigma^2) A^T
    np.testing.assert_allclose(_on_ellipse(ellipse, center, cov), 1.0, atol=1e-4)
    np.testing.assert_allclose(ellipse.mean(0)[None], [center], atol=0.05)
    np.testing.assert_allclose(ellipse[0], ellipse[-1], atol=1e-5)  # closed


def test_ellipse_of_a_correlated_projection_has_the_right_axes() -> None:
    rng = np.random.default_rng(0)
    projection = project_2d(rng.normal(size=(200, 5)) * [3, 2, 1, 0.5, 0.1])
    mu, sigma = rng.normal(size=5), rng.uniform(0.2, 1.5, size=5)
    A = projection.components.astype(np.float64)
    cov = A @ np.diag(sigma**2) @ A.T
    center = projection.transform(mu)[0]
    ellipse = ellipse_2d(projection, mu, sigma)
    np.testing.assert_allclose(_on_ellipse(ellipse, center, cov), 1.0, atol=1e-3)


def test_ellipse_for_the_identity_view_and_none_for_tsne() -> None:
    identity = project_2d(np.zeros((3, 2)))
    ellipse = ellipse_2d(identity, np.array([1.0, -1.0]), np.array([0.5, 0.25]))
    assert ellipse[:, 0].max() == pytest.approx(1.5, abs=1e-3)
    assert ellipse[:, 1].min() == pytest.approx(-1.25, abs=1e-3)
    tsne = Projection(method="tsne", coords=np.zeros((3, 2)), fitted_codes=np.zeros((3, 4)))
    assert ellipse_2d(tsne, np.zeros(4), np.ones(4)) is None
