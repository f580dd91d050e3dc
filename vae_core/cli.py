"""Command line: `python -m vae_core train | eval | sample | control ...`.

Each subcommand builds the same dataclasses the UI builds and calls the library.
The last stdout line of train / eval is one JSON object, for scripts.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path

import torch

from vae_core.config import ModelConfig, TrainConfig
from vae_core.data import DATASETS, DatasetUnavailable, dataset_info, load_dataset
from vae_core.models import VAE, pick_device
from vae_core.rundir import RunDir, UnsafeCheckpointError, load_checkpoint


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a VAE into a run directory")
    p.add_argument("--run-dir", required=True, help="folder for config, metrics, checkpoints")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue RUN_DIR from its newest checkpoint (other flags are ignored)",
    )
    p.add_argument("--dataset", default="fashion-mnist", choices=DATASETS)
    p.add_argument("--data-dir", default=None, help="where datasets are looked up / downloaded")
    p.add_argument("--folder", default=None, help="image folder for --dataset folder")
    p.add_argument(
        "--image-size", type=int, default=None, help="shapes / folder image size (28, 32, 64)"
    )
    p.add_argument("--model", default="mlp", choices=("mlp", "conv"))
    p.add_argument("--latent-dim", type=int, default=20)
    p.add_argument("--hidden-dim", type=int, default=400)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--beta", type=float, default=1.0)
    p.add_argument("--warmup-steps", type=int, default=0, help="linear KL warm-up length")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (cores - 1)")
    p.add_argument("--eval-batches", type=int, default=None, help="cap test batches per eval")


def _add_eval_sample_control(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="test-set negative ELBO (and IWAE NLL) of a run")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run-dir", help="evaluate the newest checkpoint of this run")
    src.add_argument("--checkpoint", help="a .safetensors checkpoint inside a run directory")
    p.add_argument("--iwae-k", type=int, default=None, help="also estimate log p(x) with K samples")
    p.add_argument("--iwae-n", type=int, default=None, help="test images for IWAE (all)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))

    p = sub.add_parser("sample", help="decode samples from the prior into a PNG grid")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="samples.png")

    p = sub.add_parser("control", help="pause / resume / stop a run, or set beta=.. lr=..")
    p.add_argument("run_dir")
    p.add_argument("command", choices=("pause", "resume", "stop", "set"))
    p.add_argument("changes", nargs="*", help="for set: beta=4 lr=3e-4")


def build_configs(args: argparse.Namespace) -> tuple[ModelConfig, TrainConfig]:
    """CLI flags -> the same dataclasses the UI builds."""
    options = {}
    if args.folder is not None:
        options["path"] = args.folder
    if args.image_size is not None and args.dataset in ("shapes", "folder"):
        options["image_size"] = args.image_size
    info = dataset_info(args.dataset, **options)
    model_config = ModelConfig(
        image_shape=info.image_shape,
        architecture=args.model,
        latent_dim=args.latent_dim,
        hidden_dim=args.hidden_dim,
        likelihood=info.likelihood,
    )
    train_config = TrainConfig(
        dataset=args.dataset,
        data_dir=args.data_dir,
        dataset_options=options,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        beta=args.beta,
        warmup_steps=args.warmup_steps,
        seed=args.seed,
        device=args.device,
        num_threads=args.threads,
        eval_batches=args.eval_batches,
    )
    return model_config, train_config


def load_model(run: RunDir, checkpoint: str | Path | None = None, device: str = "cpu") -> VAE:
    """A VAE with the run's config and the given (default: newest) checkpoint's weights."""
    model_config, _ = run.read_config()
    path = checkpoint or run.latest_checkpoint()
    if path is None:
        raise FileNotFoundError(f"{run.path} has no checkpoint yet")
    model = VAE(model_config)
    model.load_state_dict(load_checkpoint(path).model_state)
    return model.to(pick_device(device)).eval()


def _cmd_train(args: argparse.Namespace) -> dict:
    from vae_core.train import train

    run = RunDir(args.run_dir)
    if args.resume:
        model_config, train_config = run.read_config()
    else:
        model_config, train_config = build_configs(args)
    try:
        return train(model_config, train_config, run, resume=args.resume, progress=True)
    except Exception as e:
        # Readers (the UI) learn why the trainer died from status.json, not from a traceback.
        run.write_status("failed", reason=f"{type(e).__name__}: {e}")
        raise


def _cmd_eval(args: argparse.Namespace) -> dict:
    from vae_core.objectives import log_likelihood_iwae
    from vae_core.train import evaluate

    run = RunDir(args.run_dir or Path(args.checkpoint).resolve().parent.parent)
    model = load_model(run, args.checkpoint, args.device)
    device = next(model.parameters()).device
    _, cfg = run.read_config()
    test = load_dataset(cfg.dataset, "test", cfg.data_dir, **cfg.dataset_options)
    result = evaluate(model, test, cfg.batch_size, device, None)
    out = {"test_loss": -result["elbo"], **result}
    out.pop("kl_per_dim")
    if args.iwae_k:
        n = min(args.iwae_n or len(test), len(test))
        total = 0.0
        for start in range(0, n, 100):
            x = test.batch(slice(start, min(start + 100, n)), device)
            total += log_likelihood_iwae(model, x, args.iwae_k).sum().item()
        out.update(nll_iwae=-total / n, iwae_k=args.iwae_k, iwae_n=n)
    return out


def _cmd_sample(args: argparse.Namespace) -> dict:
    from torchvision.utils import save_image

    model = load_model(RunDir(args.run_dir))
    torch.manual_seed(args.seed)
    z = args.temperature * torch.randn(args.n, model.config.latent_dim)  # (n, D)
    save_image(model.decode_image(z), args.out, nrow=math.ceil(math.sqrt(args.n)))
    return {"out": str(args.out), "n": args.n}


def _cmd_control(args: argparse.Namespace) -> dict:
    run = RunDir(args.run_dir)
    if not run.exists():
        raise FileNotFoundError(f"{args.run_dir} is not a run directory (no config.json)")
    changes = {}
    for item in args.changes:
        name, _, value = item.partition("=")
        try:
            changes[name] = float(value)
        except ValueError:
            raise ValueError(f"expected NAME=NUMBER such as beta=4, got {item!r}") from None
    if args.command == "set" and not changes:
        raise ValueError("set needs at least one change, e.g. beta=4 lr=3e-4")
    command = None if args.command == "set" else args.command
    return run.send_control(command, **changes)


COMMANDS = {"train": _cmd_train, "eval": _cmd_eval, "sample": _cmd_sample, "control": _cmd_control}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vae_core", description=__doc__)
    sub = parser.add_subparsers(dest="command_name", required=True)
    _add_train(sub)
    _add_eval_sample_control(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        result = COMMANDS[args.command_name](args)
    except (ValueError, FileNotFoundError, DatasetUnavailable, UnsafeCheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result, default=str))
    return 0
