"""Tests for vae_core.metrics: active units and the mutual information gap."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vae_core.config import ModelConfig
from vae_core.data import DatasetInfo, ImageDataset, load_dataset
from vae_core.metrics import active_units, mig_on_shapes, mutual_information_gap
from vae_core.models import VAE


def _factors(n: int, sizes: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """(n, K) independent uniform class indices, factor k with sizes[k] classes."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, s, n) for s in sizes], axis=1)


def test_active_units_marks_a_constant_column_inactive() -> None:
    rng = np.random.default_rng(0)
    mu = np.stack([rng.normal(size=500), np.full(500, 3.0), 0.05 * rng.normal(size=500)], 1)
    np.testing.assert_array_equal(active_units(mu), [True, False, False])
    np.testing.assert_array_equal(active_units(mu, threshold=1e-3), [True, False, True])


def test_active_units_accepts_torch_tensors() -> None:
    mu = torch.tensor([[0.0, 1.0], [2.0, 1.0], [4.0, 1.0]])
    np.testing.assert_array_equal(active_units(mu), [True, False])


def test_mig_is_one_when_each_latent_copies_one_factor() -> None:
    factors = _factors(5000, (3, 6, 10))
    mu = factors[:, [2, 0, 1]].astype(np.float32) * 0.7 - 1.0  # a permuted affine copy
    result = mutual_information_gap(mu, factors, factor_names=["shape", "scale", "x"])
    assert result.mig == pytest.approx(1.0, abs=0.02)
    assert set(result.per_factor) == {"shape", "scale", "x"}
    assert result.mutual_information.shape == (3, 3)
    # I(copy; factor) = H(factor) ~ log(number of classes).
    assert result.mutual_information[1, 0] == pytest.approx(math.log(3), abs=0.01)


def test_mig_is_near_zero_for_independent_latents() -> None:
    factors = _factors(5000, (3, 6, 10))
    mu = np.random.default_rng(1).normal(size=(5000, 4))
    assert mutual_information_gap(mu, factors).mig < 0.05


def test_mig_is_near_zero_when_two_latents_share_a_factor() -> None:
    factors = _factors(5000, (4,))
    mu = np.concatenate([factors, factors], axis=1).astype(np.float64)  # both copy it
    assert mutual_information_gap(mu, factors).mig == pytest.approx(0.0, abs=1e-9)


def test_mig_skips_constant_factors() -> None:
    factors = _factors(2000, (4, 1))
    mu = factors.astype(np.float32)
    result = mutual_information_gap(mu, factors, factor_names=["x", "fixed"])
    assert list(result.per_factor) == ["x"]
    assert result.mig == pytest.approx(1.0, abs=0.02)


def test_mig_rejects_mismatched_inputs() -> None:
    with pytest.raises(ValueError, match="names"):
        mutual_information_gap(np.zeros((4, 2)), np.zeros((4, 2), int), factor_names=["a"])
    with pytest.raises(ValueError, match="factors"):
        mutual_information_gap(np.zeros((4, 2)), np.zeros((5, 2), int))


def test_mig_on_shapes_with_a_random_model_is_in_the_unit_interval() -> None:
    data = load_dataset("shapes", split="test", image_size=28, num_samples=1200)
    model = VAE(ModelConfig(image_shape=(1, 28, 28), latent_dim=6, hidden_dim=32))
    result = mig_on_shapes(model, data, max_items=250)
    assert 0.0 <= result.mig <= 1.0
    assert set(result.per_factor) == set(data.info.factor_names)
    assert result.mutual_information.shape == (6, len(data.info.factor_names))


def test_mig_on_shapes_refuses_a_dataset_without_factors() -> None:
    data = ImageDataset(
        images=torch.zeros(4, 1, 28, 28, dtype=torch.uint8),
        labels=torch.zeros(4, dtype=torch.int64),
        info=DatasetInfo(name="mnist", image_shape=(1, 28, 28), class_names=("0",)),
    )
    model = VAE(ModelConfig(image_shape=(1, 28, 28), latent_dim=2, hidden_dim=8))
    with pytest.raises(ValueError, match="no ground-truth factors"):
        mig_on_shapes(model, data)


def test_mig_is_one_when_the_codes_are_the_factors_themselves() -> None:
    factors = _factors(20_000, (3, 6, 40, 32, 32))  # the shapes factors' class counts
    # With as many bins as the largest factor has classes, binning loses nothing (with the
    # default 20 bins, 40 orientations share bins and the gap drops to ~log 20 / log 40).
    # 20k points keep the plug-in estimate's bias on the runner-up's MI small.
    result = mutual_information_gap(factors.astype(np.float32), factors, num_bins=40)
    assert result.mig == pytest.approx(1.0, abs=0.02)
    assert all(gap == pytest.approx(1.0, abs=0.03) for gap in result.per_factor.values())


def test_mig_is_near_zero_for_random_codes_of_the_same_size() -> None:
    factors = _factors(4000, (3, 6, 40, 32, 32))
    mu = np.random.default_rng(7).normal(size=(4000, 5))
    result = mutual_information_gap(mu, factors)
    assert result.mig < 0.05
    assert result.mutual_information.max() < 0.2  # 20 bins over 4000 points: small bias only


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_permutation_of_the_dimensions_does_not_change_mig(seed: int) -> None:
    rng = np.random.default_rng(seed)
    factors = _factors(3000, (3, 6, 10), seed=seed)
    mu = np.concatenate(
        [factors + 0.3 * rng.normal(size=factors.shape), rng.normal(size=(3000, 2))], 1
    )
    permutation = rng.permutation(mu.shape[1])
    original = mutual_information_gap(mu, factors)
    permuted = mutual_information_gap(mu[:, permutation], factors)
    assert permuted.mig == pytest.approx(original.mig, abs=1e-12)
    assert permuted.per_factor == pytest.approx(original.per_factor, abs=1e-12)
    np.testing.assert_allclose(
        permuted.mutual_information, original.mutual_information[permutation]
    )
