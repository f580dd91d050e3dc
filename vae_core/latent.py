"""The latent space as numpy arrays: encode a dataset, 2D projections, interpolation,
traversals, prior samples and decoding to displayable uint8 images.

This is the API the explorer calls; torch stays inside this module, so callers pass and
receive float32 / uint8 numpy arrays.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from vae_core.models import LatentVariableModel

if TYPE_CHECKING:
    from vae_core.data import ImageDataset

# Below this sin(angle) the slerp weights divide by ~0: the vectors are (anti)parallel.
_SLERP_PARALLEL_EPS = 1e-6


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@contextlib.contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Eval + no_grad for the duration, restoring the caller's train/eval flag after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _to_uint8_hwc(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) floats in [0, 1] -> (N, H, W, C) uint8, round(255 * p)."""
    pixels = torch.round(images.clamp(0.0, 1.0) * 255).to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).cpu().numpy()  # (N, H, W, C)


# --- encoding -------------------------------------------------------------------------


@dataclass(frozen=True)
class EncodedSet:
    mu: np.ndarray  # (N, D) float32 posterior means
    logvar: np.ndarray  # (N, D) float32
    labels: np.ndarray  # (N,) int64
    indices: np.ndarray  # (N,) int64 positions in the dataset

    def __len__(self) -> int:
        return len(self.indices)


def encode_dataset(
    model: LatentVariableModel,
    data: ImageDataset,
    max_items: int | None = None,
    batch_size: int = 1000,
) -> EncodedSet:
    """Posterior means and log-variances of the first `max_items` items of `data` (all if None)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = len(data) if max_items is None else min(len(data), max(0, max_items))
    device = _device(model)
    mus, logvars = [], []
    with _eval_mode(model):
        for start in range(0, n, batch_size):
            x = data.batch(slice(start, min(start + batch_size, n)), device=device)  # (B, C, H, W)
            mu, logvar = model.encode(x)  # (B, D)
            mus.append(mu.float().cpu())
            logvars.append(logvar.float().cpu())
    D = model.config.latent_dim
    return EncodedSet(
        mu=torch.cat(mus).numpy() if mus else np.zeros((0, D), np.float32),
        logvar=torch.cat(logvars).numpy() if logvars else np.zeros((0, D), np.float32),
        labels=data.labels[:n].to(torch.int64).cpu().numpy(),
        indices=np.arange(n, dtype=np.int64),
    )


# --- 2D projections -------------------------------------------------------------------


@dataclass(frozen=True)
class Projection:
    """A fitted map from latent codes (M, D) to the 2D scatter view (M, 2)."""

    method: str  # "identity" (D <= 2), "pca", "tsne" or "umap" (vae_core.embedding)
    coords: np.ndarray  # (N, 2) float32, the fitted points themselves
    components: np.ndarray | None = None  # (2, D) for pca
    mean: np.ndarray | None = None  # (D,) for pca
    explained_variance_ratio: tuple[float, ...] = ()  # pca only
    fitted_codes: np.ndarray | None = None  # (N, D) for tsne / umap: no map for new points

    def transform(self, z: np.ndarray) -> np.ndarray:
        """Project new codes (slider point, interpolation path) into this view: (M, 2)."""
        z = np.atleast_2d(np.asarray(z, dtype=np.float32))  # (M, D)
        if self.method == "pca":
            assert self.components is not None and self.mean is not None
            return ((z - self.mean) @ self.components.T).astype(np.float32)  # (M, 2)
        if self.method in ("tsne", "umap"):
            assert self.fitted_codes is not None
            return _place_among_neighbours(z, self.fitted_codes, self.coords)
        return _identity_2d(z)


def _place_among_neighbours(
    z: np.ndarray, codes: np.ndarray, coords: np.ndarray, k: int = 5
) -> np.ndarray:
    """Where t-SNE would roughly put new codes: the inverse-distance-weighted mean of the
    2D positions of their k nearest fitted codes; a fitted code lands on itself. (M, 2)"""
    k = min(k, len(codes))
    z, codes = z.astype(np.float64), codes.astype(np.float64)  # float32 cancels near 0
    sq = (z**2).sum(1)[:, None] - 2 * z @ codes.T + (codes**2).sum(1)[None]  # (M, N)
    nearest = np.argpartition(sq, k - 1, axis=1)[:, :k]  # (M, k)
    dist = np.sqrt(np.clip(np.take_along_axis(sq, nearest, axis=1), 0.0, None))  # (M, k)
    weights = 1.0 / (dist + 1e-6)
    weights /= weights.sum(1, keepdims=True)
    return (weights[..., None] * coords[nearest]).sum(1).astype(np.float32)  # (M, 2)


def _identity_2d(z: np.ndarray) -> np.ndarray:
    """(M, 1) -> (z, 0); (M, 2) -> a float32 copy."""
    if z.shape[1] == 1:
        return np.concatenate([z, np.zeros_like(z)], axis=1).astype(np.float32)  # (M, 2)
    return np.array(z[:, :2], dtype=np.float32)


@dataclass(frozen=True)
class PrincipalAxes:
    """The top principal directions of a set of codes (the aggregate posterior's means)."""

    mean: np.ndarray  # (D,)
    components: np.ndarray  # (k, D) unit rows, largest variance first
    variance: np.ndarray  # (k,) variance of the codes along each row
    share: np.ndarray  # (k,) that variance over the total variance of the codes


EXACT_PCA_MAX_DIM = 512  # above it (spatial latents) a randomized SVD keeps PCA to ~1 s


def principal_axes(mu: np.ndarray, k: int) -> PrincipalAxes:
    """Top-k principal axes of codes mu (N, D), signs fixed for stable plots."""
    X = np.asarray(mu, dtype=np.float64)  # (N, D)
    N, D = X.shape
    mean = X.mean(axis=0) if N else np.zeros(D)
    Xc = X - mean  # (N, D)
    k_found = min(k, D, max(N, 1))
    if D <= EXACT_PCA_MAX_DIM:
        # Eigenvectors of the D x D scatter matrix: the same axes as an SVD of Xc, but
        # O(N D^2) instead of a full SVD, so 10k x 256 codes project in tens of ms.
        scatter_eig, vectors = np.linalg.eigh(Xc.T @ Xc)  # ascending; (D, D) columns
        top = vectors[:, ::-1][:, :k_found].T  # (k, D)
        sq = np.clip(scatter_eig[::-1][:k_found], 0.0, None)  # (k,) sum of squares
    else:
        from sklearn.utils.extmath import randomized_svd

        _, singular, top = randomized_svd(Xc, k_found, random_state=0)  # top: (k, D)
        sq = singular**2
    components = np.zeros((k, D))
    components[:k_found] = top
    # Eigenvector signs are arbitrary; make each axis's largest-|.| loading positive so the
    # picture does not flip between refreshes of the same model.
    signs = np.sign(components[np.arange(k), np.abs(components).argmax(axis=1)])
    components *= np.where(signs == 0, 1.0, signs)[:, None]
    variance = np.zeros(k)
    variance[:k_found] = sq / max(N, 1)
    total = (Xc**2).sum() / max(N, 1)
    share = variance / total if total > 0 else np.zeros(k)
    return PrincipalAxes(mean, components, variance, share)


def _pca(mu: np.ndarray) -> Projection:
    """Top-2 principal axes of the codes, as a 2D view."""
    axes = principal_axes(mu, 2)
    Xc = np.asarray(mu, dtype=np.float64) - axes.mean  # (N, D)
    return Projection(
        method="pca",
        coords=(Xc @ axes.components.T).astype(np.float32),  # (N, 2)
        components=axes.components.astype(np.float32),
        mean=axes.mean.astype(np.float32),
        explained_variance_ratio=tuple(float(v) for v in axes.share),
    )


def spatial_point(
    axes: PrincipalAxes,
    along: Sequence[float],
    channel_offsets: Sequence[float],
    latent_shape: Sequence[int],
) -> np.ndarray:
    """A point of a spatial latent (C, H, W), flat (D,): the codes' mean, moved `along[i]`
    standard deviations along principal direction i, plus `channel_offsets[c]` added to
    every position of channel c."""
    C = latent_shape[0]
    if len(along) > len(axes.components) or len(channel_offsets) != C:
        raise ValueError(
            f"need at most {len(axes.components)} direction values and {C} channel offsets"
        )
    steps = np.asarray(along, dtype=np.float64) * np.sqrt(axes.variance[: len(along)])  # (k,)
    z = axes.mean + steps @ axes.components[: len(along)]  # (D,)
    offsets = np.repeat(np.asarray(channel_offsets, dtype=np.float64), z.size // C)  # (D,)
    return (z + offsets).astype(np.float32)


def project_2d(mu: np.ndarray, method: Literal["auto", "pca"] = "auto") -> Projection:
    """mu: (N, D) -> 2D view. auto: the codes themselves when D <= 2, else PCA."""
    mu = np.asarray(mu, dtype=np.float32)
    if mu.ndim != 2:
        raise ValueError(f"mu must be (N, D), got shape {mu.shape}")
    if method not in ("auto", "pca"):
        raise ValueError(f"unknown projection {method!r}; use auto or pca")
    if method == "auto" and mu.shape[1] <= 2:
        return Projection(method="identity", coords=_identity_2d(mu))
    return _pca(mu)


def procrustes_rotation(reference: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The orthogonal R (D, D) minimising ||(P - mean P) R - (A - mean A)||_F.

    Orthogonal Procrustes (Schoenemann 1966): with U S V^T = svd(Pc^T Ac), R = U V^T. Both
    clouds are centred to fit R; R rotates (or reflects) only, never scales or shifts.
    reference, points: (N, D), row i of each the same item.
    """
    A = np.asarray(reference, dtype=np.float64)  # (N, D)
    P = np.asarray(points, dtype=np.float64)  # (N, D)
    if A.shape != P.shape or A.ndim != 2:
        raise ValueError(f"need two (N, D) arrays of one shape, got {A.shape} and {P.shape}")
    U, _, Vt = np.linalg.svd((P - P.mean(0)).T @ (A - A.mean(0)))  # (D, D) each
    return U @ Vt


def procrustes_align(reference: np.ndarray, points: np.ndarray) -> np.ndarray:
    """`points` (N, D) rotated onto `reference` (N, D) about the origin: points @ R.

    The rotation is fitted on centred clouds but applied about the origin, the prior's mean,
    so a code at 0 stays at 0 (posterior collapse still shrinks to the origin).
    """
    R = procrustes_rotation(reference, points)
    return (np.asarray(points, dtype=np.float64) @ R).astype(np.float32)


@dataclass(frozen=True)
class TimeLapse:
    """Codes at several training steps, drawn in one stable 2D view.

    frames: (T, N, 2) projected codes; rotations: (T, D, D) the Procrustes alignment of each
    frame onto the reference (identity for D <= 2); projection: the reference frame's.
    """

    frames: np.ndarray
    rotations: np.ndarray
    projection: Projection
    reference: int

    def transform(self, frame: int, z: np.ndarray) -> np.ndarray:
        """Other codes (M, D) of frame `frame` (the slider point) into the same view: (M, 2)."""
        z = np.atleast_2d(np.asarray(z, dtype=np.float32))  # (M, D)
        return self.projection.transform(z @ self.rotations[frame])


def time_lapse(codes: Sequence[np.ndarray], reference: int = -1) -> TimeLapse:
    """One stable 2D view of the same items' codes at T training steps.

    codes: T arrays (N, D). D <= 2 is shown as is. Otherwise each frame is first aligned to
    the reference frame (default the newest) by orthogonal Procrustes in latent space (the
    KL term does not care how the latent is rotated, so training may rotate it freely), then
    projected with PCA fitted on the reference, so points move instead of jumping.
    """
    if len(codes) == 0:
        raise ValueError("a time-lapse needs at least one frame")
    stack = np.stack([np.asarray(c, dtype=np.float32) for c in codes])  # (T, N, D)
    T, _, D = stack.shape
    reference = reference % T
    if D <= 2:
        projection = Projection(method="identity", coords=_identity_2d(stack[reference]))
        rotations = np.broadcast_to(np.eye(D, dtype=np.float32), (T, D, D))
    else:
        rotations = np.stack([procrustes_rotation(stack[reference], c) for c in stack])
        rotations = rotations.astype(np.float32)  # (T, D, D)
        projection = project_2d(stack[reference], method="pca")
    frames = np.stack(
        [projection.transform(c @ r) for c, r in zip(stack, rotations, strict=True)]
    )  # (T, N, 2)
    return TimeLapse(frames=frames, rotations=rotations, projection=projection, reference=reference)


# --- interpolation, traversal, prior --------------------------------------------------


def _endpoints(z0: np.ndarray, z1: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    z0 = np.asarray(z0, dtype=np.float32).reshape(-1)
    z1 = np.asarray(z1, dtype=np.float32).reshape(-1)
    if z0.shape != z1.shape:
        raise ValueError(f"endpoints differ in size: {z0.shape} vs {z1.shape}")
    if steps < 2:
        raise ValueError(f"steps must be >= 2 (both endpoints), got {steps}")
    return z0, z1


def lerp(z0: np.ndarray, z1: np.ndarray, steps: int) -> np.ndarray:
    """Straight line z0 -> z1: (steps, D), endpoints exact."""
    z0, z1 = _endpoints(z0, z1, steps)
    t = np.linspace(0.0, 1.0, steps, dtype=np.float64)[:, None]  # (steps, 1)
    path = ((1 - t) * z0 + t * z1).astype(np.float32)  # (steps, D)
    path[0], path[-1] = z0, z1
    return path


def slerp(z0: np.ndarray, z1: np.ndarray, steps: int) -> np.ndarray:
    """Spherical interpolation (White 2016, "Sampling Generative Networks"): (steps, D).

    Follows the great circle between the directions of z0 and z1, so midpoints keep the
    norm a Gaussian prior sample typically has instead of shrinking towards 0 as lerp's do.
    Falls back to lerp when either vector is zero or the two are (anti)parallel.
    """
    z0, z1 = _endpoints(z0, z1, steps)
    a, b = z0.astype(np.float64), z1.astype(np.float64)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return lerp(z0, z1, steps)
    omega = np.arccos(np.clip(a @ b / (na * nb), -1.0, 1.0))  # angle between them
    so = np.sin(omega)
    if so < _SLERP_PARALLEL_EPS:
        return lerp(z0, z1, steps)
    t = np.linspace(0.0, 1.0, steps)[:, None]  # (steps, 1)
    path = (np.sin((1 - t) * omega) / so * a + np.sin(t * omega) / so * b).astype(np.float32)
    path[0], path[-1] = z0, z1
    return path


def interpolate(
    z0: np.ndarray, z1: np.ndarray, steps: int, method: Literal["lerp", "slerp"] = "lerp"
) -> np.ndarray:
    """lerp or slerp from z0 to z1: (steps, D)."""
    if method == "lerp":
        return lerp(z0, z1, steps)
    if method == "slerp":
        return slerp(z0, z1, steps)
    raise ValueError(f"unknown interpolation {method!r}; use lerp or slerp")


def traversal_grid(base_z: np.ndarray, dims: Sequence[int], values: Sequence[float]) -> np.ndarray:
    """Codes that vary one dim at a time from base_z: (len(dims) * len(values), D).

    Row-major: all values of dims[0], then all values of dims[1], ...; other dims stay at base_z.
    """
    base_z = np.asarray(base_z, dtype=np.float32).reshape(-1)  # (D,)
    D = base_z.shape[0]
    bad = [d for d in dims if not 0 <= d < D]
    if bad:
        raise ValueError(f"dims {bad} are out of range for a {D}-dim latent")
    values = np.asarray(values, dtype=np.float32)  # (V,)
    grid = np.tile(base_z, (len(dims), len(values), 1))  # (len(dims), V, D)
    for i, d in enumerate(dims):
        grid[i, :, d] = values
    return grid.reshape(-1, D)


def sample_prior(n: int, latent_dim: int, temperature: float = 1.0, seed: int = 0) -> np.ndarray:
    """n draws from N(0, T^2 I): (n, D), the same for the same seed."""
    if n < 0 or latent_dim < 1 or temperature < 0:
        raise ValueError(
            f"need n >= 0, latent_dim >= 1, temperature >= 0; got {n}, {latent_dim}, {temperature}"
        )
    generator = torch.Generator().manual_seed(seed)
    eps = torch.randn(n, latent_dim, generator=generator)  # (n, D)
    return (temperature * eps).numpy().astype(np.float32)


# --- decoding to images ---------------------------------------------------------------


def decode_latents(model: LatentVariableModel, z: np.ndarray) -> np.ndarray:
    """Codes (N, D) -> display images (N, H, W, C) uint8; greyscale keeps C = 1."""
    z = np.atleast_2d(np.asarray(z, dtype=np.float32))  # (N, D)
    with _eval_mode(model):
        images = model.decode_image(torch.from_numpy(z).to(_device(model)))  # (N, C, H, W)
    return _to_uint8_hwc(images)


def reconstruct_images(
    model: LatentVariableModel, data: ImageDataset, indices: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """(originals, reconstructions from mu), both (N, H, W, C) uint8, for data[indices]."""
    index = torch.as_tensor(list(indices), dtype=torch.int64)
    with _eval_mode(model):
        x = data.batch(index, device=_device(model))  # (N, C, H, W) in [0, 1]
        recon = model.reconstruct(x)  # (N, C, H, W)
    return _to_uint8_hwc(x), _to_uint8_hwc(recon)


def image_grid(images: np.ndarray, nrow: int, padding: int = 2, pad_value: int = 255) -> np.ndarray:
    """uint8 (N, H, W, C) -> one uint8 picture (H', W', C), `nrow` images per row.

    torchvision's make_grid does the layout, so its arithmetic applies:
    H' = rows * (H + padding) + padding, W' = min(nrow, N) * (W + padding) + padding,
    except that a single image comes back unpadded.
    """
    images = np.asarray(images, dtype=np.uint8)
    if images.ndim == 3:
        images = images[..., None]  # (N, H, W) greyscale -> (N, H, W, 1)
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(f"images must be a non-empty (N, H, W, C) array, got {images.shape}")
    # Imported here: torchvision adds about two seconds to the import of this module.
    from torchvision.utils import make_grid

    C = images.shape[-1]
    tensor = torch.from_numpy(images).permute(0, 3, 1, 2)  # (N, C, H, W)
    grid = make_grid(tensor, nrow=nrow, padding=padding, pad_value=pad_value)  # (3|C, H', W')
    # make_grid copies one channel into three; the three are equal, so keep the first.
    grid = grid[:C] if C == 1 else grid
    return grid.permute(1, 2, 0).contiguous().numpy()  # (H', W', C)


# --- ordering by KL -------------------------------------------------------------------


def aggregate_second_moment(codes: EncodedSet) -> float:
    """E[z_d^2] under the aggregate posterior, averaged over dimensions: 1 when the encoded
    data fill the prior N(0, I) (mean 0, variance 1), far below or above 1 when the model was
    trained with a tiny KL weight and its codes live elsewhere."""
    mu, var = codes.mu.astype(np.float64), np.exp(codes.logvar.astype(np.float64))
    return float((mu**2 + var).mean()) if mu.size else 1.0


def kl_order(kl_per_dim: Sequence[float]) -> list[int]:
    """Latent dims sorted by KL, largest first; ties keep index order."""
    kl = np.asarray(kl_per_dim, dtype=np.float64)
    return np.argsort(-kl, kind="stable").tolist()


def active_dims(kl_per_dim: Sequence[float], threshold: float = 0.01) -> np.ndarray:
    """bool (D,): dims whose KL (nats) exceeds `threshold`; the rest the model ignores."""
    return np.asarray(kl_per_dim, dtype=np.float64) > threshold
