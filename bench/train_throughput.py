"""Training throughput: vae_core's in-memory loop against a plain DataLoader loop.

    python bench/train_throughput.py [--model mlp|conv] [--epochs 3] [--threads N] [--seeds 3]

`mlp`: the pytorch/examples configuration (MLP 784-400-20, Adam 1e-3, batch 128) on
Fashion-MNIST, against pytorch/examples' own loop. `conv`: vae_core's conv VAE, against the
same model trained in a plain loop (torchvision dataset + DataLoader + ToTensor, Adam).
Prints samples/s of each, their ratio and the test loss (negative ELBO, nats per test
example) after the last epoch. Threads default to all cores, like the CLI.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from vae_core.config import ModelConfig, TrainConfig
from vae_core.models import VAE
from vae_core.objectives import elbo_terms
from vae_core.rundir import RunDir
from vae_core.train import train

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


class ReferenceVAE(nn.Module):
    """pytorch/examples vae/main.py, verbatim apart from names."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, 20)
        self.fc22 = nn.Linear(400, 20)
        self.fc3 = nn.Linear(20, 400)
        self.fc4 = nn.Linear(400, 784)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        return mu + torch.randn_like(std) * std

    def decode(self, z):
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z))))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, 784))
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


def reference_loss(recon_x, x, mu, logvar):
    bce = F.binary_cross_entropy(recon_x, x.view(-1, 784), reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld


def torchvision_root() -> Path:
    """Debian's flat .gz files laid out the way torchvision's FashionMNIST expects."""
    root = Path(tempfile.mkdtemp(prefix="fmnist-ref-"))
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for gz in DEBIAN_FASHION_MNIST.glob("*.gz"):
        with gzip.open(gz) as src, open(raw / gz.stem, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return root


def run_plain_loop(make_model, train_loss, test_loss_sum, epochs: int, seed: int) -> dict:
    """A plain loop: torchvision dataset + DataLoader + ToTensor, Adam 1e-3, batch 128.

    train_loss(model, x) is what Adam minimises; test_loss_sum(model, x) the batch's summed
    negative ELBO, averaged over the test set after the last epoch.
    """
    torch.manual_seed(seed)
    root = torchvision_root()
    tf = transforms.ToTensor()
    train_loader = DataLoader(
        datasets.FashionMNIST(root, train=True, transform=tf), batch_size=128, shuffle=True
    )
    test_loader = DataLoader(
        datasets.FashionMNIST(root, train=False, transform=tf), batch_size=128, shuffle=False
    )
    model = make_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    train_time, seen = 0.0, 0
    for _ in range(epochs):
        model.train()
        t0 = time.perf_counter()
        for data, _ in train_loader:
            optimizer.zero_grad()
            loss = train_loss(model, data)
            loss.backward()
            optimizer.step()
            seen += data.shape[0]
        train_time += time.perf_counter() - t0
        model.eval()
        with torch.no_grad():
            test_loss = sum(test_loss_sum(model, data).item() for data, _ in test_loader)
        test_loss /= len(test_loader.dataset)
    shutil.rmtree(root)
    return {"samples_per_s": seen / train_time, "test_loss": test_loss}


def run_reference(epochs: int, seed: int = 1) -> dict:
    """The pytorch/examples model and loss (summed over the batch) in the plain loop."""

    def loss(model: ReferenceVAE, data: torch.Tensor) -> torch.Tensor:
        recon, mu, logvar = model(data)
        return reference_loss(recon, data, mu, logvar)

    return run_plain_loop(ReferenceVAE, loss, loss, epochs, seed)


def run_reference_conv(epochs: int, seed: int = 1) -> dict:
    """vae_core's conv VAE in the plain loop: the same model, none of vae_core's loop."""
    return run_plain_loop(
        lambda: VAE(model_config("conv")),
        lambda model, data: elbo_terms(model, data).loss(),
        lambda model, data: -elbo_terms(model, data).elbo.sum(),
        epochs,
        seed,
    )


def model_config(architecture: str) -> ModelConfig:
    return ModelConfig(
        image_shape=(1, 28, 28), architecture=architecture, latent_dim=20, hidden_dim=400
    )


def run_vae_core(epochs: int, threads: int, seed: int = 1, architecture: str = "mlp") -> dict:
    config = model_config(architecture)
    train_config = TrainConfig(
        dataset="fashion-mnist",
        epochs=epochs,
        batch_size=128,
        lr=1e-3,
        seed=seed,
        num_threads=threads,
    )
    with tempfile.TemporaryDirectory() as tmp:
        summary = train(config, train_config, RunDir(Path(tmp) / "run"))
    return {"samples_per_s": summary["samples_per_s"], "test_loss": summary["test_loss"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", choices=("mlp", "conv"), default="mlp")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument(
        "--seeds", type=int, default=1, help="seeds 1..N; test loss differs by seed noise"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {"reference": [], "vae_core": []}
    for seed in range(1, args.seeds + 1):
        reference = run_reference if args.model == "mlp" else run_reference_conv
        results["reference"].append(reference(args.epochs, seed))
        results["vae_core"].append(run_vae_core(args.epochs, args.threads, seed, args.model))
    for name, label in [
        ("reference", "reference  (DataLoader + ToTensor)"),
        ("vae_core", "vae_core   (in-memory, run dir on) "),
    ]:
        speeds = [r["samples_per_s"] for r in results[name]]
        losses = [r["test_loss"] for r in results[name]]
        print(
            f"{label}: {statistics.median(speeds):9.0f} samples/s   test loss "
            f"{statistics.mean(losses):.1f} nats (seeds 1..{args.seeds}: "
            + ", ".join(f"{v:.1f}" for v in losses)
            + ")"
        )
    ratio = statistics.median(r["samples_per_s"] for r in results["vae_core"]) / statistics.median(
        r["samples_per_s"] for r in results["reference"]
    )
    print(f"{args.model}: speed-up {ratio:.2f}x over {args.epochs} epochs, {args.threads} threads")
    print(json.dumps({**results, "speedup": ratio}))


if __name__ == "__main__":
    main()
