"""The Streamlit caches around vae_core: models by snapshot version, data, encodings.

Models are keyed by (run path, snapshot version) and never mutated, so every session and
every rerun decodes with the same read-only copy; arrays go through st.cache_data.
"""

from __future__ import annotations

import json

import numpy as np
import streamlit as st

from vae_core import aggregate, gradvar, history, inspect_image, latent, user_image
from vae_core.build import build_model
from vae_core.checkpoint import snapshot_model
from vae_core.data import ImageDataset, load_dataset
from vae_core.export import ExportError, OnnxDecoder, onnx_decoder
from vae_core.latent import EncodedSet, Projection
from vae_core.metrics import MIGResult, mig_on_shapes
from vae_core.metrics_log import MetricsLog
from vae_core.models import LatentVariableModel
from vae_core.rundir import RunDir

SCATTER_MAX_POINTS = 5000  # enough for structure, light enough for a smooth WebGL plot


@st.cache_resource(max_entries=8, show_spinner=False)
def model(run_path: str, version: int) -> LatentVariableModel:
    """The VAE at this snapshot version (the newest on disk when first asked for)."""
    return snapshot_model(RunDir(run_path))[0]


@st.cache_resource(max_entries=4, show_spinner=False)
def decoder_onnx(run_path: str, version: int, _net: LatentVariableModel) -> OnnxDecoder | str:
    """The decoder of `_net` (the model at this version) as ONNX for the live sliders, or the
    one line saying why it cannot be exported (cached too: not retried on every rerun)."""
    try:
        return onnx_decoder(_net, version=version)
    except ExportError as error:
        return str(error)


@st.cache_resource(max_entries=4, show_spinner="Loading the test set…")
def _test_data(dataset: str, data_dir: str | None, options_json: str) -> ImageDataset:
    return load_dataset(dataset, "test", data_dir, **json.loads(options_json))


def test_data(run_path: str) -> ImageDataset:
    """The run's test split, shared by all runs on the same dataset and options."""
    _, cfg = RunDir(run_path).read_config()
    options = json.dumps(cfg.dataset_options, sort_keys=True)
    return _test_data(cfg.dataset, cfg.data_dir, options)


@st.cache_resource(show_spinner=False)
def metrics_log(run_path: str) -> MetricsLog:
    """One incremental metrics reader per run, shared by all sessions."""
    return MetricsLog(RunDir(run_path).metrics_path)


@st.cache_data(max_entries=4, show_spinner="Encoding the test set…")
def encoded(run_path: str, version: int) -> tuple[EncodedSet, Projection]:
    """mu of the first SCATTER_MAX_POINTS test images and their 2D projection."""
    codes = latent.encode_dataset(model(run_path, version), test_data(run_path), SCATTER_MAX_POINTS)
    return codes, latent.project_2d(codes.mu)


@st.cache_data(max_entries=4, show_spinner="Finding the principal directions…")
def principal_axes(run_path: str, version: int, k: int) -> latent.PrincipalAxes:
    """The top-k principal directions of the encoded test set's means at this version."""
    return latent.principal_axes(encoded(run_path, version)[0].mu, k)


@st.cache_data(max_entries=16, show_spinner=False)
def reconstructions(
    run_path: str, version: int, indices: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """(originals, reconstructions) uint8 (N, H, W, C) of these test images."""
    return latent.reconstruct_images(model(run_path, version), test_data(run_path), indices)


@st.cache_data(max_entries=8, show_spinner="Measuring the gradient variance…")
def gradient_variance(
    run_path: str, version: int, samples: int, batch_size: int
) -> dict[str, float | int | bool]:
    """vae_core.gradvar's summary on the first `batch_size` test images at this version."""
    data = test_data(run_path)
    x = data.batch(slice(0, min(batch_size, len(data))))  # (B, C, H, W)
    return gradvar.gradient_variance(model(run_path, version), x, samples).summary()


@st.cache_data(max_entries=8, show_spinner=False)
def prior_samples(run_path: str, version: int, n: int, temperature: float, seed: int) -> np.ndarray:
    """n decoded draws from N(0, T^2 I), uint8 (n, H, W, C)."""
    net = model(run_path, version)
    z = latent.sample_prior(n, net.config.latent_dim, temperature, seed)
    return latent.decode_latents(net, z)


TIMELAPSE_IMAGES = 2000  # the fixed test subset (the first images) a time-lapse replays


@st.cache_data(max_entries=512, show_spinner=False)
def history_codes(run_path: str, step: int, _point: history.HistoryPoint) -> np.ndarray:
    """mu (N, D) of the first TIMELAPSE_IMAGES test images at the history point `_point`
    (at `step`; a point's file never changes once written, so (run, step) is its key)."""
    # RunDamaged, one line, for weights that do not fit (a file copied from another run)
    net = history.load_into(build_model(RunDir(run_path).read_config()[0]), _point)
    return latent.encode_dataset(net, test_data(run_path), TIMELAPSE_IMAGES).mu


@st.cache_data(max_entries=4, show_spinner="Aligning the history…")
def time_lapse(
    run_path: str, steps: tuple[int, ...], _points: list[history.HistoryPoint]
) -> latent.TimeLapse:
    """The stable 2D view of the time-lapse subset at the history `_points` (at `steps`)."""
    return latent.time_lapse([history_codes(run_path, p.step, p) for p in _points])


# -- one image inspected, the user's own image, disentanglement (issue 10) --
DISENTANGLEMENT_IMAGES = 2000  # the fixed subsample (the first test images) MIG is measured on


@st.cache_data(max_entries=32, show_spinner=False)
def inspection(run_path: str, version: int, pixels: np.ndarray) -> inspect_image.Inspection:
    """Posterior and ELBO terms (z = mu) of one uint8 (C, H, W) image at this version."""
    return inspect_image.inspect(model(run_path, version), pixels)


@st.cache_data(max_entries=16, show_spinner=False)
def posterior_samples(
    run_path: str, version: int, pixels: np.ndarray, k: int, seed: int
) -> inspect_image.PosteriorSamples:
    """K decoded draws from q(z|x) of one image, and their pixel-wise standard deviation."""
    return inspect_image.posterior_samples(model(run_path, version), pixels, k, seed)


@st.cache_data(max_entries=16, show_spinner=False)
def dark_background(run_path: str) -> bool:
    """Whether the run's images are light on a dark background (MNIST, shapes)."""
    images = test_data(run_path).images[: user_image.POLARITY_SAMPLE]  # (N, C, H, W) uint8
    return user_image.background_is_dark(np.asarray(images))


@st.cache_data(max_entries=8, show_spinner=False)
def test_kl_per_dim(run_path: str, version: int) -> np.ndarray:
    """KL per dimension (D,) averaged over the scatter's test images: what "collapsed" means."""
    codes, _ = encoded(run_path, version)
    return inspect_image.mean_kl_per_dim(codes.mu, codes.logvar)


@st.cache_data(max_entries=8, show_spinner="Measuring the mutual information gap…")
def disentanglement(run_path: str, version: int) -> MIGResult:
    """MIG and I(z_d; v_k) on the first DISENTANGLEMENT_IMAGES test images at this version."""
    net = model(run_path, version)
    return mig_on_shapes(net, test_data(run_path), max_items=DISENTANGLEMENT_IMAGES)


# --- the aggregate posterior: where the encoded test set lives (vae_core.aggregate) ---


@st.cache_data(max_entries=16, show_spinner=False)
def slider_histograms(
    run_path: str,
    version: int,
    preset: str,
    directions: tuple[tuple[float, ...], ...] | None = None,
) -> dict[str, list]:
    """Slider ranges and q / prior histograms along each latent dim (or `directions`), as
    plain lists: computed once per snapshot version, preset and set of directions."""
    codes, _ = encoded(run_path, version)
    V = None if directions is None else np.asarray(directions)
    return aggregate.slider_histograms(codes.mu, codes.logvar, V, preset).to_lists()


@st.cache_data(max_entries=4, show_spinner="Mapping where the data lives…")
def hole_map(run_path: str, version: int) -> aggregate.HoleMap | None:
    """log q_agg - log p on the scatter's plane; None for a view with no linear plane."""
    codes, projection = encoded(run_path, version)
    plane = aggregate.plane_for(
        projection.method, codes.mu.shape[1], projection.components, projection.mean
    )
    return None if plane is None else aggregate.hole_map(codes.mu, codes.logvar, plane)


@st.cache_data(max_entries=4, show_spinner=False)
def manifold_threshold(run_path: str, version: int) -> float:
    codes, _ = encoded(run_path, version)
    return aggregate.manifold_threshold(codes.mu, codes.logvar)


def on_manifold(run_path: str, version: int, z: np.ndarray) -> bool:
    """Whether z is where the encoded test set's codes go (vae_core.aggregate.on_manifold)."""
    codes, _ = encoded(run_path, version)
    return aggregate.on_manifold(z, codes.mu, codes.logvar, manifold_threshold(run_path, version))


@st.cache_data(max_entries=4, show_spinner="Fitting a mixture to the codes…")
def posterior_gmm(run_path: str, version: int, k: int) -> aggregate.DiagonalGMM:
    """A k-component diagonal GMM fitted to one sample of q(z|x) per encoded test image."""
    codes, _ = encoded(run_path, version)
    return aggregate.fit_gmm(aggregate.sample_posterior(codes.mu, codes.logvar), k)


@st.cache_data(max_entries=8, show_spinner=False)
def aggregate_samples(
    run_path: str, version: int, n: int, temperature: float, seed: int, k: int
) -> np.ndarray:
    """n decoded draws from the GMM of the aggregate posterior, uint8 (n, H, W, C); with the
    same noise as prior_samples(run_path, version, n, temperature, seed)."""
    net = model(run_path, version)
    eps = latent.sample_prior(n, net.config.latent_dim, temperature, seed)  # (n, D) T * eps
    z = posterior_gmm(run_path, version, k).sample_from_noise(eps, seed)
    return latent.decode_latents(net, z)


@st.cache_resource(max_entries=2, show_spinner=False)  # bytes are immutable: no copy per hit
def published_page(
    run_path: str, version: int, _projection: Projection | None, method: str
) -> bytes:
    """The run's self-contained HTML page at this version (vae_core.publish), with the 2D view
    `_projection` (named by `method`, the cache key) or PCA when None."""
    from vae_core.publish import build_page

    net = model(run_path, version)
    page = build_page(
        RunDir(run_path), projection=_projection, model=(net, version), data=test_data(run_path)
    )
    return page.html
