"""vae_core: the VAE library behind the explorer (no UI code here).

Models, objectives, data, the training loop and the run directory that connects
a background trainer to its readers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from vae_core.config import ModelConfig, TrainConfig

if TYPE_CHECKING:
    from vae_core.models import VAE, VAEOutput
    from vae_core.rundir import RunDir

__version__ = "0.1.0"

__all__ = ["VAE", "ModelConfig", "RunDir", "TrainConfig", "VAEOutput", "__version__"]

# Imported on first use (PEP 562), so `import vae_core.config` or `vae_core.rundir` does
# not import torch: the explorer draws its first page before any view needs a tensor.
_LAZY = {"VAE": "vae_core.models", "VAEOutput": "vae_core.models", "RunDir": "vae_core.rundir"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
