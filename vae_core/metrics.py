"""Latent-space quality metrics: active units (Burda et al. 2015) and the mutual
information gap (MIG, Chen et al. 2018) against the shapes dataset's ground-truth factors.

Numpy only; mutual information is computed in nats from joint histograms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from vae_core.latent import encode_dataset
from vae_core.models import LatentVariableModel

if TYPE_CHECKING:
    from vae_core.data import ImageDataset

# A factor whose entropy is below this (nats) is constant in the sample: MIG skips it.
_MIN_FACTOR_ENTROPY = 1e-12


def active_units(mu: np.ndarray | torch.Tensor, threshold: float = 0.01) -> np.ndarray:
    """bool (D,): Var_x[E_q(z|x)[z_d]] > threshold (Burda et al. 2015, section 5.2).

    mu: (N, D) posterior means over a dataset. A unit whose mean never moves with x
    carries no information about x, whatever its KL or its decoder weights.
    """
    if isinstance(mu, torch.Tensor):
        mu = mu.detach().cpu().numpy()
    mu = np.asarray(mu, dtype=np.float64)
    if mu.ndim != 2:
        raise ValueError(f"mu must be (N, D), got shape {mu.shape}")
    return mu.var(axis=0) > threshold


@dataclass(frozen=True)
class MIGResult:
    mig: float  # mean normalised gap over the non-constant factors, in [0, 1]
    per_factor: dict[str, float]  # factor name -> normalised gap (constant factors left out)
    mutual_information: np.ndarray  # (D, K) I(z_d; v_k) in nats


def _histogram_discretize(values: np.ndarray, num_bins: int) -> np.ndarray:
    """(N,) continuous -> (N,) bin ids in [0, num_bins), equal-width bins over its range.

    Same binning as disentanglement_lib's `_histogram_discretize`.
    """
    edges = np.histogram(values, bins=num_bins)[1]  # (num_bins + 1,)
    return np.digitize(values, edges[:-1]) - 1


def _codes(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Any discrete values (N,) -> dense ids 0..n-1 and n."""
    uniques, ids = np.unique(values, return_inverse=True)
    return ids.reshape(-1), len(uniques)


def _entropy(ids: np.ndarray, n: int) -> float:
    p = np.bincount(ids, minlength=n) / len(ids)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def _discrete_mutual_information(a: np.ndarray, na: int, b: np.ndarray, nb: int) -> float:
    """I(a; b) in nats from the joint histogram of two id arrays (N,)."""
    joint = np.bincount(a * nb + b, minlength=na * nb).reshape(na, nb) / len(a)  # p(a, b)
    pa, pb = joint.sum(axis=1, keepdims=True), joint.sum(axis=0, keepdims=True)
    nonzero = joint > 0
    return float((joint[nonzero] * np.log(joint[nonzero] / (pa @ pb)[nonzero])).sum())


def mutual_information_gap(
    mu: np.ndarray,
    factors: np.ndarray,
    num_bins: int = 20,
    factor_names: Sequence[str] | None = None,
) -> MIGResult:
    """MIG = mean_k (I(z_j1; v_k) - I(z_j2; v_k)) / H(v_k) (Chen et al. 2018, eq. 6).

    j1, j2 are the latents with the largest and second-largest mutual information with
    factor v_k; with one latent the second is taken as 0. Latents are discretised into
    `num_bins` equal-width bins, as in disentanglement_lib.

    Args:
        mu: (N, D) latent codes (posterior means).
        factors: (N, K) discrete ground-truth factors (class indices or any discrete values).
        factor_names: K names for `per_factor`; default factor_0 .. factor_{K-1}.
    """
    mu, factors = np.asarray(mu), np.asarray(factors)
    if mu.ndim != 2 or factors.ndim != 2 or len(mu) != len(factors) or len(mu) == 0:
        raise ValueError(
            f"need mu (N, D) and factors (N, K) with N > 0, got {mu.shape}, {factors.shape}"
        )
    D, K = mu.shape[1], factors.shape[1]
    names = list(factor_names) if factor_names is not None else [f"factor_{k}" for k in range(K)]
    if len(names) != K:
        raise ValueError(f"{len(names)} factor names for {K} factors")
    latents = [(_histogram_discretize(mu[:, d], num_bins), num_bins) for d in range(D)]
    truths = [_codes(factors[:, k]) for k in range(K)]
    mi = np.array(
        [[_discrete_mutual_information(z, nz, v, nv) for v, nv in truths] for z, nz in latents]
    ).reshape(D, K)  # (D, K)
    per_factor: dict[str, float] = {}
    for k, (v, nv) in enumerate(truths):
        h = _entropy(v, nv)
        if h < _MIN_FACTOR_ENTROPY:
            continue  # a constant factor has nothing to disentangle
        top = np.sort(mi[:, k])[::-1]
        second = top[1] if D > 1 else 0.0
        per_factor[names[k]] = float((top[0] - second) / h)
    if not per_factor:
        raise ValueError("every factor is constant in this sample; MIG is undefined")
    return MIGResult(
        mig=float(np.mean(list(per_factor.values()))), per_factor=per_factor, mutual_information=mi
    )


def _factor_classes(data: ImageDataset) -> np.ndarray:
    """(N, K) discrete factor ids: the dataset's own indices if it has them, else its values."""
    for name in ("factor_idx", "factor_indices"):
        found = getattr(data, name, None)
        if found is not None:
            return np.asarray(found)
    if getattr(data, "factors", None) is None:
        raise ValueError(f"dataset {data.info.name!r} has no ground-truth factors; use shapes")
    return np.asarray(data.factors)  # each distinct value is one class (see _codes)


def mig_on_shapes(
    model: LatentVariableModel, data: ImageDataset, max_items: int = 5000
) -> MIGResult:
    """MIG of `model`'s posterior means on the first `max_items` images of a factor dataset."""
    classes = _factor_classes(data)
    encoded = encode_dataset(model, data, max_items=max_items)
    names = tuple(getattr(data.info, "factor_names", ())) or None
    return mutual_information_gap(encoded.mu, classes[encoded.indices], factor_names=names)
