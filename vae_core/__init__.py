"""vae_core: the VAE library behind the explorer (no UI code here).

Models, objectives, data, the training loop and the run directory that connects
a background trainer to its readers.
"""

from vae_core.config import ModelConfig, TrainConfig
from vae_core.models import VAE, VAEOutput
from vae_core.rundir import RunDir

__version__ = "0.1.0"

__all__ = ["VAE", "ModelConfig", "RunDir", "TrainConfig", "VAEOutput", "__version__"]
