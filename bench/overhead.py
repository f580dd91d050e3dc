"""Cost of publishing: a full `train()` run (metrics, snapshots, status, control polling,
checkpoints) against a bare in-memory loop with the same model, data and batches.

    python bench/overhead.py [--dataset fashion-mnist] [--epochs 2] [--threads 1]

Goal: <= 5% fewer samples/s with the run directory on.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from vae_core.config import ModelConfig, TrainConfig
from vae_core.data import load_dataset
from vae_core.models import VAE
from vae_core.objectives import elbo_terms
from vae_core.rundir import RunDir
from vae_core.train import train


def bare_loop(model_config: ModelConfig, train_config: TrainConfig) -> float:
    """forward, loss, backward, step; nothing else. Returns samples/s."""
    torch.manual_seed(train_config.seed)
    data = load_dataset(train_config.dataset, "train", **train_config.dataset_options)
    model = VAE(model_config)
    optimizer = torch.optim.Adam(model.parameters(), lr=train_config.lr)
    B = train_config.batch_size
    seen, elapsed = 0, 0.0
    for _ in range(train_config.epochs):
        order = torch.randperm(len(data))
        t0 = time.perf_counter()
        for start in range(0, len(data), B):
            x = data.batch(order[start : start + B])
            loss = elbo_terms(model, x).loss(train_config.beta)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen += x.shape[0]
        elapsed += time.perf_counter() - t0
    return seen / elapsed


def full_run(model_config: ModelConfig, train_config: TrainConfig) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        return train(model_config, train_config, RunDir(tmp))["samples_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model_config = ModelConfig(image_shape=(1, 28, 28), latent_dim=20, hidden_dim=400)
    train_config = TrainConfig(dataset=args.dataset, epochs=args.epochs, num_threads=args.threads)
    bare, full = [], []
    for _ in range(args.repeats):  # interleaved, so drift in machine speed hits both
        bare.append(bare_loop(model_config, train_config))
        full.append(full_run(model_config, train_config))
    best_bare, best_full = max(bare), max(full)
    print(f"bare loop          : {best_bare:8.0f} samples/s  (runs: {[round(b) for b in bare]})")
    print(f"train() + run dir  : {best_full:8.0f} samples/s  (runs: {[round(f) for f in full]})")
    print(
        f"overhead           : {100 * (1 - best_full / best_bare):.1f}%  "
        f"({args.threads} thread(s), {args.epochs} epochs, best of {args.repeats})"
    )


if __name__ == "__main__":
    main()
