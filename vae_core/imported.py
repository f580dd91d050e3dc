"""Your own VAE: any PyTorch VAE behind the contract every view and the trainer rely on.

A model card (config.json) names the class (`module:Class` + JSON kwargs) or an adapter
(diffusers' AutoencoderKL). `ImportedVAE` wraps the user's module so that the rest of
vae_core sees what it sees in the built-in VAE: `encode(x)` with x in [0, 1] gives flat
(mu, logvar) of shape (B, D), `decode(z)` takes flat z and gives logits (bernoulli) or means
on the [0, 1] pixel scale (gaussian). A spatial latent (C, H, W) is flattened to D = C*H*W.

Importing a class runs its module's code: the CLI, or an app served on loopback only.
Weights are read from safetensors only; a pickle is refused, never loaded. Making a run of
it (the dry run, the folder) is `vae_core.import_run`.
"""

from __future__ import annotations

import hashlib
import importlib
import math
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vae_core.config import (
    ModelCard,
    ModelConfig,
    ModelImportError,
)
from vae_core.models import LatentVariableModel

DIFFUSERS = "diffusers"  # the adapter for a diffusers AutoencoderKL folder
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".pkl", ".pickle")
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


# ---- small helpers, shared with vae_core.import_run ----


def _few(items: list[str], n: int = 3) -> str:
    more = f" and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
