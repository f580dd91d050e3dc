"""Command line: `python -m vae_core COMMAND ...`.

Commands: train, eval, sample, control, history, fork, gradvar, import, rm, rename, publish.
Each builds the same dataclasses the UI builds and calls the library. The last stdout line
of each is one JSON object, for scripts; bad input gives one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import shutil
import sys
from pathlib import Path
from typing import NoReturn

import torch

from vae_core import history
from vae_core.checkpoint import load_run_model
from vae_core.config import (
    BETA_SCHEDULES,
    MAX_HIDDEN_DIM,
    MAX_SEED,
    MAX_THREADS,
    PRECISIONS,
    ModelConfig,
    TrainConfig,
    build_configs,
)
from vae_core.control import check_control, require_trainer
from vae_core.data import DATASETS, DatasetUnavailable, ImageDataset, load_dataset
from vae_core.distributed import (
    RankLost,
    Terminated,
    close_ranks,
    init_ranks,
    launched_by_torchrun,
    raise_on_sigterm,
)
from vae_core.fork import fork_run
from vae_core.metrics_log import MetricsLog
from vae_core.process import refuse_inside_run
from vae_core.run_errors import RunLocked
from vae_core.rundir import RunDir
from vae_core.runfolders import remove_run, rename_run
from vae_core.safetensors_io import read_safetensors_metadata
from vae_core.settings import SETTING_NAMES, settings_in_force
from vae_core.train import RunInUse, TrainingDiverged, train


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports bad input in one line (`--help` still shows the usage)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog.removeprefix('python -m ')}: {message}\n")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def bounded_int(high: int, low: int = 1):
    """argparse type: an integer in low..high (the bound is said in the error)."""

    def parse(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be in {low}..{high}, got {text[:20]}")
        return value

    parse.__name__ = "integer"  # argparse names the type in "invalid integer value"
    return parse


def finite_float(text: str) -> float:
    """argparse type: a finite number (no nan / inf)."""
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


MAX_SAMPLES = 4096  # sample --n: a 64 x 64 grid
MAX_IWAE_K = 100_000  # eval --iwae-k: 20x the K of reported numbers (5000)
SEED = bounded_int(MAX_SEED, low=0)


def _add_dataset_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="fashion-mnist", choices=DATASETS)
    p.add_argument("--data-dir", default=None, help="where datasets are looked up / downloaded")
    p.add_argument("--folder", default=None, help="image folder for --dataset folder")
    p.add_argument(
        "--image-size", type=int, default=None, help="shapes / folder image size (28, 32, 64)"
    )
    p.add_argument(
        "--num-samples", type=positive_int, default=None, help="shapes: training images (20000)"
    )


def _dataset_options(args: argparse.Namespace) -> dict:
    """--folder / --image-size / --num-samples -> the dataset's options."""
    options = {}
    if args.folder is not None:
        options["path"] = args.folder
    if args.image_size is not None and args.dataset in ("shapes", "folder"):
        options["image_size"] = args.image_size
    if args.num_samples is not None:
        if args.dataset != "shapes":
            raise ValueError("--num-samples applies to --dataset shapes only")
        options["num_samples"] = args.num_samples
    return options


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a VAE into a new run directory (or --resume one)")
    p.add_argument("--run-dir", required=True, help="folder for config, metrics, checkpoints")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in RUN_DIR from its newest checkpoint; --epochs sets the new "
        "total, live settings (--beta, --lr, ...) and the machine's (--threads, --device, ...) "
        "may change, the rest must match the run",
    )
    p.add_argument(
        "--config",
        default=None,
        help="start from this configuration instead of the flags: a JSON file with 'model' and "
        "'train' sections (another run's config.json will do); '-' reads it from stdin",
    )
    # The launcher's (vae_core.process): the newest control.json sent before the launch.
    p.add_argument("--spent-control-seq", type=int, default=None, help=argparse.SUPPRESS)
    _add_dataset_args(p)
    p.add_argument("--model", default="mlp", choices=("mlp", "conv"))
    p.add_argument("--latent-dim", type=positive_int, default=20)
    p.add_argument("--hidden-dim", type=bounded_int(MAX_HIDDEN_DIM), default=400)
    p.add_argument("--epochs", type=positive_int, default=10)
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--lr", type=finite_float, default=None, help="Adam learning rate (1e-3)")
    p.add_argument("--beta", type=finite_float, default=None, help="KL weight (1)")
    p.add_argument(
        "--beta-schedule",
        choices=BETA_SCHEDULES,
        default="linear",
        help="KL weight over time: constant, linear warm-up, or cyclical (Fu et al. 2019)",
    )
    p.add_argument(
        "--warmup-steps",
        type=int,
        default=0,
        help="KL warm-up length in steps (cyclical: the period); 0 = off",
    )
    p.add_argument(
        "--free-bits", type=finite_float, default=0.0, help="free bits lambda, nats per dim"
    )
    p.add_argument("--seed", type=SEED, default=1)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument(
        "--threads", type=bounded_int(MAX_THREADS), default=None, help="torch CPU threads (all)"
    )
    p.add_argument(
        "--eval-batches", type=positive_int, default=None, help="cap test batches per eval"
    )
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="forward pass in fp32, or mixed bf16 / fp16 (fp16: CUDA only)",
    )
    p.add_argument(
        "--dist-timeout",
        type=finite_float,
        default=120.0,
        help="under torchrun: seconds a collective may wait before the run fails (rank lost)",
    )


def _add_eval_sample_control(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="test-set negative ELBO (and IWAE NLL) of a run")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run-dir", help="evaluate the run's newest weights (snapshot or checkpoint)")
    src.add_argument("--checkpoint", help="a .safetensors checkpoint inside a run directory")
    p.add_argument(
        "--iwae-k", type=bounded_int(MAX_IWAE_K), default=None, help="also log p(x), K samples"
    )
    p.add_argument("--iwae-n", type=positive_int, default=None, help="test images for IWAE (all)")
    p.add_argument(
        "--disentanglement",
        action="store_true",
        help="also MIG and the factors x dims mutual information (datasets with factors: shapes)",
    )
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))

    p = sub.add_parser("sample", help="decode samples from the prior into a PNG grid")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--n", type=bounded_int(MAX_SAMPLES), default=64)
    p.add_argument("--temperature", type=finite_float, default=1.0)
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--out", default="samples.png")

    p = sub.add_parser("control", help="pause / resume / stop a run, or set beta=.. lr=..")
    p.add_argument("run_dir")
    p.add_argument("command", choices=("pause", "resume", "stop", "set"))
    p.add_argument(
        "changes",
        nargs="*",
        help="for set: beta=4 lr=3e-4 free_bits=0.5 warmup_steps=2000 beta_schedule=cyclical",
    )


def _add_gradvar(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "gradvar",
        help="variance of the encoder's ELBO gradient: reparameterisation vs score function",
    )
    p.add_argument("--run-dir", required=True, help="uses the run's newest weights")
    p.add_argument(
        "--samples", type=positive_int, default=100, help="single-sample estimates (>= 2)"
    )
    p.add_argument("--batch-size", type=positive_int, default=64, help="first test images")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))


def configs_from_args(args: argparse.Namespace) -> tuple[ModelConfig, TrainConfig]:
    """CLI flags -> configs, through the one builder the app uses too."""
    options = _dataset_options(args)
    live = {k: v for k, v in (("lr", args.lr), ("beta", args.beta)) if v is not None}
    return build_configs(
        args.dataset,
        architecture=args.model,
        latent_dim=args.latent_dim,
        hidden_dim=args.hidden_dim,
        dataset_options=options,
        data_dir=args.data_dir,
        epochs=args.epochs,
        batch_size=args.batch_size,
        beta_schedule=args.beta_schedule,
        warmup_steps=args.warmup_steps,
        free_bits=args.free_bits,
        seed=args.seed,
        device=args.device,
        num_threads=args.threads,
        eval_batches=args.eval_batches,
        precision=args.precision,
        dist_timeout_s=args.dist_timeout,
        **live,
    )


# train --config: the flags it may stand beside (the rest of the configuration is the file's).
BESIDE_CONFIG = {"run_dir", "config", "spent_control_seq"}


def configs_from_file(args: argparse.Namespace) -> tuple[ModelConfig, TrainConfig]:
    """The configuration in --config FILE ('-': stdin), validated as config.json is."""
    beside = sorted(getattr(args, "given", set()) - BESIDE_CONFIG)
    if beside:
        flags = ", ".join(f"--{name.replace('_', '-')}" for name in beside)
        raise ValueError(f"--config holds the whole configuration; drop {flags}")
    source = "stdin" if args.config == "-" else args.config
    try:
        text = sys.stdin.read() if args.config == "-" else Path(args.config).read_text()
        data = json.loads(text)
        return ModelConfig.from_dict(data["model"]), TrainConfig.from_dict(data["train"])
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"--config {source} is not JSON: {e}") from None
    except (KeyError, TypeError) as e:
        raise ValueError(f"--config {source} needs 'model' and 'train' sections: {e}") from None


def _cmd_train(args: argparse.Namespace) -> dict:
    run = RunDir(args.run_dir)
    if run.path.exists() and not run.path.is_dir():
        raise ValueError(f"--run-dir {run.path} is a file; give a folder for the run")
    if args.resume:
        if args.config is not None:
            raise ValueError("--config starts a new run; --resume continues one: give one")
        (model_config, train_config), overrides = _resume_configs(args, run)
    else:
        refuse_inside_run(run.path)
        configs = configs_from_file(args) if args.config is not None else configs_from_args(args)
        (model_config, train_config), overrides = configs, {}
    raise_on_sigterm()
    ranks = init_ranks(train_config.device, train_config.dist_timeout_s)  # torchrun, or one
    # A progress bar only on a terminal: in trainer.log its redraws would grow without end.
    progress = sys.stderr.isatty() and ranks.is_main
    made = False
    try:
        if train_config.batch_size < ranks.world_size:  # refused before a folder is made
            raise ValueError(
                f"--batch-size {train_config.batch_size} is the global batch: it must be at "
                f"least the number of processes ({ranks.world_size})"
            )
        made = ranks.is_main and not args.resume and _make_folder(run.path)
        return train(
            model_config,
            train_config,
            run,
            resume=args.resume,
            progress=progress,
            live_overrides=overrides,
            ranks=ranks,
            spent_control_seq=args.spent_control_seq,
        )
    except BaseException as e:
        if made and not isinstance(e, RunLocked | RunInUse):
            _remove_if_unstarted(run)  # a refusal (data, precision...) leaves nothing behind
        raise
    finally:
        close_ranks(ranks)


# train --resume: what each flag may do. The ones fixed when a run starts are refused when
# they differ from the run's; the live settings apply as a live change; the rest replace
# the run's (the machine it runs on, and --epochs: the new total).
FIXED_ON_RESUME = {
    "dataset": lambda m, t: t.dataset,
    "folder": lambda m, t: t.dataset_options.get("path"),
    "image_size": lambda m, t: t.dataset_options.get("image_size"),
    "num_samples": lambda m, t: t.dataset_options.get("num_samples"),
    "model": lambda m, t: m.architecture,
    "latent_dim": lambda m, t: m.latent_dim,
    "hidden_dim": lambda m, t: m.hidden_dim,
    "batch_size": lambda m, t: t.batch_size,
    "seed": lambda m, t: t.seed,
}
LIVE_ON_RESUME = ("beta", "lr", "free_bits", "warmup_steps", "beta_schedule")
REPLACED_ON_RESUME = {
    "epochs": "epochs",
    "threads": "num_threads",
    "device": "device",
    "precision": "precision",
    "eval_batches": "eval_batches",
    "dist_timeout": "dist_timeout_s",
    "data_dir": "data_dir",
}


def _resume_configs(
    args: argparse.Namespace, run: RunDir
) -> tuple[tuple[ModelConfig, TrainConfig], dict]:
    """The run's configs with the flags given beside --resume applied, and the live
    overrides; ValueError, one line, for a flag that cannot change or an --epochs total
    the run has reached already."""
    model_config, train_config = run.read_config()
    given = getattr(args, "given", set())
    for name in sorted(given & FIXED_ON_RESUME.keys()):
        kept = FIXED_ON_RESUME[name](model_config, train_config)
        if getattr(args, name) != kept:
            may = ", ".join(
                f"--{n.replace('_', '-')}" for n in (*REPLACED_ON_RESUME, *LIVE_ON_RESUME)
            )
            raise ValueError(
                f"--{name.replace('_', '-')} cannot change on resume (this run's is {kept!r}); "
                f"with --resume only {may} may change"
            )
    replaced = {REPLACED_ON_RESUME[n]: getattr(args, n) for n in given & REPLACED_ON_RESUME.keys()}
    train_config = dataclasses.replace(train_config, **replaced)  # validated
    done = _epochs_done(run)
    # A plain resume of a complete run (the app's Resume) finishes at once, as before; an
    # --epochs total the run has reached already is a mistake worth a line.
    if "epochs" in given and done >= train_config.epochs:
        raise ValueError(
            f"{run.path} has trained {done} of its {train_config.epochs} epochs: give "
            f"--epochs above {done} (the new total) to train on"
        )
    overrides = {n: getattr(args, n) for n in LIVE_ON_RESUME if n in given}
    return (model_config, train_config), overrides


def _epochs_done(run: RunDir) -> int:
    """The epoch of the newest checkpoint (0 without one, or if it cannot be read: the
    trainer then says what is wrong with it)."""
    path = run.latest_checkpoint()
    if path is None:
        return 0
    try:
        return int(read_safetensors_metadata(path).get("epoch", 0))
    except (OSError, ValueError):
        return 0


def _make_folder(path: Path) -> bool:
    """Create the new run's folder; True if this call made it (and may remove it again)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir()
    except FileExistsError:
        return False
    return True


def _remove_if_unstarted(run: RunDir) -> None:
    """Remove a run folder this command made when training never began: no metrics, no
    snapshot, no checkpoint (a refused start leaves nothing behind)."""
    started = run.metrics_path.exists() or run.snapshot_path.exists() or run.checkpoints()
    if not started and not run.is_locked():
        shutil.rmtree(run.path, ignore_errors=True)


def _cmd_eval(args: argparse.Namespace) -> dict:
    from vae_core.objectives import log_likelihood_iwae
    from vae_core.train import evaluate

    run = RunDir(args.run_dir or Path(args.checkpoint).resolve().parent.parent)
    if args.disentanglement:
        _check_has_factors(run)  # refuse before any weights or data are loaded
    model = load_run_model(run, args.checkpoint, args.device)
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
    if args.disentanglement:
        out.update(_disentanglement(model, test))
    return out


def _check_has_factors(run: RunDir) -> None:
    from vae_core.data import dataset_info

    _, cfg = run.read_config()
    if not dataset_info(cfg.dataset, **cfg.dataset_options).factor_names:
        raise ValueError(
            f"--disentanglement needs a dataset with ground-truth factors (shapes); "
            f"this run's dataset {cfg.dataset!r} has none"
        )


def _disentanglement(model: torch.nn.Module, test: ImageDataset) -> dict:
    """MIG on the first test images, and I(z_d; v_k) in nats as factors x dims lists."""
    from vae_core.metrics import mig_on_shapes

    result = mig_on_shapes(model, test)
    return {
        "mig": result.mig,
        "mig_per_factor": result.per_factor,
        "mi_factors": list(test.info.factor_names),
        "mi_matrix": result.mutual_information.T.tolist(),  # (K, D)
    }


def _cmd_sample(args: argparse.Namespace) -> dict:
    from torchvision.utils import save_image

    model = load_run_model(RunDir(args.run_dir))
    torch.manual_seed(args.seed)
    z = args.temperature * torch.randn(args.n, model.config.latent_dim)  # (n, D)
    save_image(model.decode_image(z), args.out, nrow=math.ceil(math.sqrt(args.n)))
    return {"out": str(args.out), "n": args.n}


def _cmd_gradvar(args: argparse.Namespace) -> dict:
    from vae_core.gradvar import gradient_variance

    run = RunDir(args.run_dir)
    model = load_run_model(run, device=args.device)
    _, cfg = run.read_config()
    test = load_dataset(cfg.dataset, "test", cfg.data_dir, **cfg.dataset_options)
    x = test.batch(slice(0, min(args.batch_size, len(test))), next(model.parameters()).device)
    result = gradient_variance(model, x, args.samples, args.seed)
    return {"run_dir": str(run.path), **result.summary()}


def _cmd_control(args: argparse.Namespace) -> dict:
    run = RunDir(args.run_dir)
    if not run.exists():
        raise FileNotFoundError(f"{args.run_dir} is not a run directory (no config.json)")
    changes = {}
    for item in args.changes:
        name, _, value = item.partition("=")
        if not value:
            raise ValueError(f"expected NAME=VALUE such as beta=4, got {item!r}")
        try:
            changes[name] = float(value)
        except ValueError:
            changes[name] = value  # e.g. beta_schedule=cyclical; checked with the rest
    if args.command == "set" and not changes:
        raise ValueError("set needs at least one change, e.g. beta=4 lr=3e-4")
    command = None if args.command == "set" else args.command
    check_control(command, changes)  # bad values first, then whether anyone listens
    require_trainer(run)  # NoTrainer: nothing is written for a run no trainer runs
    in_force = _settings_in_force(run)  # what this command changes, for the answer
    return {**run.send_control(command, **changes), "in_force": in_force}


def _settings_in_force(run: RunDir) -> dict[str, float | int | str]:
    """The run's settings in force, as the sidebar and the health alarms see them: the
    config's, the trainer's control rows, then its heartbeat's beta / lr."""
    _, cfg = run.read_config()
    controls = MetricsLog(run.metrics_path).refresh().events_of("control")
    status = run.read_status()
    heartbeat = [{"beta": status.beta, "lr": status.lr}] if status is not None else []
    settings = settings_in_force(cfg, [*controls, *heartbeat])
    return {name: getattr(settings, name) for name in SETTING_NAMES}


def given_options(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """The options on the command line itself, not filled in from their defaults."""
    unset = object()
    blank = argparse.Namespace(**{a.dest: unset for a in parser._actions if a.dest != "help"})
    parsed = parser.parse_args(argv, blank)  # argparse fills in only what is still missing
    return {name for name, value in vars(parsed).items() if value is not unset}


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    if isinstance(error, OSError) and error.filename and str(error.filename) not in text:
        text = f"{text}: {error.filename}"
    return text


def _add_history_fork(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("history", help="list a run's history of weights as JSON lines")
    p.add_argument("--run-dir", required=True)

    p = sub.add_parser("fork", help="branch a run at a step into a new run, and train it")
    p.add_argument("--from", dest="parent", required=True, help="the run to fork")
    p.add_argument("--step", type=int, default=None, help="a history or checkpoint step (newest)")
    p.add_argument("--run-dir", required=True, help="the new run's folder (must not exist)")
    p.add_argument("--beta", type=finite_float, default=None)
    p.add_argument("--lr", type=finite_float, default=None)
    p.add_argument("--epochs", type=positive_int, default=None)
    p.add_argument("--warmup-steps", type=int, default=None)
    p.add_argument("--seed", type=SEED, default=None)
    # The launcher's (vae_core.process.start_fork): it made RUN_DIR, with trainer.log in it.
    p.add_argument("--into-claimed", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--spent-control-seq", type=int, default=None, help=argparse.SUPPRESS)


def _cmd_history(args: argparse.Namespace) -> dict:
    run = RunDir(args.run_dir)
    if not run.exists():
        raise FileNotFoundError(f"{args.run_dir} is not a run directory (no config.json)")
    points = history.list_points(run)
    for point in points:
        row = {"step": point.step, "epoch": point.epoch, "time": point.time}
        print(json.dumps(row | {"test_elbo": point.test_elbo, "path": str(point.path)}))
    return {"points": len(points), "disk_bytes": history.disk_bytes(run)}


def _cmd_fork(args: argparse.Namespace) -> dict:
    if launched_by_torchrun():  # every rank would race to build the same folder
        raise ValueError(
            "fork runs as one process: run it without torchrun, then continue the fork "
            "under torchrun with `train --resume --run-dir NEW`"
        )
    names = ("beta", "lr", "epochs", "warmup_steps", "seed")
    changes = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    parent = RunDir(args.parent)
    fork = fork_run(parent, args.run_dir, args.step, claimed=args.into_claimed, **changes)
    return train(
        *fork.read_config(),
        fork,
        resume=True,
        progress=sys.stderr.isatty(),
        spent_control_seq=args.spent_control_seq,
    )


def _add_import(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import",
        help="open your own VAE: check it on the dataset and write a run folder to explore "
        "(and fine-tune with train --resume)",
    )
    p.add_argument("--run-dir", required=True, help="the new run's folder (must not exist)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="MODULE:CLASS of an nn.Module with encode / decode")
    source.add_argument("--diffusers", help="a diffusers AutoencoderKL folder")
    kwargs = p.add_mutually_exclusive_group()
    kwargs.add_argument("--kwargs", default=None, help="the class's constructor kwargs (JSON)")
    kwargs.add_argument("--kwargs-file", default=None, help="the same, from a JSON file")
    p.add_argument("--weights", default=None, help="a safetensors state dict (default: fresh)")
    p.add_argument("--likelihood", choices=("bernoulli", "gaussian"), default=None)
    p.add_argument("--input-range", default=None, help="LOW,HIGH the model takes (0,1)")
    _add_dataset_args(p)
    p.add_argument("--epochs", type=positive_int, default=1, help="fine-tuning length")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--lr", type=finite_float, default=1e-4, help="fine-tuning learning rate")
    p.add_argument("--beta", type=finite_float, default=1.0)


def _cmd_import(args: argparse.Namespace) -> dict:
    from vae_core.import_run import card_from_flags, import_model

    card, likelihood = card_from_flags(
        model=args.model,
        diffusers=args.diffusers,
        kwargs_text=_read_kwargs(args),
        input_range=args.input_range,
        likelihood=args.likelihood,
    )
    train_config = TrainConfig(
        dataset=args.dataset,
        data_dir=args.data_dir,
        dataset_options=_dataset_options(args),
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        beta=args.beta,
        beta_schedule="constant",
    )
    weights = args.weights
    if args.diffusers is not None and weights is None:
        weights = Path(args.diffusers) / "diffusion_pytorch_model.safetensors"
    path, config = import_model(args.run_dir, card, train_config, likelihood, weights)
    card = config.card
    return {
        "run_dir": str(path),
        "latent_shape": list(card.latent_shape),
        "likelihood": config.likelihood,
        "trainable": not card.not_trainable,
        "weights_sha256": card.weights_sha256,
    }


def _read_kwargs(args: argparse.Namespace) -> str | None:
    if args.kwargs_file is None:
        return args.kwargs
    return Path(args.kwargs_file).read_text()


def _add_rm_rename(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rm", help="delete a run folder (refused while a trainer is live)")
    p.add_argument("run_dir")

    p = sub.add_parser(
        "rename", help="rename a run folder in place (refused while live); forks keep its link"
    )
    p.add_argument("run_dir")
    p.add_argument("new_name", help="the new folder name: letters, digits, '.', '_', '-'")


def _cmd_rm(args: argparse.Namespace) -> dict:
    run = RunDir(args.run_dir)
    remove_run(run)
    return {"removed": str(run.path)}


def _add_publish(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "publish", help="write one self-contained HTML page that explores the run, no server"
    )
    p.add_argument("--run-dir", required=True, help="a run with a snapshot")
    p.add_argument("--out", required=True, help="the HTML file to write")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    # 5000: vae_core.publish.MAX_POINTS, not imported here (it loads scipy for every command)
    p.add_argument("--points", type=bounded_int(5000), default=2000, help="test images (2000)")


def _cmd_publish(args: argparse.Namespace) -> dict:
    from vae_core.publish import publish

    return publish(args.run_dir, args.out, args.force, args.points)


def _cmd_rename(args: argparse.Namespace) -> dict:
    renamed = rename_run(RunDir(args.run_dir), args.new_name)
    return {"run_dir": str(renamed.path), "was": str(args.run_dir)}


COMMANDS = {
    "train": _cmd_train,
    "eval": _cmd_eval,
    "sample": _cmd_sample,
    "control": _cmd_control,
    "history": _cmd_history,
    "fork": _cmd_fork,
    "gradvar": _cmd_gradvar,
    "import": _cmd_import,
    "rm": _cmd_rm,
    "rename": _cmd_rename,
    "publish": _cmd_publish,
}


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m vae_core", description=__doc__)
    sub = parser.add_subparsers(dest="command_name", required=True)
    _add_train(sub)
    _add_eval_sample_control(sub)
    _add_history_fork(sub)
    _add_gradvar(sub)
    _add_import(sub)
    _add_rm_rename(sub)
    _add_publish(sub)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if args.command_name == "train":
        args.given = given_options(sub.choices["train"], argv[1:])
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        result = COMMANDS[args.command_name](args)
    except (TrainingDiverged, RankLost, Terminated) as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    except (ValueError, OSError, DatasetUnavailable, RunLocked) as e:
        # One line, no traceback: bad input, a damaged or locked run, a missing file.
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 2
    if result.get("rank", 0) == 0:  # under torchrun, one summary: rank 0's
        print(json.dumps(result, default=str))
    return 0
