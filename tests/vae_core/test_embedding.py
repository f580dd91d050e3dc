"""Tests for vae_core.embedding: t-SNE, UMAP and nearest neighbours in latent space."""

from __future__ import annotations

import numpy as np
import pytest

from vae_core.embedding import TSNE_EXAGGERATION_ITERS, nearest_codes, tsne_2d, umap_2d


def _three_clusters(n_per: int = 60, dim: int = 10) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, dim)) * 8
    labels = np.repeat(np.arange(3), n_per)
    return (centres[labels] + rng.normal(size=(3 * n_per, dim))).astype(np.float32), labels


def _nearest_2d_neighbour_in_own_cluster(coords: np.ndarray, labels: np.ndarray) -> bool:
    d = ((coords[:, None] - coords[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    return bool((labels[d.argmin(1)] == labels).all())


def test_tsne_keeps_clusters_apart_in_2d_and_is_seeded() -> None:
    codes, labels = _three_clusters()
    projection = tsne_2d(codes, seed=0, num_threads=1)
    assert projection.method == "tsne" and projection.coords.shape == (len(codes), 2)
    assert projection.coords.dtype == np.float32
    assert _nearest_2d_neighbour_in_own_cluster(projection.coords, labels)
    again = tsne_2d(codes, seed=0, num_threads=1)
    np.testing.assert_allclose(again.coords, projection.coords, atol=1e-4)


def test_tsne_reports_progress_from_zero_to_one_in_order() -> None:
    codes, _ = _three_clusters(n_per=20)
    heard: list[float] = []
    tsne_2d(codes, seed=0, num_threads=1, progress=heard.append)
    assert heard == sorted(heard) and heard[-1] == 1.0
    assert 0 < heard[0] < 0.5  # the first report comes during early exaggeration
    assert len(heard) >= TSNE_EXAGGERATION_ITERS // 25  # about every 25 iterations


def test_tsne_places_new_codes_among_their_nearest_fitted_codes() -> None:
    codes, labels = _three_clusters()
    projection = tsne_2d(codes, seed=0, num_threads=1)
    np.testing.assert_allclose(projection.transform(codes[:5]), projection.coords[:5], atol=1e-3)
    # a new code near cluster 2's centre lands inside cluster 2's 2D extent
    placed = projection.transform(codes[labels == 2].mean(0))[0]
    cluster = projection.coords[labels == 2]
    assert (cluster.min(0) <= placed).all() and (placed <= cluster.max(0)).all()


@pytest.mark.parametrize("embed", [tsne_2d, umap_2d])
def test_embeddings_refuse_too_few_codes(embed) -> None:
    with pytest.raises(ValueError, match="N >= 4"):
        embed(np.zeros((3, 5)))


@pytest.mark.slow  # the first UMAP in a process compiles numba kernels
def test_umap_keeps_clusters_apart_and_places_new_codes() -> None:
    codes, labels = _three_clusters()
    projection = umap_2d(codes, seed=0)
    assert projection.method == "umap" and projection.coords.shape == (len(codes), 2)
    assert _nearest_2d_neighbour_in_own_cluster(projection.coords, labels)
    np.testing.assert_allclose(projection.transform(codes[:3]), projection.coords[:3], atol=1e-3)


def test_nearest_codes_match_a_brute_force_sort_and_leave_the_point_out() -> None:
    rng = np.random.default_rng(1)
    mu = rng.normal(size=(200, 6)).astype(np.float32)
    rows, distances = nearest_codes(mu, row=17, k=5)
    brute = np.linalg.norm(mu.astype(np.float64) - mu[17], axis=1)
    brute[17] = np.inf
    np.testing.assert_array_equal(rows, np.argsort(brute)[:5])
    np.testing.assert_allclose(distances, np.sort(brute)[:5], rtol=1e-6)
    assert 17 not in rows and np.all(np.diff(distances) >= 0)


def test_nearest_codes_keep_an_exact_duplicate_of_the_point() -> None:
    mu = np.array([[0.0, 0.0], [0.0, 0.0], [3.0, 4.0]], dtype=np.float32)
    rows, distances = nearest_codes(mu, row=0, k=5)  # k above N - 1: all the others
    np.testing.assert_array_equal(rows, [1, 2])
    np.testing.assert_allclose(distances, [0.0, 5.0])


def test_nearest_codes_refuse_a_row_out_of_range() -> None:
    with pytest.raises(ValueError, match="row 3 is not one of the 3 codes"):
        nearest_codes(np.zeros((3, 2)), row=3, k=1)
