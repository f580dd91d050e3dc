"""Mixed precision against fp32: test ELBO and samples/s after the same training.

    python bench/precision.py [--dataset fashion-mnist] [--epochs 2] [--precisions fp32 bf16]

The goal (issue 12): the test ELBO within 0.5 nats of fp32 on Fashion-MNIST. fp16 needs a
CUDA GPU. On a CPU without bf16 units, bf16 is emulated and slower than fp32.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--model", default="mlp", choices=("mlp", "conv"))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    args = parser.parse_args()
    print(f"{args.dataset}, {args.model}, {args.epochs} epoch(s), seed 1")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for precision in args.precisions:
            cmd = [sys.executable, "-m", "vae_core", "train", "--dataset", args.dataset]
            cmd += ["--model", args.model, "--epochs", str(args.epochs), "--precision", precision]
            cmd += ["--run-dir", f"{tmp}/{precision}"]
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            s = json.loads(done.stdout.strip().splitlines()[-1])
            results[precision] = s["test"]["elbo"]
            print(
                f"  {precision}: test ELBO {s['test']['elbo']:8.2f} nats   "
                f"{s['samples_per_s']:7.0f} samples/s"
            )
    for precision, elbo in results.items():
        if precision != "fp32" and "fp32" in results:
            print(f"  {precision} - fp32: {elbo - results['fp32']:+.2f} nats (goal: within 0.5)")


if __name__ == "__main__":
    main()
