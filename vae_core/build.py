"""The one constructor of a run's model, from its config: the built-in VAE, or your own VAE
rebuilt from its model card. Apart from vae_core.models so that the models import no user
code and vae_core has no import cycle (vae_core.imported subclasses the models' base).
"""

from __future__ import annotations

from vae_core.config import ModelConfig
from vae_core.models import VAE, LatentVariableModel


def build_model(config: ModelConfig) -> LatentVariableModel:
    """The model a config describes, with fresh weights: a built-in VAE, or a user's own
    VAE rebuilt from its model card (which imports the module it names)."""
    if config.card is not None:
        from vae_core.imported import build_imported  # imports user code: only when asked

        return build_imported(config)
    return VAE(config)
