"""Non-linear 2D maps of the codes (t-SNE, UMAP) and nearest neighbours in latent space.

These take seconds to tens of seconds for thousands of codes: call them off the UI thread.
Each returns a `latent.Projection` whose `transform` places new codes (the slider point, an
interpolation path) among their nearest fitted codes, since neither map is linear.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np

from vae_core.latent import Projection

# A callback told how far a computation is, in [0, 1]; called from the worker thread.
Progress = Callable[[float], None]

# t-SNE settings measured on 5,000 codes of latent 20 (bench/projections.py, one thread):
# Barnes-Hut with theta 0.9, perplexity 15 and 250 iterations in all keeps as many of each
# code's 10 nearest neighbours in 2D (0.29) as openTSNE's and scikit-learn's defaults (750
# iterations, theta 0.5, perplexity 30), in about a sixth of the time.
TSNE_PERPLEXITY = 15.0
TSNE_THETA = 0.9
TSNE_EXAGGERATION_ITERS = 100  # early exaggeration pulls clusters apart first
TSNE_ITERS = 150
_CALLBACK_EVERY = 25


def _check_codes(mu: np.ndarray, what: str, at_least: int) -> np.ndarray:
    mu = np.asarray(mu, dtype=np.float32)
    if mu.ndim != 2 or len(mu) < at_least:
        raise ValueError(f"{what} needs (N, D) codes with N >= {at_least}, got shape {mu.shape}")
    return mu


def _thread_limit(num_threads: int | None) -> contextlib.AbstractContextManager[Any]:
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    return threadpool_limits(limits=num_threads)


def tsne_2d(
    mu: np.ndarray,
    seed: int = 0,
    perplexity: float = TSNE_PERPLEXITY,
    num_threads: int | None = None,
    progress: Progress | None = None,
) -> Projection:
    """t-SNE of the codes (van der Maaten & Hinton 2008) with openTSNE's Barnes-Hut.

    num_threads caps its threads (None: all cores), e.g. to leave a trainer its cores;
    `progress` hears the fraction of iterations done.
    """
    from openTSNE import TSNEEmbedding, affinity, initialization  # heavy, paid on demand

    mu = _check_codes(mu, "t-SNE", 4)
    n_jobs = num_threads or -1
    perplexity = min(perplexity, (len(mu) - 1) / 3)  # needs 3 * perplexity neighbours
    total = TSNE_EXAGGERATION_ITERS + TSNE_ITERS
    with _thread_limit(num_threads):
        affinities = affinity.PerplexityBasedNN(
            mu, perplexity=perplexity, method="annoy", n_jobs=n_jobs, random_state=seed
        )
        init = initialization.pca(mu, random_state=seed)
        embedding = TSNEEmbedding(
            init, affinities, negative_gradient_method="bh", theta=TSNE_THETA, n_jobs=n_jobs
        )
        done = 0
        for iters, exaggeration in ((TSNE_EXAGGERATION_ITERS, 12.0), (TSNE_ITERS, 1.0)):
            embedding = embedding.optimize(
                n_iter=iters,
                exaggeration=exaggeration,
                momentum=0.5 if exaggeration > 1 else 0.8,
                callbacks=_progress_callback(progress, done, total),
                callbacks_every_iters=_CALLBACK_EVERY,
            )
            done += iters
    if progress is not None:
        progress(1.0)
    coords = np.asarray(embedding, dtype=np.float32)  # (N, 2)
    return Projection(method="tsne", coords=coords, fitted_codes=mu)


def _progress_callback(progress: Progress | None, done: int, total: int) -> list | None:
    if progress is None:
        return None

    def report(iteration: int, error: float, embedding: Any) -> bool:
        progress(min(1.0, (done + iteration) / total))
        return False  # never stop early

    return [report]


def umap_2d(mu: np.ndarray, seed: int = 0, n_neighbors: int = 15) -> Projection:
    """UMAP of the codes (McInnes et al. 2018) with umap-learn.

    The first call in a process compiles umap-learn's numba kernels (tens of seconds, cached
    on disk for later processes); with a seed it runs on one thread.
    """
    import umap  # heavy (numba), paid on demand

    mu = _check_codes(mu, "UMAP", 4)
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=min(n_neighbors, len(mu) - 1),
        random_state=seed,
        n_jobs=1,
        init="spectral" if len(mu) > n_neighbors + 1 else "random",
    )
    coords = np.asarray(reducer.fit_transform(mu), dtype=np.float32)  # (N, 2)
    return Projection(method="umap", coords=coords, fitted_codes=mu)


def nearest_codes(mu: np.ndarray, row: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k rows of mu (N, D) nearest to row `row` in Euclidean distance, nearest first,
    leaving the row itself out (as the Embedding Projector does).

    Returns (rows (k,), distances (k,)); fewer than k when N <= k.
    """
    mu = np.asarray(mu, dtype=np.float64)
    if mu.ndim != 2 or not 0 <= row < len(mu):
        raise ValueError(f"row {row} is not one of the {len(mu)} codes")
    distances = np.sqrt(((mu - mu[row]) ** 2).sum(1))  # (N,)
    distances[row] = np.inf
    k = min(k, len(mu) - 1)
    rows = np.argpartition(distances, k - 1)[:k] if k > 0 else np.zeros(0, dtype=np.int64)
    rows = rows[np.argsort(distances[rows], kind="stable")]
    return rows, distances[rows].astype(np.float32)
