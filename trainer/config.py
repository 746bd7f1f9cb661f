"""Frozen, validated configuration for models and training runs.

Both dataclasses round-trip through plain JSON (``asdict`` / ``from_dict``) so that a
checkpoint can rebuild its model without executing any code.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

MODELS = ("vae", "cvae", "ae")
MODEL_TITLES = {"vae": "VAE", "cvae": "conditional VAE", "ae": "autoencoder"}
ARCHS = ("mlp", "conv")
ARCH_TITLES = {"mlp": "MLP", "conv": "convolutional", "foreign": "your own network"}
LIKELIHOODS = ("bernoulli", "gaussian")
LIKELIHOOD_TITLES = {"bernoulli": "Bernoulli", "gaussian": "Gaussian"}
DEVICES = ("auto", "cpu", "cuda", "mps")
# fp32: float32 throughout. bf16: the network's layers in bfloat16 (autocast), the latent
# statistics, the ELBO and the weights and Adam's state in float32
PRECISIONS = ("fp32", "bf16")
CONV_SIZES = (28, 32, 64)
MAX_LATENT = 256
COLLAPSED_KL = 0.01  # nats: a latent dimension whose KL is below this carries nothing
TRAVERSAL_COLUMNS = (7, 15)  # a traversal's values per row: fewest and most
FILM_MEMORY_MB = 64.0  # the default memory for a training film's frames
FILM_MIN_MB, FILM_MAX_MB = 4.0, 4096.0
FILM_SIZES = (160, 1024, 320)  # a film picture's manifold and map side: least, most, default
MIN_HIDDEN, MAX_HIDDEN = 8, 8192
MAX_SIDE = 1024  # pixels a side of an image a model takes
MAX_EPOCHS = 100_000  # epochs of one run
MAX_BATCH = 65_536
MAX_SEED = 2**31 - 1  # the largest seed every front end accepts (the window's spin box included)
MAX_CLASSES = 1000  # labels are 0..K-1 with 2 <= K <= MAX_CLASSES for a conditional model
MAX_RATE_HZ = 1000.0  # snapshots (and weight copies) per second the window can take
MAX_DATA_MEMORY_MB = 1 << 30  # --data-memory: a petabyte is surely everything
MAX_PARAMETERS = 500_000_000  # weights, gradients and Adam's moments: 8 GB in float32


class ConfigError(ValueError):
    """A setting is out of range or inconsistent; the message says which and why.

    ``e.gui``, where set, says it in the window's terms (``str(e)`` names CLI flags).
    """

    def __init__(self, message: str, gui: str | None = None) -> None:
        super().__init__(message)
        self.gui = gui


def is_int(value: Any) -> bool:
    """An integer, and not a bool (``True`` is an ``int`` to Python, not to a setting)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """A finite int or float (not a bool, NaN or infinity)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def shown(value: Any, depth: int = 0) -> str:
    """A short JSON-like rendering of any value, for error messages: ``"x"``, ``null``,
    ``[1, 28.5, 28]``; long strings, numbers and containers are cut short."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, str):
        text = json.dumps(value[:40] + ("…" if len(value) > 40 else ""), ensure_ascii=False)
        return text.encode("utf-8", "backslashreplace").decode("utf-8")  # a lone surrogate
    if isinstance(value, int):
        return str(value) if abs(value) < 10**40 else f"a {len(str(abs(value)))}-digit number"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple, dict)):
        if depth >= 2:
            return "[…]" if not isinstance(value, dict) else "{…}"
        if isinstance(value, dict):
            items = [f"{shown(k, 2)}: {shown(v, depth + 1)}" for k, v in list(value.items())[:4]]
            return "{" + ", ".join(items) + (", …" if len(value) > 4 else "") + "}"
        items = [shown(v, depth + 1) for v in list(value[:6])]
        return "[" + ", ".join(items) + (", …" if len(value) > 6 else "") + "]"
    return f"a {type(value).__name__}"


def _from_dict(cls, data: dict[str, Any]):
    if not isinstance(data, dict):
        raise ConfigError(f"{cls.__name__} must be a JSON object, not {shown(data)}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known, key=str)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} field(s): {', '.join(map(str, unknown))}")
    return cls(**data)


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
        if not (isinstance(self.model, str) and self.model in MODELS):
            raise ConfigError(f"model must be one of {', '.join(MODELS)}, not {shown(self.model)}")
        if not (isinstance(self.arch, str) and self.arch in ARCHS):
            raise ConfigError(f"arch must be one of {', '.join(ARCHS)}, not {shown(self.arch)}")
        if not (isinstance(self.likelihood, str) and self.likelihood in LIKELIHOODS):
            raise ConfigError(
                f"likelihood must be one of {', '.join(LIKELIHOODS)}, not {shown(self.likelihood)}"
            )
        if not (is_int(self.latent_dim) and 1 <= self.latent_dim <= MAX_LATENT):
            raise ConfigError(
                f"latent size must be 1 to {MAX_LATENT}, not {shown(self.latent_dim)}"
            )
        if not (is_int(self.hidden) and MIN_HIDDEN <= self.hidden <= MAX_HIDDEN):
            raise ConfigError(
                f"hidden size must be {MIN_HIDDEN} to {MAX_HIDDEN}, not {shown(self.hidden)}"
            )
        shape = self.image_shape
        if not (
            isinstance(shape, (tuple, list))
            and len(shape) == 3
            and all(is_int(n) and n >= 1 for n in shape)
        ):
            raise ConfigError(f"image shape must be (C, H, W), not {shown(shape)}")
        object.__setattr__(self, "image_shape", tuple(shape))  # a list from JSON, say
        c, h, w = self.image_shape
        if c not in (1, 3):
            raise ConfigError(f"images must have 1 or 3 channels, not {c}")
        if max(h, w) > MAX_SIDE:
            raise ConfigError(f"images can be at most {MAX_SIDE} pixels a side, not {h}x{w}")
        if self.arch == "conv" and not (h == w and h in CONV_SIZES):
            sizes = ", ".join(map(str, CONV_SIZES))
            raise ConfigError(
                f"the conv body takes square images of {sizes} pixels, not {h}x{w}; "
                "use --arch mlp or resize the images",
                gui=f"the convolutional body takes square images of {sizes} pixels, not "
                f"{h}x{w}: choose Body ▸ MLP, or a Size of {sizes} under Data.",
            )
        std = self.gaussian_std
        if std is not None and not (is_real(std) and 0 < std <= 10):
            raise ConfigError(f"Gaussian decoder std must be in (0, 10], not {shown(std)}")
        if not (is_int(self.num_classes) and 0 <= self.num_classes <= MAX_CLASSES):
            raise ConfigError(
                f"num_classes must be 0 to {MAX_CLASSES}, not {shown(self.num_classes)}"
            )
        if self.model == "cvae" and self.num_classes < 2:
            raise ConfigError(
                "a conditional VAE needs labelled data with at least 2 classes "
                f"(this data has {self.num_classes})"
            )

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
    # MB of the device's memory the data may take; past it the training split is streamed
    # (trainer.loop.feed). None: half of the device's free memory
    data_memory: float | None = None
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if not (is_int(self.epochs) and 1 <= self.epochs <= MAX_EPOCHS):
            raise ConfigError(f"epochs must be 1 to {MAX_EPOCHS}, not {shown(self.epochs)}")
        if not (is_int(self.batch_size) and 1 <= self.batch_size <= MAX_BATCH):
            raise ConfigError(f"batch size must be 1 to {MAX_BATCH}, not {shown(self.batch_size)}")
        if not (is_real(self.lr) and 0 < self.lr <= 1.0):
            raise ConfigError(f"learning rate must be in (0, 1], not {shown(self.lr)}")
        if not (is_real(self.beta) and 0 <= self.beta <= 1000):
            raise ConfigError(f"beta must be in [0, 1000], not {shown(self.beta)}")
        if not (is_real(self.warmup_epochs) and 0 <= self.warmup_epochs <= MAX_EPOCHS):
            raise ConfigError(
                f"KL warm-up must be 0 to {MAX_EPOCHS} epochs, not {shown(self.warmup_epochs)}"
            )
        if not (is_int(self.seed) and 0 <= self.seed <= MAX_SEED):
            raise ConfigError(f"seed must be 0 to {MAX_SEED}, not {shown(self.seed)}")
        if not (isinstance(self.device, str) and self.device in DEVICES):
            raise ConfigError(
                f"device must be one of {', '.join(DEVICES)}, not {shown(self.device)}"
            )
        if not (isinstance(self.precision, str) and self.precision in PRECISIONS):
            raise ConfigError(
                f"precision must be one of {', '.join(PRECISIONS)}, not {shown(self.precision)}"
            )
        dm = self.data_memory
        if dm is not None and not (is_real(dm) and 0 <= dm <= MAX_DATA_MEMORY_MB):
            raise ConfigError(
                f"data memory must be 0 to {MAX_DATA_MEMORY_MB:,} MB, not {shown(dm)}"
            )
        for name in ("snapshot_hz", "weights_hz"):
            rate = getattr(self, name)
            if not (is_real(rate) and 0 < rate <= MAX_RATE_HZ):
                raise ConfigError(
                    f"{name} must be above 0 and at most {MAX_RATE_HZ}, not {shown(rate)}"
                )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return _from_dict(cls, data)
