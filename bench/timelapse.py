"""Time to build a 60-frame x 2k-point time-lapse: encode, align + project, figure, JSON, GIF.

    python bench/timelapse.py

Uses 60 random-init MLP VAEs on 28 px shapes as stand-ins for the history points (the
same work per frame as real ones); prints seconds per stage.
"""

from __future__ import annotations

import time

import torch

from explorer import charts, images
from vae_core import latent
from vae_core.config import ModelConfig
from vae_core.data import load_dataset
from vae_core.models import VAE

FRAMES, POINTS, LATENT_DIM = 60, 2000, 10


def main() -> None:
    torch.set_num_threads(1)
    data = load_dataset("shapes", "test", None, image_size=28, num_samples=8 * POINTS)
    config = ModelConfig(image_shape=(1, 28, 28), latent_dim=LATENT_DIM)
    states = [VAE(config).state_dict() for _ in range(FRAMES)]
    t0 = time.perf_counter()
    codes = []
    for state in states:
        net = VAE(config)
        net.load_state_dict(state)
        codes.append(latent.encode_dataset(net, data, POINTS).mu)
    t1 = time.perf_counter()
    lapse = latent.time_lapse(codes)
    t2 = time.perf_counter()
    labels = data.labels[:POINTS].numpy()
    titles = [f"step {t} · test ELBO -100.0 nats" for t in range(FRAMES)]
    fig = charts.timelapse_figure(lapse.frames, labels, titles, [str(t) for t in range(FRAMES)])
    t3 = time.perf_counter()
    spec = fig.to_json()
    t4 = time.perf_counter()
    gif = images.scatter_gif(
        lapse.frames, labels, titles, charts.fixed_ranges(lapse.frames), charts.CLASS_COLORS
    )
    t5 = time.perf_counter()
    print(f"{FRAMES} frames x {len(labels)} points, D = {LATENT_DIM}")
    print(f"encode (60 models): {t1 - t0:.2f} s")
    print(f"procrustes + pca: {t2 - t1:.3f} s")
    print(f"figure: {t3 - t2:.3f} s; json: {t4 - t3:.3f} s ({len(spec) / 1e6:.1f} MB)")
    print(f"gif: {t5 - t4:.2f} s ({len(gif) / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
