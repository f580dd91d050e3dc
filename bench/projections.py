"""Wall time of the scatter's non-linear maps for 5,000 codes of latent 20.

    python bench/projections.py [--run-dir RUN] [--repeats 3] [--sklearn] [--no-umap]

Codes: the posterior means of RUN's first 5,000 test images, or (without --run-dir) ten
Gaussian clusters in 20 dimensions. Prints min / median / max seconds per method, and how
many of each code's 10 nearest neighbours in latent space stay among its 10 nearest in 2D
(the quality the speed must not cost). One thread, as the app runs them. UMAP's first call
in a process compiles numba kernels: it is printed on its own line.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from vae_core import embedding

POINTS, LATENT_DIM, K = 5000, 20, 10


def clustered_codes(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(10, LATENT_DIM)) * 3
    return (centres[rng.integers(0, 10, POINTS)] + rng.normal(size=(POINTS, LATENT_DIM))).astype(
        np.float32
    )


def run_codes(run_dir: str) -> np.ndarray:
    from vae_core import latent
    from vae_core.checkpoint import snapshot_model
    from vae_core.data import load_dataset
    from vae_core.rundir import RunDir

    run = RunDir(run_dir)
    model, _ = snapshot_model(run)
    _, cfg = run.read_config()
    data = load_dataset(cfg.dataset, "test", cfg.data_dir, **cfg.dataset_options)
    return latent.encode_dataset(model, data, POINTS).mu


def neighbours_kept(codes: np.ndarray, coords: np.ndarray) -> float:
    """Mean share of each point's K nearest codes that stay among its K nearest in 2D."""

    def knn(x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float64)
        sq = (x**2).sum(1)
        d = sq[:, None] - 2 * x @ x.T + sq[None]
        np.fill_diagonal(d, np.inf)
        return np.argpartition(d, K, axis=1)[:, :K]

    high, low = knn(codes), knn(coords)
    return float(np.mean([len(set(a) & set(b)) / K for a, b in zip(high, low, strict=True)]))


def sklearn_tsne(codes: np.ndarray) -> np.ndarray:
    """The app's t-SNE before openTSNE: scikit-learn's Barnes-Hut, its defaults."""
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return TSNE(init="pca", learning_rate="auto", random_state=0).fit_transform(codes)


def timed(name: str, fn: Callable[[], np.ndarray], codes: np.ndarray, repeats: int) -> None:
    seconds, kept = [], 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        coords = np.asarray(fn())
        seconds.append(time.perf_counter() - t0)
        kept = neighbours_kept(codes, coords)
    print(
        f"{name:<32} {min(seconds):6.1f} / {statistics.median(seconds):6.1f} / "
        f"{max(seconds):6.1f} s   {K}-NN kept {kept:.2f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", help="take the codes from this run's snapshot")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sklearn", action="store_true", help="also time scikit-learn's t-SNE")
    parser.add_argument("--no-umap", action="store_true", help="time t-SNE only")
    args = parser.parse_args()
    codes = run_codes(args.run_dir) if args.run_dir else clustered_codes()
    print(f"{len(codes)} codes of latent {codes.shape[1]}; min / median / max of {args.repeats}")
    if args.sklearn:
        timed("t-SNE, scikit-learn (before)", lambda: sklearn_tsne(codes), codes, args.repeats)
    tsne = lambda: embedding.tsne_2d(codes, num_threads=1).coords  # noqa: E731
    timed("t-SNE, openTSNE (the app's)", tsne, codes, args.repeats)
    if not args.no_umap:
        umap = lambda: embedding.umap_2d(codes).coords  # noqa: E731
        timed("UMAP, first call (compiles)", umap, codes, 1)
        timed("UMAP", umap, codes, args.repeats)


if __name__ == "__main__":
    main()
