"""Your own VAE: any PyTorch VAE behind the contract every view and the trainer rely on.

A model card (config.json) names the class (`module:Class` + JSON kwargs) or an adapter
(diffusers' AutoencoderKL). `ImportedVAE` wraps the user's module so that the rest of
vae_core sees what it sees in the built-in VAE: `encode(x)` with x in [0, 1] gives flat
(mu, logvar) of shape (B, D), `decode(z)` takes flat z and gives logits (bernoulli) or means
on the [0, 1] pixel scale (gaussian). A spatial latent (C, H, W) is flattened to D = C*H*W.

`import_model` checks the contract on one batch of the chosen dataset before it writes
anything, then writes a run folder that the trainer can resume (fine-tune) and the app can
open. Importing a class runs its module's code: the CLI, or an app served on loopback only.
Weights are read from safetensors only; a pickle is refused, never loaded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import math
import shutil
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vae_core.config import (
    IMPORTED,
    MAX_IMPORTED_LATENT,
    ModelCard,
    ModelConfig,
    ModelImportError,
    TrainConfig,
)
from vae_core.models import LatentVariableModel

DIFFUSERS = "diffusers"  # the adapter for a diffusers AutoencoderKL folder
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".pkl", ".pickle")
PROBE_IMAGES = 8  # the dry run's batch: enough to catch a batch-mixing encoder
CONVERT_HINT = (
    "convert it once with: from safetensors.torch import save_file; "
    "save_file(model.state_dict(), 'model.safetensors')"
)


# ---- rebuilding the user's module from its card ----


def load_class(source: str) -> type[nn.Module]:
    """`module:Class` -> the class, imported from the current directory / PYTHONPATH."""
    module_name, _, class_name = source.partition(":")
    if not module_name or not class_name:
        raise ModelImportError(
            f"--model must be MODULE:CLASS such as mypkg.vae:MyVAE, got {source!r}"
        )
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, "")  # `python -m` puts the cwd first; a script runner may not
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ModelImportError(
            f"cannot import module {module_name!r} ({e}); run from the folder that holds it "
            "or add that folder to PYTHONPATH"
        ) from None
    cls = getattr(module, class_name, None)
    # Only an nn.Module subclass is ever called: a card naming any other callable (say
    # subprocess:Popen) is refused before it can run.
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        found = "nothing" if cls is None else type(cls).__name__
        raise ModelImportError(
            f"{module_name}.{class_name} is not a torch.nn.Module class (found {found}); "
            "name the class of your VAE"
        )
    return cls


class DiffusersAutoencoder(nn.Module):
    """diffusers' AutoencoderKL behind the contract: encode -> its latent distribution,
    decode -> its `.sample`. Inputs in [-1, 1] (set by the card's input range)."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        try:
            from diffusers import AutoencoderKL
        except ImportError:
            raise ModelImportError(
                "the diffusers adapter needs the diffusers package: pip install -e .[diffusers]"
            ) from None
        self.vae = AutoencoderKL.from_config(config)

    def encode(self, x: torch.Tensor) -> Any:
        return self.vae.encode(x).latent_dist  # DiagonalGaussianDistribution

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(z).sample


def build_inner(card: ModelCard) -> nn.Module:
    """The user's module with fresh weights, as the card describes it."""
    if card.source == DIFFUSERS:
        return DiffusersAutoencoder(card.kwargs)
    cls = load_class(card.source)
    try:
        return cls(**card.kwargs)
    except Exception as e:  # the user's constructor may raise anything
        raise ModelImportError(
            f"{card.source} does not construct with kwargs {card.kwargs}: "
            f"{type(e).__name__}: {_first_line(e)}"
        ) from None


# ---- the wrapper every view talks to ----


def gaussian_params(out: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """What `encode` returned -> (mu, logvar): a pair, a torch Normal, diffusers' latent
    distribution (or an output holding one in `.latent_dist`)."""
    out = getattr(out, "latent_dist", out)
    if isinstance(out, torch.distributions.Independent):
        out = out.base_dist
    if isinstance(out, torch.distributions.Normal):
        return out.loc, 2 * torch.log(out.scale)
    if isinstance(getattr(out, "logvar", None), torch.Tensor):
        return out.mean, out.logvar  # diffusers' DiagonalGaussianDistribution
    if isinstance(out, tuple | list) and len(out) == 2 and all(torch.is_tensor(t) for t in out):
        return out[0], out[1]
    raise ModelImportError(
        f"encode(x) returned {type(out).__name__}; it must return (mu, logvar) tensors or a "
        "torch.distributions.Normal"
    )


def decoded_tensor(out: Any) -> torch.Tensor:
    """What `decode` returned -> one tensor: a tensor, an output's `.sample`, or a 1-tuple."""
    out = getattr(out, "sample", out)
    if isinstance(out, tuple | list) and len(out) == 1:
        out = out[0]
    if not torch.is_tensor(out):
        raise ModelImportError(
            f"decode(z) returned {type(out).__name__}; it must return a tensor of images"
        )
    return out


class ImportedVAE(LatentVariableModel):
    """A user's VAE (`inner`) seen through the built-in VAE's interface."""

    def __init__(self, config: ModelConfig, inner: nn.Module) -> None:
        super().__init__()
        assert config.card is not None
        self.config = config
        self.inner = inner
        self.latent_shape = config.card.latent_shape
        self.low, self.high = config.card.input_range
        self.scale = config.card.scaling_factor
        if config.likelihood == "gaussian":
            # As in the built-in VAE: one learned observation noise scale (sigma-VAE).
            self.log_scale = nn.Parameter(torch.zeros(()))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, C, H, W) in [0, 1] -> mu, logvar: (B, D), D = the latent flattened."""
        mu, logvar = gaussian_params(self.inner.encode(self.low + (self.high - self.low) * x))
        # z seen here = scale * z of the model: mu scales, the variance by scale^2.
        mu, logvar = self.scale * mu, logvar + 2 * math.log(self.scale)
        return mu.flatten(1), logvar.flatten(1)  # (B, D)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, D) -> logits or [0, 1]-scale means: (B, C, H, W)."""
        z = z.reshape(-1, *self.latent_shape) / self.scale  # (B, *latent_shape)
        decoded = decoded_tensor(self.inner.decode(z))
        if self.config.likelihood == "gaussian":  # means, back from the model's input range
            decoded = (decoded - self.low) / (self.high - self.low)
        return decoded


def build_imported(config: ModelConfig) -> ImportedVAE:
    """An ImportedVAE with fresh weights (the caller loads the run's)."""
    assert config.card is not None
    return ImportedVAE(config, build_inner(config.card))


# ---- weights: safetensors only ----


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], str]:
    """(state dict, SHA-256 of the file) from a safetensors file; a pickle is refused."""
    from vae_core.safetensors_io import UnsafeCheckpointError, load_safetensors

    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise ModelImportError(
            f"{path.name} is a pickle ({path.suffix}), which is never loaded here (it can run "
            f"code); {CONVERT_HINT}"
        )
    if not path.is_file():
        raise ModelImportError(f"weights file {path} does not exist")
    try:
        state, _ = load_safetensors(path)
    except UnsafeCheckpointError as e:
        raise ModelImportError(f"{path.name}: {_first_line(e)}; {CONVERT_HINT}") from None
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    bad = [k for k, v in state.items() if v.is_floating_point() and not v.isfinite().all()]
    if bad:
        raise ModelImportError(f"{path.name} holds NaN or inf values in {bad[:3]}; refused")
    return state, digest


def load_inner_weights(inner: nn.Module, state: dict[str, torch.Tensor], name: str) -> None:
    """Load `state` into `inner` (or a diffusers adapter's `vae`), strictly; one line if the
    keys or shapes differ."""
    target = inner.vae if isinstance(inner, DiffusersAutoencoder) else inner
    expected = target.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"missing {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected {_few(unexpected)}")
    if wrong:
        problems.append(f"wrong shape {_few(wrong)}")
    if problems:
        raise ModelImportError(f"the weights in {name} do not fit the model: {'; '.join(problems)}")
    target.load_state_dict(state)


# ---- the dry run: the contract, checked on one batch ----


@dataclasses.dataclass(frozen=True)
class Probe:
    latent_shape: tuple[int, ...]
    not_trainable: str  # why one training step failed; "" when it worked


def probe(inner: nn.Module, card: ModelCard, likelihood: str, x: torch.Tensor) -> Probe:
    """Run encode / decode / one backward pass on `x` ((B, C, H, W) in [0, 1]); raises
    ModelImportError naming the first broken part of the contract."""
    from vae_core.objectives import elbo_terms

    low, high = card.input_range
    B = x.shape[0]
    inner.eval()
    with torch.no_grad():
        try:
            mu, logvar = gaussian_params(inner.encode(low + (high - low) * x))
        except ModelImportError:
            raise
        except Exception as e:
            raise _call_failed("encode", x, e) from None
        if mu.shape != logvar.shape or mu.ndim not in (2, 4) or mu.shape[0] != B:
            raise ModelImportError(
                f"encode(x) for x {tuple(x.shape)} gave mu {tuple(mu.shape)} and logvar "
                f"{tuple(logvar.shape)}; both must be (B, D) or (B, C, H, W) with B = {B}"
            )
        latent_shape = tuple(mu.shape[1:])
        if math.prod(latent_shape) > MAX_IMPORTED_LATENT:
            raise ModelImportError(
                f"the latent {latent_shape} has {math.prod(latent_shape):,} values; at most "
                f"{MAX_IMPORTED_LATENT:,} are supported"
            )
        if not (mu.isfinite().all() and logvar.isfinite().all()):
            raise ModelImportError("encode(x) gave NaN or inf on the first test images")
        try:
            decoded = decoded_tensor(inner.decode(mu))
        except ModelImportError:
            raise
        except Exception as e:
            raise _call_failed("decode", mu, e) from None
    if tuple(decoded.shape) != tuple(x.shape):
        raise ModelImportError(
            f"decode(z) gave {tuple(decoded.shape)} but the dataset's images are "
            f"{tuple(x.shape)}; pick the dataset (and --image-size) the model was built for"
        )
    if not decoded.isfinite().all():
        raise ModelImportError("decode(z) gave NaN or inf at the first test images' codes")
    if likelihood == "gaussian":
        _check_range(decoded, low, high)
    config = _model_config(card, likelihood, tuple(x.shape[1:]), latent_shape)
    return Probe(latent_shape, _training_problem(ImportedVAE(config, inner), x, elbo_terms))


def _check_range(decoded: torch.Tensor, low: float, high: float) -> None:
    """Gaussian means should lie mostly in the input range; else the range is wrong."""
    pixels = (decoded - low) / (high - low)  # the [0, 1] scale of the data
    inside = ((pixels > -0.5) & (pixels < 1.5)).float().mean().item()
    if inside < 0.5:
        raise ModelImportError(
            f"decode(z) gives means from {decoded.min().item():.3g} to {decoded.max().item():.3g}, "
            f"outside the input range {low:g},{high:g}; give --input-range the range the model "
            "was trained on"
        )


def _training_problem(model: ImportedVAE, x: torch.Tensor, elbo_terms: Any) -> str:
    """'' if one ELBO gradient step reaches the weights; else why the model stays explore-only."""
    if not any(p.requires_grad for p in model.inner.parameters()):
        return "every weight is frozen (requires_grad is False)"
    model.train()
    try:
        elbo_terms(model, x).loss().backward()
    except Exception as e:
        return f"a training step fails: {type(e).__name__}: {_first_line(e)}"
    finally:
        model.eval()
    grads = [p.grad for p in model.inner.parameters() if p.grad is not None]
    model.zero_grad(set_to_none=True)
    if not grads:
        return "no weight of the model receives a gradient from the ELBO"
    if not all(g.isfinite().all() for g in grads):
        return "the ELBO's gradient is NaN or inf at the imported weights"
    return ""


def _model_config(
    card: ModelCard, likelihood: str, image_shape: tuple[int, ...], latent_shape: tuple[int, ...]
) -> ModelConfig:
    card = dataclasses.replace(card, latent_shape=latent_shape)
    return ModelConfig(
        image_shape=image_shape,  # type: ignore[arg-type]
        architecture=IMPORTED,
        latent_dim=math.prod(latent_shape),
        likelihood=likelihood,  # type: ignore[arg-type]
        card=card,
    )


# ---- the import itself ----


def card_from_flags(
    model: str | None,
    diffusers: str | None,
    kwargs_text: str | None = None,
    input_range: str | None = None,
    likelihood: str | None = None,
) -> tuple[ModelCard, str]:
    """The CLI's / form's choices -> (card without latent shape, likelihood)."""
    if diffusers is not None:
        config = _diffusers_config(Path(diffusers))
        card = ModelCard(
            source=DIFFUSERS,
            kwargs=config,
            input_range=_parse_range(input_range or "-1,1"),
            latent_shape=(1,),  # found by the dry run
            scaling_factor=float(config.get("scaling_factor") or 1.0),
        )
        return card, likelihood or "gaussian"
    try:
        kwargs = json.loads(kwargs_text) if kwargs_text else {}
    except json.JSONDecodeError as e:
        raise ModelImportError(
            f"--kwargs is not valid JSON ({e}); e.g. '{{\"zdim\": 16}}'"
        ) from None
    if not isinstance(kwargs, dict):
        raise ModelImportError(
            f'--kwargs must be a JSON object such as {{"zdim": 16}}, got {kwargs_text}'
        )
    card = ModelCard(
        source=model or "",
        kwargs=kwargs,
        input_range=_parse_range(input_range or "0,1"),
        latent_shape=(1,),
    )
    return card, likelihood or "bernoulli"


def _parse_range(text: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise ModelImportError(
            f"--input-range must be LOW,HIGH such as -1,1, got {text!r}"
        ) from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ModelImportError(f"--input-range needs finite LOW < HIGH, got {text!r}")
    return low, high


def _diffusers_config(folder: Path) -> dict[str, Any]:
    """The AutoencoderKL's config.json (its constructor arguments)."""
    path = folder / "config.json"
    if not path.is_file():
        raise ModelImportError(
            f"{folder} is not a diffusers AutoencoderKL folder (no config.json); give the "
            "folder that holds config.json and diffusion_pytorch_model.safetensors"
        )
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise ModelImportError(f"{path} is not valid JSON ({e})") from None
    if (
        not isinstance(config, dict)
        or config.get("_class_name", "AutoencoderKL") != "AutoencoderKL"
    ):
        raise ModelImportError(f"{path} does not describe an AutoencoderKL")
    return config


def import_model(
    run_dir: str | Path,
    card: ModelCard,
    train_config: TrainConfig,
    likelihood: str,
    weights: str | Path | None = None,
) -> tuple[Path, ModelConfig]:
    """Check a user's VAE on one batch of `train_config`'s dataset, then write a new run
    folder holding its card and weights (a step-0 checkpoint and a snapshot). Nothing is
    written when a check fails (ModelImportError, ValueError, FileNotFoundError)."""
    from vae_core.data import load_dataset
    from vae_core.process import claim_run_dir

    inner = build_inner(card)
    if weights is not None:
        state, digest = read_weights(weights)
        load_inner_weights(inner, state, Path(weights).name)
        card = dataclasses.replace(card, weights_sha256=digest)
    cfg = train_config
    test = load_dataset(cfg.dataset, "test", cfg.data_dir, **cfg.dataset_options)
    x = test.batch(slice(0, min(PROBE_IMAGES, len(test))))  # (B, C, H, W) in [0, 1]
    found = probe(inner, card, likelihood, x)
    card = dataclasses.replace(card, not_trainable=found.not_trainable)
    config = _model_config(card, likelihood, tuple(x.shape[1:]), found.latent_shape)
    model = ImportedVAE(config, inner).eval()
    run = claim_run_dir(run_dir)  # RunFolderTaken if it exists: never reused
    try:
        _write_run(run, model, cfg)
    except BaseException:
        shutil.rmtree(run.path, ignore_errors=True)  # all or nothing
        raise
    return run.path, config


def _write_run(run: Any, model: ImportedVAE, cfg: TrainConfig) -> None:
    """What a trainer leaves behind at step 0, written under the run's lock."""
    from vae_core.checkpoint import save_start_checkpoint
    from vae_core.status import IMPORTED_REASON

    with run.acquire_lock():
        run.write_config(model.config, cfg)
        save_start_checkpoint(run, model, cfg, step=0, epoch=0)
        run.publish_snapshot(model, 0)
        run.write_status("finished", step=0, reason=IMPORTED_REASON)
    run.close()


def _call_failed(name: str, arg: torch.Tensor, e: Exception) -> ModelImportError:
    return ModelImportError(
        f"{name}() failed on a batch of shape {tuple(arg.shape)}: {type(e).__name__}: "
        f"{_first_line(e)}"
    )


def _few(items: list[str], n: int = 3) -> str:
    more = f" and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
