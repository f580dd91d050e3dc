"""Configuration dataclasses for the model and the training run.

Both validate themselves on construction and round-trip through JSON, which is
how they travel from the UI or the CLI to the trainer (`config.json` in a run).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

Architecture = Literal["mlp", "conv", "imported"]
Likelihood = Literal["bernoulli", "gaussian"]
DeviceChoice = Literal["auto", "cpu", "cuda"]

ARCHITECTURES: tuple[str, ...] = ("mlp", "conv")  # the ones a new run can be trained as
IMPORTED = "imported"  # a user's own VAE, described by its ModelCard
LIKELIHOODS: tuple[str, ...] = ("bernoulli", "gaussian")
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")  # fp16 needs CUDA (checked at start)
MAX_LATENT_DIM = 256
MAX_IMPORTED_LATENT = 65_536  # values in an imported model's latent (a 4x128x128 latent fits)
MAX_EPOCHS = 10_000
MAX_BATCH_SIZE = 65_536
MAX_HIDDEN_DIM = 8192  # an MLP layer of 8192 x 12288 (64x64 RGB) is 400 MB of weights already
MAX_THREADS = 256  # torch CPU threads; far more than that fails inside OpenMP, not here
MAX_DIST_TIMEOUT_S = 86_400.0  # a day: a longer collective timeout overflows timedelta
MAX_SEED = 2**32 - 1  # seeds are 0..2**32-1 (numpy's range; torch's is wider)
MIN_CYCLE_PERIOD = 10  # steps: a shorter cyclical period is beta 0 most of the time, not a ramp
# The limits of what may change while a run trains: the CLI, the sidebar's widgets,
# control.json and TrainConfig all read them from here. (low, high), both inclusive.
BETA_RANGE = (0.0, 1000.0)
LR_RANGE = (1e-7, 1.0)
FREE_BITS_RANGE = (0.0, 10.0)  # nats per latent dimension
WARMUP_RANGE = (0, 10_000_000)  # steps
BETA_SCHEDULES: tuple[str, ...] = ("constant", "linear", "cyclical")
LIVE_SETTINGS: dict[str, tuple[float, float]] = {
    "beta": BETA_RANGE,
    "lr": LR_RANGE,
    "free_bits": FREE_BITS_RANGE,
    "warmup_steps": WARMUP_RANGE,  # setting it restarts the warm-up at the current step
}
LIVE_CHOICES: dict[str, tuple[str, ...]] = {"beta_schedule": BETA_SCHEDULES}
INTEGER_SETTINGS = ("warmup_steps",)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def check_live_setting(name: str, value: Any) -> float | int | str:
    """`value` checked against LIVE_SETTINGS / LIVE_CHOICES[name] (ValueError if it is not):
    a float, an int for step counts, or one of the choices."""
    if name in LIVE_CHOICES:
        _check(
            value in LIVE_CHOICES[name],
            f"{name} must be one of {LIVE_CHOICES[name]}, got {value!r}",
        )
        return str(value)
    low, high = LIVE_SETTINGS[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r}")
    _check(
        math.isfinite(value) and low <= value <= high,
        f"{name} must be a finite number in [{low:g}, {high:g}], got {value!r}",
    )
    if name in INTEGER_SETTINGS:
        _check(float(value).is_integer(), f"{name} must be a whole number, got {value!r}")
        return int(value)
    return float(value)


def _short(value: Any) -> str:
    """A value for an error line: a 5,000-digit seed is cut, not echoed whole."""
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**30 else "a huge number"
    return text if len(text) <= 40 else text[:37] + "..."


def check_schedule(schedule: str, warmup_steps: int) -> None:
    """A cyclical KL schedule needs a period of at least MIN_CYCLE_PERIOD steps (0 = off):
    with period 1 beta stays 0 (a plain autoencoder), with 2 it alternates 0 and beta."""
    _check(
        schedule != "cyclical" or warmup_steps == 0 or warmup_steps >= MIN_CYCLE_PERIOD,
        f"a cyclical KL schedule needs a period (warmup_steps) of at least {MIN_CYCLE_PERIOD} "
        f"steps, got {warmup_steps}",
    )


class _JsonMixin:
    """to_dict / from_dict / JSON round-trip shared by both configs."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        _check(not unknown, f"{cls.__name__}: unknown field(s) {unknown}; known: {sorted(known)}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str):
        return cls.from_dict(json.loads(text))


class ModelImportError(ValueError):
    """A user's model cannot be imported or rebuilt from its card; the message says what to do
    (kept here, import-light, so the UI can name it without importing torch)."""


@dataclass(frozen=True)
class ModelCard:
    """How to rebuild a VAE the project did not define: what config.json records for it.

    `source` is `module:Class` (an nn.Module built with `kwargs`) or an adapter name
    ("diffusers": an AutoencoderKL built from `kwargs`, its own config). The wrapper
    maps images in [0, 1] to `input_range` before `encode` and back after `decode`.
    """

    source: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    input_range: tuple[float, float] = (0.0, 1.0)
    latent_shape: tuple[int, ...] = ()  # (D,) for a vector, (C, H, W) for a spatial latent
    weights_sha256: str = ""  # of the safetensors file the weights were imported from
    scaling_factor: float = 1.0  # z seen by the explorer = scaling_factor * the model's z
    not_trainable: str = ""  # why a training step failed at import ("" = it can fine-tune)

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_range", tuple(float(v) for v in self.input_range))
        object.__setattr__(self, "latent_shape", tuple(int(v) for v in self.latent_shape))
        lo, hi = self.input_range
        _check(isinstance(self.source, str) and self.source != "", "a model card needs a source")
        _check(isinstance(self.kwargs, dict), f"kwargs must be a JSON object, got {self.kwargs!r}")
        _check(
            len(self.input_range) == 2 and math.isfinite(lo + hi) and lo < hi,
            f"input_range must be two finite numbers low < high, got {self.input_range}",
        )
        _check(
            len(self.latent_shape) in (1, 3) and all(v >= 1 for v in self.latent_shape),
            f"latent_shape must be (D,) or (C, H, W), got {self.latent_shape}",
        )
        _check(
            math.isfinite(self.scaling_factor) and self.scaling_factor > 0,
            f"scaling_factor must be a positive number, got {self.scaling_factor}",
        )

    @property
    def spatial(self) -> bool:
        return len(self.latent_shape) == 3


@dataclass
class ModelConfig(_JsonMixin):
    """What the VAE looks like. Shapes everywhere derive from these fields."""

    image_shape: tuple[int, int, int] = (1, 28, 28)  # (C, H, W) of one input image
    architecture: Architecture = "mlp"
    latent_dim: int = 20  # D, 1..256
    hidden_dim: int = 400  # MLP hidden width; conv: width of the dense layer before mu/logvar
    conv_channels: tuple[int, ...] = (32, 64)  # one stride-2 conv per entry; H, W halve each time
    likelihood: Likelihood = "bernoulli"  # bernoulli for [0,1] greyscale, gaussian for colour
    card: ModelCard | None = None  # architecture "imported" only: how to rebuild the model

    def __post_init__(self) -> None:
        # JSON gives lists back; keep tuples so configs compare equal after a round-trip.
        self.image_shape = tuple(int(v) for v in self.image_shape)  # type: ignore[assignment]
        self.conv_channels = tuple(int(v) for v in self.conv_channels)
        if isinstance(self.card, dict):
            self.card = ModelCard(**self.card)
        _check(
            self.architecture in (*ARCHITECTURES, IMPORTED),
            f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}",
        )
        _check(
            (self.card is not None) == (self.architecture == IMPORTED),
            "a model card goes with architecture 'imported', and only with it",
        )
        _check(
            self.likelihood in LIKELIHOODS,
            f"likelihood must be one of {LIKELIHOODS}, got {self.likelihood!r}",
        )
        _check(
            len(self.image_shape) == 3 and all(v >= 1 for v in self.image_shape),
            f"image_shape must be (C, H, W) with positive sizes, got {self.image_shape}",
        )
        _check(
            self.image_shape[0] in (1, 3),
            f"image_shape channels must be 1 or 3, got {self.image_shape[0]}",
        )
        if self.card is not None:
            _check(
                self.latent_dim == math.prod(self.card.latent_shape),
                f"latent_dim {self.latent_dim} must equal the card's latent shape "
                f"{self.card.latent_shape} flattened",
            )
        limit = MAX_IMPORTED_LATENT if self.card is not None else MAX_LATENT_DIM
        _check(
            1 <= self.latent_dim <= limit,
            f"latent_dim must be in 1..{limit}, got {self.latent_dim}",
        )
        _check(
            1 <= self.hidden_dim <= MAX_HIDDEN_DIM,
            f"hidden_dim must be in 1..{MAX_HIDDEN_DIM}, got {self.hidden_dim}",
        )
        if self.architecture == "conv":
            _check(
                len(self.conv_channels) >= 1 and all(c >= 1 for c in self.conv_channels),
                f"conv_channels must be non-empty positive ints, got {self.conv_channels}",
            )
            factor = 2 ** len(self.conv_channels)
            _, H, W = self.image_shape
            _check(
                H % factor == 0 and W % factor == 0,
                f"conv with {len(self.conv_channels)} stride-2 layers needs H and W divisible "
                f"by {factor}, got {H}x{W}; use fewer conv_channels or another image size",
            )

    @property
    def num_pixels(self) -> int:
        C, H, W = self.image_shape
        return C * H * W


@dataclass
class TrainConfig(_JsonMixin):
    """How to train: data, optimisation, schedules and how often to publish."""

    dataset: str = "fashion-mnist"  # a name in vae_core.data.DATASETS
    data_dir: str | None = None  # where to look for / download data; None = defaults
    dataset_options: dict[str, Any] = field(default_factory=dict)  # e.g. shapes size, folder path
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3  # Adam learning rate
    beta: float = 1.0  # weight of the KL term in the training objective (beta-VAE)
    beta_schedule: str = "linear"  # constant | linear warm-up | cyclical (Fu et al. 2019)
    warmup_steps: int = 0  # linear: 0 -> beta over this many steps (0 = off); cyclical: period
    cycle_ratio: float = 0.5  # cyclical: the share of each period spent ramping up
    free_bits: float = 0.0  # lambda, nats per dimension: KL_d below it gets no gradient
    seed: int = 1
    device: DeviceChoice = "auto"  # auto = CUDA when available, else CPU
    num_threads: int | None = None  # torch CPU threads; None = all cores
    precision: str = "fp32"  # forward pass under autocast: fp32 | bf16 | fp16 (CUDA only)
    dist_timeout_s: float = 120.0  # torchrun: a collective waiting longer means a rank is lost
    log_every: int = 20  # steps between train rows in metrics.jsonl
    snapshot_every_s: float = 2.0  # seconds between published snapshots
    checkpoint_every_s: float = 60.0  # seconds between checkpoints (also at epoch end and stop)
    eval_batches: int | None = None  # cap test batches per eval; None = whole test split
    iwae_k: int = 100  # importance samples for the IWAE bound at each evaluation; 0 = off
    iwae_n: int = 256  # test images (the first ones, fixed) that bound is computed on

    def __post_init__(self) -> None:
        _check(isinstance(self.dataset, str) and self.dataset != "", "dataset must be a name")
        _check(
            1 <= self.epochs <= MAX_EPOCHS, f"epochs must be in 1..{MAX_EPOCHS}, got {self.epochs}"
        )
        _check(
            1 <= self.batch_size <= MAX_BATCH_SIZE,
            f"batch_size must be in 1..{MAX_BATCH_SIZE}, got {self.batch_size}",
        )
        self.lr = check_live_setting("lr", self.lr)
        self.beta = check_live_setting("beta", self.beta)
        self.warmup_steps = check_live_setting("warmup_steps", self.warmup_steps)
        self.free_bits = check_live_setting("free_bits", self.free_bits)
        self.beta_schedule = check_live_setting("beta_schedule", self.beta_schedule)
        _check(0 < self.cycle_ratio <= 1, f"cycle_ratio must be in (0, 1], got {self.cycle_ratio}")
        check_schedule(self.beta_schedule, self.warmup_steps)
        _check(
            type(self.seed) is int and 0 <= self.seed <= MAX_SEED,
            f"seed must be a whole number in 0..{MAX_SEED}, got {_short(self.seed)}",
        )
        _check(self.iwae_k >= 0 and self.iwae_n >= 0, "iwae_k and iwae_n must be >= 0")
        _check(self.device in DEVICES, f"device must be one of {DEVICES}, got {self.device!r}")
        _check(
            self.precision in PRECISIONS,
            f"precision must be one of {PRECISIONS}, got {self.precision!r}",
        )
        _check(
            math.isfinite(self.dist_timeout_s) and 1 <= self.dist_timeout_s <= MAX_DIST_TIMEOUT_S,
            f"dist_timeout_s must be in 1..{MAX_DIST_TIMEOUT_S:g} seconds, "
            f"got {self.dist_timeout_s:g}",
        )
        _check(
            self.num_threads is None or 1 <= self.num_threads <= MAX_THREADS,
            f"num_threads must be in 1..{MAX_THREADS} or None, got {self.num_threads}",
        )
        _check(self.log_every >= 1, f"log_every must be >= 1, got {self.log_every}")
        _check(self.snapshot_every_s > 0, "snapshot_every_s must be > 0")
        _check(self.checkpoint_every_s > 0, "checkpoint_every_s must be > 0")
        _check(
            self.eval_batches is None or self.eval_batches >= 1,
            f"eval_batches must be >= 1 or None, got {self.eval_batches}",
        )


def build_configs(
    dataset: str,
    *,
    architecture: str = "mlp",
    latent_dim: int = 20,
    hidden_dim: int = 400,
    dataset_options: dict[str, Any] | None = None,
    **train: Any,
) -> tuple[ModelConfig, TrainConfig]:
    """User choices (CLI flags or the app's form) -> validated configs; ValueError if bad.

    The model's image shape and likelihood come from the dataset; `train` holds any other
    TrainConfig fields (epochs, lr, beta, ...).
    """
    from vae_core.data import dataset_info  # data imports torch; config stays import-light

    options = dict(dataset_options or {})
    info = dataset_info(dataset, **options)
    model_config = ModelConfig(
        image_shape=info.image_shape,
        architecture=architecture,  # type: ignore[arg-type]
        latent_dim=latent_dim,
        hidden_dim=hidden_dim,
        likelihood=info.likelihood,  # type: ignore[arg-type]
    )
    return model_config, TrainConfig(dataset=dataset, dataset_options=options, **train)
