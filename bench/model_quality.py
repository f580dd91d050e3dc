"""Test ELBO and IWAE log-likelihood of the MLP and conv VAEs on Fashion-MNIST.

    python bench/model_quality.py [--epochs 10] [--iwae-k 5000] [--iwae-n 1000]

Trains each model with the CLI's defaults (latent 20, Adam 1e-3, batch 128, seed 1),
then prints the test negative ELBO and the IWAE estimate of -log p(x) (nats per image;
IWAE over the first --iwae-n test images, Burda et al. 2015, with the ELBO on those
same images beside it, so the two bounds compare like for like).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

from vae_core.checkpoint import snapshot_model
from vae_core.config import ModelConfig, TrainConfig
from vae_core.data import load_dataset
from vae_core.objectives import elbo_terms, log_likelihood_iwae
from vae_core.rundir import RunDir
from vae_core.train import train


def measure(architecture: str, epochs: int, k: int, n: int, threads: int) -> dict:
    model_config = ModelConfig(image_shape=(1, 28, 28), architecture=architecture, latent_dim=20)
    train_config = TrainConfig(dataset="fashion-mnist", epochs=epochs, seed=1, num_threads=threads)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        summary = train(model_config, train_config, RunDir(tmp))
        train_s = time.perf_counter() - t0
        model, _ = snapshot_model(RunDir(tmp))
    test = load_dataset("fashion-mnist", "test")
    torch.manual_seed(0)
    t0 = time.perf_counter()
    log_px, elbo = [], []
    with torch.no_grad():
        for start in range(0, n, 50):
            x = test.batch(slice(start, min(start + 50, n)))
            log_px.append(log_likelihood_iwae(model, x, k))
            elbo.append(elbo_terms(model.eval(), x).elbo)  # same images: the bound's gap
    return {
        "model": architecture,
        "epochs": epochs,
        "test_neg_elbo": summary["test_loss"],
        "subset_neg_elbo": -torch.cat(elbo).mean().item(),
        "nll_iwae": -torch.cat(log_px).mean().item(),
        "iwae_k": k,
        "iwae_n": n,
        "samples_per_s": summary["samples_per_s"],
        "train_s": train_s,
        "iwae_s": time.perf_counter() - t0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--iwae-k", type=int, default=5000)
    parser.add_argument("--iwae-n", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--models", nargs="+", default=["mlp", "conv"])
    args = parser.parse_args()
    for architecture in args.models:
        r = measure(architecture, args.epochs, args.iwae_k, args.iwae_n, args.threads)
        print(
            f"{architecture:4s} {args.epochs} epochs: test -ELBO {r['test_neg_elbo']:.1f} nats; "
            f"first {r['iwae_n']} test images: -ELBO {r['subset_neg_elbo']:.1f}, "
            f"IWAE(k={args.iwae_k}) -log p(x) {r['nll_iwae']:.1f} nats; "
            f"{r['samples_per_s']:.0f} samples/s"
        )
        print(json.dumps(r))


if __name__ == "__main__":
    main()
