"""Tests for vae_core.latent: encoding, projections, interpolation, traversals, images."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from vae_core import latent
from vae_core.config import ModelConfig
from vae_core.latent import (
    EncodedSet,
    active_dims,
    decode_latents,
    encode_dataset,
    image_grid,
    interpolate,
    kl_order,
    lerp,
    project_2d,
    reconstruct_images,
    sample_prior,
    slerp,
    traversal_grid,
)
from vae_core.models import VAE


@dataclass
class _Info:
    name: str = "synthetic"


@dataclass
class TinyDataset:
    """Stand-in with the ImageDataset attributes latent.py uses."""

    images: torch.Tensor  # (N, C, H, W) uint8
    labels: torch.Tensor  # (N,) int64
    info: _Info

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, index: torch.Tensor | slice, device=None) -> torch.Tensor:
        return self.images[index].to(device).float() / 255


def _dataset(n: int, image_shape: tuple[int, int, int]) -> TinyDataset:
    images = torch.randint(0, 256, (n, *image_shape), dtype=torch.uint8)
    return TinyDataset(images, torch.arange(n) % 10, _Info())


@pytest.fixture
def model(tiny_model_config: ModelConfig) -> VAE:
    return VAE(tiny_model_config).eval()


# --- encoding ---


def test_encode_dataset_takes_the_first_items_in_batches(model: VAE) -> None:
    data = _dataset(23, model.config.image_shape)
    encoded = encode_dataset(model, data, max_items=17, batch_size=5)
    D = model.config.latent_dim
    assert isinstance(encoded, EncodedSet)
    assert encoded.mu.shape == encoded.logvar.shape == (17, D)
    assert encoded.mu.dtype == np.float32
    np.testing.assert_array_equal(encoded.indices, np.arange(17))
    np.testing.assert_array_equal(encoded.labels, data.labels[:17].numpy())
    with torch.no_grad():
        mu, logvar = model.encode(data.batch(slice(0, 17)))
    np.testing.assert_allclose(encoded.mu, mu.numpy(), atol=1e-5)
    np.testing.assert_allclose(encoded.logvar, logvar.numpy(), atol=1e-5)


def test_encode_dataset_restores_training_mode() -> None:
    model = VAE(ModelConfig(image_shape=(1, 8, 8), latent_dim=2, hidden_dim=8)).train()
    encode_dataset(model, _dataset(4, (1, 8, 8)))
    assert model.training


# --- projections ---


def test_identity_projection_for_two_dims_returns_the_codes() -> None:
    mu = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    projection = project_2d(mu)
    assert projection.method == "identity"
    np.testing.assert_array_equal(projection.coords, mu)
    np.testing.assert_array_equal(projection.transform(mu[:3]), mu[:3])


def test_identity_projection_for_one_dim_puts_points_on_the_x_axis() -> None:
    mu = np.arange(5, dtype=np.float32)[:, None]
    coords = project_2d(mu).coords
    np.testing.assert_array_equal(coords, np.stack([np.arange(5), np.zeros(5)], 1))


def test_pca_recovers_a_plane_the_codes_lie_on() -> None:
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(6, 2)))[0].T  # (2, 6) orthonormal rows
    weights = rng.normal(size=(200, 2)) * np.array([3.0, 1.0])
    mu = (weights @ basis + 5.0).astype(np.float32)  # (200, 6) on an offset plane
    projection = project_2d(mu)
    assert projection.method == "pca"
    assert sum(projection.explained_variance_ratio) == pytest.approx(1.0, abs=1e-5)
    assert projection.explained_variance_ratio[0] > projection.explained_variance_ratio[1]
    # The components span the same plane as the basis.
    np.testing.assert_allclose(
        projection.components @ basis.T @ basis, projection.components, atol=1e-5
    )
    np.testing.assert_allclose(projection.transform(mu), projection.coords, atol=1e-4)
    # Distances inside the plane are preserved.
    d_true = np.linalg.norm(mu[0] - mu[1])
    assert np.linalg.norm(projection.coords[0] - projection.coords[1]) == pytest.approx(
        d_true, rel=1e-4
    )


def test_pca_signs_are_deterministic_under_sign_flipped_data() -> None:
    mu = np.random.default_rng(1).normal(size=(100, 5)) * np.arange(5, 0, -1)
    a, b = project_2d(mu), project_2d(-mu)
    for projection in (a, b):
        rows = np.arange(2)
        largest = projection.components[rows, np.abs(projection.components).argmax(1)]
        assert (largest > 0).all()
    np.testing.assert_allclose(np.abs(a.components), np.abs(b.components), atol=1e-5)


def test_pca_can_be_forced_for_two_dims() -> None:
    mu = np.random.default_rng(2).normal(size=(30, 2))
    assert project_2d(mu, method="pca").method == "pca"


# --- interpolation ---


def test_lerp_has_exact_endpoints_and_a_linear_midpoint() -> None:
    z0, z1 = np.array([1.0, 0.0, 2.0]), np.array([0.0, 1.0, -2.0])
    path = lerp(z0, z1, 5)
    assert path.shape == (5, 3) and path.dtype == np.float32
    np.testing.assert_array_equal(path[0], z0)
    np.testing.assert_array_equal(path[-1], z1)
    np.testing.assert_allclose(path[2], (z0 + z1) / 2)


def test_lerp_midpoint_of_orthogonal_unit_vectors_has_norm_one_over_root_two() -> None:
    path = lerp(np.array([1.0, 0.0]), np.array([0.0, 1.0]), 3)
    assert np.linalg.norm(path[1]) == pytest.approx(1 / np.sqrt(2), rel=1e-6)


def test_slerp_of_orthogonal_unit_vectors_stays_on_the_unit_circle() -> None:
    z0, z1 = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    path = slerp(z0, z1, 9)
    np.testing.assert_array_equal(path[0], z0)
    np.testing.assert_array_equal(path[-1], z1)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(path[4], [np.sqrt(0.5), np.sqrt(0.5)], atol=1e-6)


@pytest.mark.parametrize(
    ("z0", "z1"),
    [([0.0, 0.0], [1.0, 2.0]), ([1.0, 2.0], [2.0, 4.0]), ([1.0, 2.0], [-1.0, -2.0])],
    ids=["zero-vector", "parallel", "antiparallel"],
)
def test_slerp_falls_back_to_lerp_when_the_angle_is_undefined(z0, z1) -> None:
    np.testing.assert_allclose(slerp(z0, z1, 5), lerp(z0, z1, 5))
    assert np.isfinite(slerp(z0, z1, 5)).all()


def test_interpolate_dispatches_and_rejects_unknown_methods() -> None:
    z0, z1 = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    np.testing.assert_array_equal(interpolate(z0, z1, 4, "slerp"), slerp(z0, z1, 4))
    np.testing.assert_array_equal(interpolate(z0, z1, 4), lerp(z0, z1, 4))
    with pytest.raises(ValueError, match="cubic"):
        interpolate(z0, z1, 4, "cubic")  # type: ignore[arg-type]


def test_interpolation_needs_two_steps_and_matching_sizes() -> None:
    with pytest.raises(ValueError, match="steps"):
        lerp(np.zeros(2), np.ones(2), 1)
    with pytest.raises(ValueError, match="size"):
        slerp(np.zeros(2), np.ones(3), 4)


# --- traversal and prior ---


def test_traversal_grid_varies_only_the_chosen_dim_per_row_block() -> None:
    base = np.array([0.5, -1.0, 2.0, 0.0], dtype=np.float32)
    values = [-2.0, 0.0, 2.0]
    grid = traversal_grid(base, dims=[2, 0], values=values)
    assert grid.shape == (6, 4)
    np.testing.assert_array_equal(grid[:3, 2], values)
    np.testing.assert_array_equal(
        np.delete(grid[:3], 2, axis=1), np.tile(np.delete(base, 2), (3, 1))
    )
    np.testing.assert_array_equal(grid[3:, 0], values)
    np.testing.assert_array_equal(grid[3:, 1:], np.tile(base[1:], (3, 1)))


def test_traversal_grid_rejects_out_of_range_dims() -> None:
    with pytest.raises(ValueError, match="out of range"):
        traversal_grid(np.zeros(3), dims=[3], values=[0.0])


def test_sample_prior_is_deterministic_by_seed_with_std_temperature() -> None:
    a = sample_prior(4000, 8, temperature=0.5, seed=3)
    np.testing.assert_array_equal(a, sample_prior(4000, 8, temperature=0.5, seed=3))
    assert not np.array_equal(a, sample_prior(4000, 8, temperature=0.5, seed=4))
    assert a.shape == (4000, 8) and a.dtype == np.float32
    assert a.std() == pytest.approx(0.5, rel=0.03)
    assert abs(a.mean()) < 0.02


# --- images ---


def test_decode_latents_gives_uint8_hwc_images(model: VAE) -> None:
    C, H, W = model.config.image_shape
    z = sample_prior(3, model.config.latent_dim)
    images = decode_latents(model, z)
    assert images.shape == (3, H, W, C) and images.dtype == np.uint8
    expected = torch.round(model.decode_image(torch.from_numpy(z)) * 255).permute(0, 2, 3, 1)
    np.testing.assert_array_equal(images, expected.numpy().astype(np.uint8))
    # Different codes give different pictures (0 and 255 are reachable values too).
    assert not np.array_equal(images[0], images[1])


def test_reconstruct_images_returns_originals_and_mean_reconstructions(model: VAE) -> None:
    C, H, W = model.config.image_shape
    data = _dataset(10, model.config.image_shape)
    originals, recons = reconstruct_images(model, data, [7, 2])
    assert originals.shape == recons.shape == (2, H, W, C)
    assert originals.dtype == recons.dtype == np.uint8
    np.testing.assert_array_equal(originals, data.images[[7, 2]].permute(0, 2, 3, 1).numpy())
    z = encode_dataset(model, data).mu[[7, 2]]
    np.testing.assert_array_equal(recons, decode_latents(model, z))


@pytest.mark.parametrize("channels", [1, 3])
def test_image_grid_size_follows_make_grid_arithmetic(channels: int) -> None:
    images = np.zeros((7, 5, 4, channels), dtype=np.uint8)
    grid = image_grid(images, nrow=3, padding=2)
    rows, cols = 3, 3
    assert grid.shape == (rows * (5 + 2) + 2, cols * (4 + 2) + 2, channels)
    assert grid.dtype == np.uint8
    assert grid[0, 0, 0] == 255  # padding
    assert grid[2, 2, 0] == 0  # first image's top-left pixel


def test_image_grid_places_images_row_major() -> None:
    images = np.stack([np.full((2, 2, 1), v, np.uint8) for v in (10, 20, 30)])
    grid = image_grid(images, nrow=2, padding=1, pad_value=0)
    assert grid.shape == (2 * 3 + 1, 2 * 3 + 1, 1)
    assert grid[1, 1, 0] == 10 and grid[1, 4, 0] == 20 and grid[4, 1, 0] == 30
    assert grid[4, 4, 0] == 0  # the empty slot


# --- KL ordering ---


def test_kl_order_is_largest_first_and_stable_on_ties() -> None:
    assert kl_order([0.1, 2.0, 0.5, 2.0, 0.0]) == [1, 3, 2, 0, 4]


def test_active_dims_marks_dims_above_the_kl_threshold() -> None:
    np.testing.assert_array_equal(
        active_dims([0.5, 0.001, 0.02], threshold=0.01), [True, False, True]
    )


def _random_rotation(D: int, seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(D, D)))
    return q * np.sign(np.diag(r))  # (D, D) orthogonal


@pytest.mark.parametrize("D", [2, 5])
def test_procrustes_recovers_a_known_rotation(D: int) -> None:
    reference = np.random.default_rng(0).normal(size=(200, D)).astype(np.float32)
    Q = _random_rotation(D, seed=1)
    rotated = reference @ Q
    R = latent.procrustes_rotation(reference, rotated + 3.0)  # a shift does not change R
    np.testing.assert_allclose(R, Q.T, atol=1e-5)
    np.testing.assert_allclose(latent.procrustes_align(reference, rotated), reference, atol=1e-4)


def test_time_lapse_undoes_a_rotation_between_frames() -> None:
    rng = np.random.default_rng(0)
    newest = rng.normal(size=(300, 6)) * np.array([3, 2, 1, 0.5, 0.2, 0.1])
    earlier = 0.5 * newest @ _random_rotation(6, seed=2)  # rotated and shrunk towards 0
    lapse = latent.time_lapse([earlier, newest])
    assert lapse.frames.shape == (2, 300, 2)
    shrunk = lapse.projection.transform(0.5 * newest)  # the same codes, unrotated
    np.testing.assert_allclose(lapse.frames[0], shrunk, atol=1e-3)
    np.testing.assert_allclose(lapse.transform(0, earlier[:3]), lapse.frames[0, :3], atol=1e-4)


def test_time_lapse_shows_a_two_dim_latent_as_is() -> None:
    codes = [np.full((4, 2), float(t), np.float32) for t in range(3)]
    lapse = latent.time_lapse(codes)
    np.testing.assert_array_equal(lapse.frames[2], codes[2])
