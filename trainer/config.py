"""Frozen, validated configuration for models and training runs.

Both dataclasses round-trip through plain JSON (``asdict`` / ``from_dict``) so that a
checkpoint can rebuild its model without executing any code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

MODELS = ("vae", "cvae", "ae")
MODEL_TITLES = {"vae": "VAE", "cvae": "conditional VAE", "ae": "autoencoder"}
ARCHS = ("mlp", "conv")
LIKELIHOODS = ("bernoulli", "gaussian")
DEVICES = ("auto", "cpu", "cuda", "mps")
CONV_SIZES = (28, 32, 64)
MAX_LATENT = 256
MAX_SEED = 2**31 - 1  # the largest seed every front end accepts (the window's spin box included)
MAX_CLASSES = 1000  # labels are 0..K-1 with 2 <= K <= MAX_CLASSES for a conditional model


class ConfigError(ValueError):
    """A setting is out of range or inconsistent; the message says which and why.

    ``e.gui``, where set, says it in the window's terms (``str(e)`` names CLI flags).
    """

    def __init__(self, message: str, gui: str | None = None) -> None:
        super().__init__(message)
        self.gui = gui


def _from_dict(cls, data: dict[str, Any]):
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} field(s): {', '.join(unknown)}")
    kwargs = dict(data)
    if "image_shape" in kwargs:
        kwargs["image_shape"] = tuple(kwargs["image_shape"])
    return cls(**kwargs)


@dataclass(frozen=True)
class ModelConfig:
    """What network to build.

    ``gaussian_std`` is the fixed decoder standard deviation of a Gaussian decoder;
    ``None`` means it is learned (one log-variance per pixel).
    """

    model: str = "vae"
    arch: str = "mlp"
    latent_dim: int = 20
    hidden: int = 400
    image_shape: tuple[int, int, int] = (1, 28, 28)  # (C, H, W)
    likelihood: str = "bernoulli"
    gaussian_std: float | None = None
    num_classes: int = 0

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ConfigError(f"model must be one of {', '.join(MODELS)}, not {self.model!r}")
        if self.arch not in ARCHS:
            raise ConfigError(f"arch must be one of {', '.join(ARCHS)}, not {self.arch!r}")
        if self.likelihood not in LIKELIHOODS:
            raise ConfigError(
                f"likelihood must be one of {', '.join(LIKELIHOODS)}, not {self.likelihood!r}"
            )
        if not (isinstance(self.latent_dim, int) and 1 <= self.latent_dim <= MAX_LATENT):
            raise ConfigError(f"latent size must be 1 to {MAX_LATENT}, not {self.latent_dim}")
        if not (isinstance(self.hidden, int) and 8 <= self.hidden <= 8192):
            raise ConfigError(f"hidden size must be 8 to 8192, not {self.hidden}")
        if len(self.image_shape) != 3 or min(self.image_shape) < 1:
            raise ConfigError(f"image shape must be (C, H, W), not {self.image_shape}")
        c, h, w = self.image_shape
        if c not in (1, 3):
            raise ConfigError(f"images must have 1 or 3 channels, not {c}")
        if self.arch == "conv" and not (h == w and h in CONV_SIZES):
            sizes = ", ".join(map(str, CONV_SIZES))
            raise ConfigError(
                f"the conv body takes square images of {sizes} pixels, not {h}x{w}; "
                "use --arch mlp or resize the images",
                gui=f"the convolutional body takes square images of {sizes} pixels, not "
                f"{h}x{w}: choose Body ▸ MLP, or a Size of {sizes} under Data.",
            )
        if self.gaussian_std is not None and not (0 < self.gaussian_std <= 10):
            raise ConfigError(f"Gaussian decoder std must be in (0, 10], not {self.gaussian_std}")
        if self.model == "cvae" and self.num_classes < 2:
            raise ConfigError(
                "a conditional VAE needs labelled data with at least 2 classes "
                f"(this data has {self.num_classes})"
            )
        if self.num_classes < 0:
            raise ConfigError("num_classes cannot be negative")

    @property
    def conditional(self) -> bool:
        return self.model == "cvae"

    @property
    def n_pixels(self) -> int:
        c, h, w = self.image_shape
        return c * h * w

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["image_shape"] = list(self.image_shape)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        return _from_dict(cls, data)


@dataclass(frozen=True)
class TrainConfig:
    """How to train. ``warmup_epochs`` ramps the KL weight linearly from 0 to ``beta``."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    beta: float = 1.0
    warmup_epochs: float = 0.0
    seed: int = 0
    device: str = "auto"
    snapshot_hz: float = 10.0
    weights_hz: float = 4.0

    def __post_init__(self) -> None:
        if not (isinstance(self.epochs, int) and 1 <= self.epochs <= 100_000):
            raise ConfigError(f"epochs must be 1 to 100000, not {self.epochs}")
        if not (isinstance(self.batch_size, int) and 1 <= self.batch_size <= 65_536):
            raise ConfigError(f"batch size must be 1 to 65536, not {self.batch_size}")
        if not (0 < self.lr <= 1.0):
            raise ConfigError(f"learning rate must be in (0, 1], not {self.lr}")
        if not (0 <= self.beta <= 1000):
            raise ConfigError(f"beta must be in [0, 1000], not {self.beta}")
        if not (0 <= self.warmup_epochs <= 100_000):
            raise ConfigError(f"KL warm-up must be 0 or more epochs, not {self.warmup_epochs}")
        if not (isinstance(self.seed, int) and 0 <= self.seed <= MAX_SEED):
            raise ConfigError(f"seed must be 0 to {MAX_SEED}, not {self.seed}")
        if self.device not in DEVICES:
            raise ConfigError(f"device must be one of {', '.join(DEVICES)}, not {self.device!r}")
        if self.snapshot_hz <= 0 or self.weights_hz <= 0:
            raise ConfigError("snapshot rates must be positive")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return _from_dict(cls, data)
