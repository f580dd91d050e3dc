"""Where the data lives in latent space: the aggregate posterior q(z) = 1/N sum_i q(z|x_i).

Numpy (and scipy) only, no torch: per-direction histograms of q next to the N(0, 1) prior,
slider ranges, the prior-hole map log q(z) - log p(z) on a 2D plane, an on/off-manifold
test, a diagonal Gaussian mixture fitted to the codes, and attribute vectors with their AUC.
Every q(z|x_i) is the encoder's N(mu_i, diag(exp(logvar_i))) (Kingma & Welling 2014).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.special import logsumexp, ndtr

LOG_2PI = math.log(2 * math.pi)
RangePreset = Literal["prior", "data"]
PRIOR_SIGMAS = 3.0  # the "prior" preset: +-3 prior standard deviations
DATA_QUANTILES = (0.01, 0.99)  # the "data" preset: 1-99 % quantiles of q(z_d)
MIN_WIDTH = 0.1  # a collapsed direction still gets a usable slider
HOLE_CLIP = 10.0  # nats: the hole map saturates beyond this, so one outlier can't wash it out


def normal_pdf(x: np.ndarray) -> np.ndarray:
    """Density of N(0, 1) at x."""
    x = np.asarray(x, dtype=np.float64)
    return np.exp(-0.5 * x**2 - 0.5 * LOG_2PI)


def sample_posterior(mu: np.ndarray, logvar: np.ndarray, seed: int = 0) -> np.ndarray:
    """One z ~ q(z|x_i) per row: together a sample of the aggregate posterior. (N, D)"""
    eps = np.random.default_rng(seed).standard_normal(np.shape(mu))  # (N, D)
    return np.asarray(mu, np.float64) + np.exp(0.5 * np.asarray(logvar, np.float64)) * eps


# --- histograms of q along slider directions ------------------------------------------


def projected_moments(
    mu: np.ndarray, logvar: np.ndarray, directions: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Means and standard deviations of v_k . z under each q(z|x_i): both (N, K).

    directions: (K, D). A diagonal Gaussian projects to N(v . mu_i, sum_d v_d^2 sigma_id^2).
    """
    mu = np.asarray(mu, np.float64)  # (N, D)
    V = np.asarray(directions, np.float64)  # (K, D)
    means = mu @ V.T  # (N, K)
    stds = np.sqrt(np.exp(np.asarray(logvar, np.float64)) @ (V**2).T)  # (N, K)
    return means, stds


def slider_ranges(
    mu: np.ndarray,
    logvar: np.ndarray,
    directions: np.ndarray,
    preset: RangePreset = "prior",
    seed: int = 0,
) -> np.ndarray:
    """[lo, hi] per direction, (K, 2): the prior's +-3 sigma, or the data's 1-99 % quantiles.

    The quantiles are those of one sample z ~ q(z|x_i) per image (seeded), projected: a
    sample of q itself, not of the means, which are tighter than q.
    """
    K = len(directions)
    if preset == "prior":
        return np.tile([-PRIOR_SIGMAS, PRIOR_SIGMAS], (K, 1))
    if preset != "data":
        raise ValueError(f"unknown range preset {preset!r}; use prior or data")
    if len(mu) == 0:
        return np.tile([-PRIOR_SIGMAS, PRIOR_SIGMAS], (K, 1))
    z = sample_posterior(mu, logvar, seed) @ np.asarray(directions, np.float64).T  # (N, K)
    lo, hi = np.quantile(z, DATA_QUANTILES, axis=0)  # (K,) each
    centre, half = (lo + hi) / 2, np.maximum((hi - lo) / 2, MIN_WIDTH / 2)
    return np.stack([centre - half, centre + half], axis=1)


@dataclass(frozen=True)
class SliderHistograms:
    """q and the prior along K slider directions, as densities on `bins` equal bins each.

    ranges: (K, 2) each slider's [lo, hi]; q, p: (K, bins) the mean density of the aggregate
    posterior and of N(0, 1) over each bin (exact: Gaussian CDF differences, not samples).
    """

    ranges: np.ndarray
    q: np.ndarray
    p: np.ndarray

    def to_lists(self, digits: int = 4) -> dict[str, list]:
        """Plain rounded lists for a browser component or a cache."""
        return {k: np.round(getattr(self, k), digits).tolist() for k in ("ranges", "q", "p")}


def slider_histograms(
    mu: np.ndarray,
    logvar: np.ndarray,
    directions: np.ndarray | None = None,
    preset: RangePreset = "prior",
    bins: int = 32,
    seed: int = 0,
) -> SliderHistograms:
    """Histograms of q(v . z) for each direction v (default: each latent dimension)."""
    mu = np.asarray(mu, np.float64)
    V = np.eye(mu.shape[1]) if directions is None else np.asarray(directions, np.float64)
    ranges = slider_ranges(mu, logvar, V, preset, seed)  # (K, 2)
    means, stds = projected_moments(mu, logvar, V)  # (N, K)
    edges = ranges[:, :1] + (ranges[:, 1:] - ranges[:, :1]) * np.linspace(0, 1, bins + 1)
    widths = np.diff(edges, axis=1)  # (K, bins)
    q = np.zeros((len(V), bins))
    if len(mu):
        for k in range(len(V)):  # one direction at a time keeps memory at N x bins
            cdf = ndtr((edges[k][None, :] - means[:, k : k + 1]) / stds[:, k : k + 1])
            q[k] = np.diff(cdf, axis=1).mean(0) / widths[k]  # mixture mass / bin width
    p = np.diff(ndtr(edges), axis=1) / widths  # prior N(0, 1) on every unit direction
    return SliderHistograms(ranges=ranges, q=q, p=p)


# --- the prior-hole map on a 2D plane ------------------------------------------------


@dataclass(frozen=True)
class Plane:
    """The linear 2D view c = W (z - m) of the scatter: W (2, D), m (D,)."""

    components: np.ndarray
    mean: np.ndarray

    def project(self, z: np.ndarray) -> np.ndarray:
        return (np.atleast_2d(z) - self.mean) @ self.components.T  # (M, 2)


def plane_for(method: str, latent_dim: int, components=None, mean=None) -> Plane | None:
    """The plane of a scatter projection ("identity" for D = 2, "pca"); None for the others
    (t-SNE has no linear map, and a 1-D latent has no second axis)."""
    if method == "identity" and latent_dim == 2:
        return Plane(components=np.eye(2), mean=np.zeros(2))
    if method == "pca" and components is not None and mean is not None:
        return Plane(components=np.asarray(components, np.float64), mean=np.asarray(mean))
    return None


@dataclass(frozen=True)
class HoleMap:
    """log q(c) - log p(c) on a grid of the plane: xs (Gx,), ys (Gy,), log_ratio (Gy, Gx)."""

    xs: np.ndarray
    ys: np.ndarray
    log_ratio: np.ndarray


def _log_normal_1d(x: np.ndarray, means: np.ndarray, variances: np.ndarray) -> np.ndarray:
    """log N(x_g; m_i, s_i^2): (N, G) for grid x (G,) and per-point m, s^2 (N,)."""
    d2 = (x[None, :] - means[:, None]) ** 2  # (N, G)
    return -0.5 * (d2 / variances[:, None] + np.log(variances)[:, None] + LOG_2PI)


def _log_separable_mixture(
    xs: np.ndarray, ys: np.ndarray, means: np.ndarray, variances: np.ndarray
) -> np.ndarray:
    """log of 1/N sum_i N(x; m_ix, s_ix^2) N(y; m_iy, s_iy^2) on the grid: (Gy, Gx).

    Each component factorises over x and y, so the sum over i is one matrix product of two
    (N, G) tables: about 2 N G^2 flops instead of N G^2 exponentials. Each table is scaled by
    its column max first (log-sum-exp style) so far-away grid cells don't underflow to 0.
    """
    la = _log_normal_1d(xs, means[:, 0], variances[:, 0])  # (N, Gx)
    lb = _log_normal_1d(ys, means[:, 1], variances[:, 1])  # (N, Gy)
    ma, mb = la.max(0), lb.max(0)  # (Gx,), (Gy,)
    s = np.exp(lb - mb).T @ np.exp(la - ma)  # (Gy, Gx)
    tiny = np.finfo(np.float64).tiny
    return np.log(np.maximum(s, tiny)) + mb[:, None] + ma[None, :] - math.log(len(means))


def hole_map(
    mu: np.ndarray,
    logvar: np.ndarray,
    plane: Plane,
    grid: int = 80,
    extent: tuple[float, float, float, float] | None = None,
) -> HoleMap:
    """log q_agg(c) - log p(c) on a grid x grid lattice of the plane c = W (z - m).

    Approximation: each q(z|x_i) projects to N(W (mu_i - m), W diag(sigma_i^2) W^T); only
    that 2x2 covariance's diagonal is kept (exact when W picks latent axes, D = 2). The prior
    projects to N(-W m, W W^T) (diagonal for orthonormal PCA axes). Positive: data lives
    there; negative: the prior puts mass where no code goes (a prior hole).
    extent: (x0, x1, y0, y1); default covers the data and the prior's +-3 sigma.
    """
    W = np.asarray(plane.components, np.float64)  # (2, D)
    means = plane.project(np.asarray(mu, np.float64))  # (N, 2)
    variances = np.exp(np.asarray(logvar, np.float64)) @ (W**2).T  # (N, 2)
    prior_mean = -W @ plane.mean  # (2,)
    prior_var = (W**2).sum(1)  # (2,) diag(W W^T)
    if extent is None:
        extent = _extent(means, prior_mean, np.sqrt(prior_var))
    xs = np.linspace(extent[0], extent[1], grid)
    ys = np.linspace(extent[2], extent[3], grid)
    log_q = _log_separable_mixture(xs, ys, means, variances)  # (Gy, Gx)
    log_px = _log_normal_1d(xs, prior_mean[:1], prior_var[:1])[0]  # (Gx,)
    log_py = _log_normal_1d(ys, prior_mean[1:], prior_var[1:])[0]  # (Gy,)
    log_ratio = np.clip(log_q - log_py[:, None] - log_px[None, :], -HOLE_CLIP, HOLE_CLIP)
    return HoleMap(xs=xs, ys=ys, log_ratio=log_ratio)


def _extent(
    means: np.ndarray, prior_mean: np.ndarray, prior_sd: np.ndarray
) -> tuple[float, float, float, float]:
    lo = np.minimum(np.quantile(means, 0.002, axis=0), prior_mean - PRIOR_SIGMAS * prior_sd)
    hi = np.maximum(np.quantile(means, 0.998, axis=0), prior_mean + PRIOR_SIGMAS * prior_sd)
    pad = 0.05 * (hi - lo)
    return (lo[0] - pad[0], hi[0] + pad[0], lo[1] - pad[1], hi[1] + pad[1])


# --- on or off the data manifold ---------------------------------------------------------


def _log_gaussians(z: np.ndarray, mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """log N(z_m; mu_i, diag exp(logvar_i)) for every pair: (M, N).

    sum_d (z_d - mu_d)^2 / s_d^2 is expanded into matrix products, O(M N D) in BLAS.
    """
    inv_var = np.exp(-logvar)  # (N, D)
    const = (mu**2 * inv_var).sum(1) + logvar.sum(1) + mu.shape[1] * LOG_2PI  # (N,)
    return -0.5 * (z**2 @ inv_var.T - 2 * z @ (mu * inv_var).T + const)  # (M, N)


def log_q_agg(z: np.ndarray, mu: np.ndarray, logvar: np.ndarray, chunk: int = 256) -> np.ndarray:
    """log q_agg(z) = logsumexp_i log N(z; mu_i, diag sigma_i^2) - log N in all D dims: (M,)."""
    z = np.atleast_2d(np.asarray(z, np.float64))  # (M, D)
    mu, logvar = np.asarray(mu, np.float64), np.asarray(logvar, np.float64)  # (N, D)
    out = np.empty(len(z))
    for start in range(0, len(z), chunk):  # chunks of z keep the (m, N) table small
        log_n = _log_gaussians(z[start : start + chunk], mu, logvar)  # (m, N)
        out[start : start + chunk] = logsumexp(log_n, axis=1) - math.log(len(mu))
    return out


def manifold_threshold(
    mu: np.ndarray, logvar: np.ndarray, quantile: float = 0.01, samples: int = 1000, seed: int = 0
) -> float:
    """The `quantile` of log q_agg(z) over z ~ q_agg: 99 % of q's mass lies above it."""
    z = sample_posterior(mu, logvar, seed)  # (N, D)
    pick = np.random.default_rng(seed).permutation(len(z))[:samples]
    return float(np.quantile(log_q_agg(z[pick], mu, logvar), quantile))


def on_manifold(z: np.ndarray, mu: np.ndarray, logvar: np.ndarray, threshold: float) -> bool:
    """Whether z sits where the data's codes go (log q_agg(z) above the threshold)."""
    return bool(log_q_agg(z, mu, logvar)[0] >= threshold)


# --- a Gaussian mixture to sample the aggregate posterior ----------------------------


@dataclass(frozen=True)
class DiagonalGMM:
    """weights (K,), means (K, D), variances (K, D): a diagonal-covariance Gaussian mixture."""

    weights: np.ndarray
    means: np.ndarray
    variances: np.ndarray

    def sample_from_noise(self, eps: np.ndarray, seed: int = 0) -> np.ndarray:
        """z = means[k] + sd[k] * eps with k ~ weights (seeded): (n, D). Passing the prior
        sample's eps (scaled by a temperature) gives the same-seed counterpart of a prior grid."""
        eps = np.atleast_2d(np.asarray(eps, np.float64))  # (n, D)
        k = np.random.default_rng(seed).choice(len(self.weights), size=len(eps), p=self.weights)
        return (self.means[k] + np.sqrt(self.variances[k]) * eps).astype(np.float32)


def _kmeans_pp(z: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k starting means by k-means++ seeding (Arthur & Vassilvitskii 2007): (k, D)."""
    centres = [z[rng.integers(len(z))]]
    d2 = ((z - centres[0]) ** 2).sum(1)  # (N,) squared distance to the nearest centre
    for _ in range(1, k):
        total = d2.sum()
        pick = rng.choice(len(z), p=d2 / total) if total > 0 else rng.integers(len(z))
        centres.append(z[pick])
        d2 = np.minimum(d2, ((z - z[pick]) ** 2).sum(1))
    return np.array(centres)


def fit_gmm(
    z: np.ndarray,
    k: int = 10,
    seed: int = 0,
    iterations: int = 100,
    tol: float = 1e-3,
    max_points: int = 2000,
) -> DiagonalGMM:
    """EM (Dempster et al. 1977) for a k-component diagonal Gaussian mixture on z (N, D).

    k-means++ starting means, seeded, so the same codes give the same mixture. Stops when the
    mean log-likelihood gains less than `tol` nats. A floor on the variances keeps a
    component that shrinks onto one code from collapsing to a spike. Fits a seeded subset of
    `max_points` codes: plenty for 20 components, and a fit stays well under a second.
    """
    rng = np.random.default_rng(seed)
    z = np.asarray(z, np.float64)  # (N, D)
    if len(z) > max_points:
        z = z[rng.choice(len(z), max_points, replace=False)]
    N = len(z)
    k = max(1, min(k, N))
    floor = 1e-6 * max(float(z.var(0).mean()), 1e-12)
    means = _kmeans_pp(z, k, rng)  # (k, D)
    variances = np.tile(z.var(0) + floor, (k, 1))  # (k, D)
    weights = np.full(k, 1.0 / k)
    previous = -np.inf
    for _ in range(iterations):
        # E step: responsibilities r_ik = p(component k | z_i)
        log_r = _log_gaussians(z, means, np.log(variances)) + np.log(weights)  # (N, k)
        log_lik = logsumexp(log_r, axis=1)  # (N,)
        r = np.exp(log_r - log_lik[:, None])  # (N, k)
        # M step: weighted counts, means and (diagonal) variances
        nk = r.sum(0) + 1e-12  # (k,)
        weights = nk / N
        means = (r.T @ z) / nk[:, None]  # (k, D)
        variances = np.maximum((r.T @ z**2) / nk[:, None] - means**2, 0.0) + floor
        if log_lik.mean() - previous < tol:
            break
        previous = log_lik.mean()
    return DiagonalGMM(weights=weights, means=means, variances=variances)


# --- attribute vectors ---------------------------------------------------------------


def balanced_mean(mu: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The mean of the per-class means of mu (N, D): each class counts once, whatever its size."""
    mu, labels = np.asarray(mu, np.float64), np.asarray(labels)
    if len(mu) == 0:
        raise ValueError("a group needs at least one point")
    return np.mean([mu[labels == c].mean(0) for c in np.unique(labels)], axis=0)


def attribute_vector(
    mu_a: np.ndarray, labels_a: np.ndarray, mu_b: np.ndarray, labels_b: np.ndarray
) -> np.ndarray:
    """Group B's class-balanced mean minus group A's (D,): moving along it goes from A to B.

    Balancing keeps a group that is, say, 90 % one class from making the vector mostly about
    that class (the attribute-vector recipe of White 2016, "Sampling Generative Networks").
    """
    return balanced_mean(mu_b, labels_b) - balanced_mean(mu_a, labels_a)


def unit(vector: np.ndarray) -> np.ndarray:
    """vector / |vector|; a zero vector is refused (it has no direction)."""
    vector = np.asarray(vector, np.float64)
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm == 0:
        raise ValueError("the attribute vector is zero: the two groups have the same mean")
    return vector / norm


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their mean rank (as the Mann-Whitney U test needs)."""
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])  # first of each tie
    ends = np.r_[starts[1:], len(x)]
    mean_rank = (starts + ends + 1) / 2  # mean of the 1-based ranks starts+1 .. ends
    ranks = np.empty(len(x))
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def separation_auc(scores_a: np.ndarray, scores_b: np.ndarray) -> float:
    """P(score_b > score_a) + P(tie) / 2 via the Mann-Whitney U statistic: 1 = B always
    above A, 0.5 = no separation."""
    a, b = np.ravel(scores_a).astype(np.float64), np.ravel(scores_b).astype(np.float64)
    if len(a) == 0 or len(b) == 0:
        raise ValueError("both groups need at least one point")
    ranks = _average_ranks(np.concatenate([a, b]))
    u = ranks[len(a) :].sum() - len(b) * (len(b) + 1) / 2
    return float(u / (len(a) * len(b)))


@dataclass(frozen=True)
class AttributeFit:
    """An attribute vector and its quality: vector (D,), direction = unit(vector), the AUC of
    telling the groups apart by z . direction, and the groups' sizes."""

    vector: np.ndarray
    direction: np.ndarray
    auc: float
    sizes: tuple[int, int]


def fit_attribute(
    mu: np.ndarray, labels: np.ndarray, in_a: np.ndarray, in_b: np.ndarray
) -> AttributeFit:
    """The attribute vector from group A (rows in_a of mu) to group B, and its AUC."""
    mu, labels = np.asarray(mu, np.float64), np.asarray(labels)
    in_a, in_b = np.asarray(in_a), np.asarray(in_b)
    vector = attribute_vector(mu[in_a], labels[in_a], mu[in_b], labels[in_b])
    direction = unit(vector)
    auc = separation_auc(mu[in_a] @ direction, mu[in_b] @ direction)
    return AttributeFit(vector, direction, auc, (len(mu[in_a]), len(mu[in_b])))
