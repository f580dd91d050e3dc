"""One process against N under torchrun (gloo on CPU, nccl on CUDA), same global batch.

    python bench/ddp.py [--dataset fashion-mnist] [--epochs 1] [--nproc 2]

Prints, for each world size, the training samples/s (global: every rank's share) and the
test loss (negative ELBO, nats) after the same number of steps. On a CPU the processes share
the cores: N processes get one thread each, the single process gets N threads.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def run(nproc: int, args: argparse.Namespace, run_dir: str) -> dict:
    train = ["train", "--dataset", args.dataset, "--epochs", str(args.epochs)]
    train += ["--model", args.model, "--batch-size", str(args.batch_size), "--run-dir", run_dir]
    if nproc == 1:
        cmd = [sys.executable, "-m", "vae_core", *train, "--threads", str(args.nproc)]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        cmd += ["--nproc-per-node", str(nproc), "-m", "vae_core", *train, "--threads", "1"]
    env = dict(os.environ, OMP_NUM_THREADS="1") if nproc > 1 else None
    t0 = time.monotonic()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    return summary | {"wall_s": time.monotonic() - t0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--model", default="mlp", choices=("mlp", "conv"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--nproc", type=int, default=2)
    args = parser.parse_args()
    print(f"{args.dataset}, {args.model}, {args.epochs} epoch(s), global batch {args.batch_size}")
    with tempfile.TemporaryDirectory() as tmp:
        for nproc in (1, args.nproc):
            s = run(nproc, args, f"{tmp}/n{nproc}")
            print(
                f"  {nproc} process(es): {s['samples_per_s']:8.0f} samples/s  "
                f"test loss {s['test_loss']:.2f} nats  ({s['step']} steps, {s['wall_s']:.1f} s)"
            )


if __name__ == "__main__":
    main()
