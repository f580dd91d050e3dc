"""Make a run of your own VAE: `import_model` checks the contract on one batch of the chosen
dataset before it writes anything (the dry run), then writes a run folder that the trainer can
resume (fine-tune) and the app can open. The wrapper itself is `vae_core.imported`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
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
from vae_core.imported import (
    DIFFUSERS,
    ImportedVAE,
    _first_line,
    build_inner,
    decoded_tensor,
    gaussian_params,
    load_inner_weights,
    read_weights,
)

PROBE_IMAGES = 8  # the dry run's batch: enough to catch a batch-mixing encoder


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
