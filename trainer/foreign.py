"""A user's model behind the same small protocol the views, the evaluator and the loop use.

A model trained elsewhere (the user's ``nn.Module``, two functions, an ONNX pair) is wrapped
once, here, into what :class:`trainer.models.LatentModel` answers: ``encode(x, y) -> (mu,
logvar | None)``, ``decode(z, y)`` (a raw output), ``mean_image``, ``decode_image``,
``log_likelihood``, ``elbo_terms``, ``latent_dim``, ``is_variational``, ``num_classes`` and a
``config`` whose facts are true for it (:class:`ForeignConfig`). Nothing downstream asks whose
model it is; where a capability is missing (no log-variance, no likelihood, no weights to
train), :meth:`ForeignModel.evaluate_problem` and :meth:`ForeignModel.train_problem` say why.

``output`` says what ``decode`` returns: ``"logits"`` of a Bernoulli decoder, its ``"probs"``,
or the ``"mean"`` of a Gaussian one (with ``std``, its likelihood; without, none).
"""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .config import MAX_CLASSES, MAX_LATENT, MAX_SIDE, is_int, is_real
from .losses import bernoulli_log_likelihood, gaussian_kl, gaussian_log_likelihood
from .models import LatentModel

OUTPUTS = ("logits", "probs", "mean")
PROB_EPS = 1e-6  # probabilities are clamped this far from 0 and 1 before their logit
CHECK_ROWS = 16  # images of the first batch that check_model runs


class ForeignModelError(ValueError):
    """A user's model does not fit what it was said to be: one clear line for the user."""


def _fail(message: str) -> ForeignModelError:
    return ForeignModelError(message)


@dataclass(frozen=True)
class ForeignConfig:
    """What is true of a user's model, in the fields of :class:`~trainer.config.ModelConfig`
    that hold for any model. Its network is the user's own (``arch`` "foreign"): there is no
    hidden size to give, and no config rebuilds it (``to_dict`` says so)."""

    model: str  # "vae", "cvae" (a conditional VAE) or "ae" (posterior means only)
    latent_dim: int
    image_shape: tuple[int, int, int]
    likelihood: str  # "bernoulli" or "gaussian"
    gaussian_std: float | None
    num_classes: int
    output: str = "logits"
    source: str = ""
    arch: str = "foreign"
    # where its code is, for reopening it: "FILE.py:FUNCTION" (absolute) or an ONNX pair's
    # folder; "" for a model given from Python (no file holds its code)
    spec: str = ""
    weights: str = ""  # the weights file that was loaded into it with --weights, if any

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    @property
    def n_pixels(self) -> int:
        return math.prod(self.image_shape)

    @property
    def hidden(self) -> int:
        raise ForeignModelError(
            "a model of your own has no hidden size Latent Explorer knows: it is your network"
        )

    def to_dict(self) -> dict[str, Any]:
        raise ForeignModelError(
            "a model of your own cannot be rebuilt from a checkpoint: save its weights with "
            "torch.save(model.state_dict(), path) in your own code"
        )


class ForeignModel(nn.Module):
    """A user's encoder and decoder as a model every view takes.

    ``encode(x)`` (or ``encode(x, y)`` when ``num_classes`` > 0) returns the posterior mean
    (B, D) or ``(mu, logvar)``; ``decode(z)`` (or ``decode(z, y)``) returns images
    (B, C, H, W) or flat (B, C*H*W), as ``output`` says. ``module``: whose parameters train
    (default: the module the functions are bound to, if any). Whether the encoder is
    variational is learnt from one zero batch here; :func:`check_model` checks real images.
    """

    def __init__(
        self,
        encode: Callable,
        decode: Callable,
        *,
        latent_dim: int,
        image_shape: tuple[int, int, int],
        num_classes: int = 0,
        output: str = "logits",
        std: float | None = None,
        one_hot: bool = False,
        module: nn.Module | None = None,
        source: str = "",
    ) -> None:
        super().__init__()
        if not callable(encode) or not callable(decode):
            raise _fail("encode and decode must be functions or methods of your model")
        if not (is_int(latent_dim) and 1 <= latent_dim <= MAX_LATENT):
            raise _fail(f"latent_dim must be 1 to {MAX_LATENT}, not {latent_dim!r}")
        shape = tuple(image_shape) if isinstance(image_shape, (tuple, list)) else ()
        if not (len(shape) == 3 and all(is_int(n) and n >= 1 for n in shape)):
            raise _fail(f"image_shape must be (C, H, W), not {image_shape!r}")
        if shape[0] not in (1, 3) or max(shape[1:]) > MAX_SIDE:
            raise _fail(
                f"images must have 1 or 3 channels and at most {MAX_SIDE} pixels a side, "
                f"not {shape}"
            )
        if not (is_int(num_classes) and (num_classes == 0 or 2 <= num_classes <= MAX_CLASSES)):
            raise _fail(f"num_classes must be 0 or 2 to {MAX_CLASSES}, not {num_classes!r}")
        if output not in OUTPUTS:
            raise _fail(f"output must be one of {', '.join(OUTPUTS)}, not {output!r}")
        if std is not None and not (is_real(std) and std > 0):
            raise _fail(f"std must be a positive number, not {std!r}")
        if std is not None and output != "mean":
            raise _fail("std is the Gaussian decoder's: give it with output='mean' only")
        if module is None:
            bound = getattr(encode, "__self__", None)
            module = bound if isinstance(bound, nn.Module) else None
        if module is not None and not isinstance(module, nn.Module):
            raise _fail(f"module must be a torch.nn.Module, not a {type(module).__name__}")
        self._encode_fn, self._decode_fn = encode, decode
        self.module = module  # registered: .to(), .eval(), state_dict() and training reach it
        if module is None or next(module.parameters(), None) is None:
            # something for the views to read the device and dtype from
            self._anchor = nn.Parameter(torch.zeros(0), requires_grad=False)
        # the parameters the user left trainable (a view's copy is frozen; training's is not)
        self._trains = {n for n, p in self.named_parameters() if p.requires_grad}
        self.num_classes = int(num_classes)
        self.one_hot = bool(one_hot)
        self.output, self.std = output, std
        self.variational = self._probe(shape, int(latent_dim))
        model = ("cvae" if num_classes else "vae") if self.variational else "ae"
        self.config = ForeignConfig(
            model=model,
            latent_dim=int(latent_dim),
            image_shape=shape,  # type: ignore[arg-type]
            likelihood="gaussian" if output == "mean" else "bernoulli",
            gaussian_std=std,
            num_classes=int(num_classes),
            output=output,
            source=source,
        )

    def _probe(self, shape: tuple[int, int, int], latent_dim: int) -> bool:
        """Encode two blank images: does the encoder give a log-variance?"""
        was = self.training
        self.eval()
        try:
            p = next(self.parameters())
            x = torch.zeros((2, *shape), device=p.device, dtype=p.dtype)
            y = torch.zeros(2, dtype=torch.long, device=p.device) if self.num_classes else None
            with torch.no_grad():
                out = self._call(self._encode_fn, "encode", x, y)
        finally:
            self.train(was)
        mu, logvar = self._split(out)
        if mu.shape[-1] != latent_dim:
            raise _fail(
                f"encode returns codes of {mu.shape[-1]} values, and latent_dim is {latent_dim}"
            )
        return logvar is not None

    # -- calling the user's code --------------------------------------------------------------
    def _label(self, y: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
        if y is None:
            raise _fail("this is a conditional model: a class label is needed")
        y = y.to(like.device).long()
        return F.one_hot(y, self.num_classes).to(like.dtype) if self.one_hot else y

    def _call(self, fn: Callable, name: str, t: torch.Tensor, y: torch.Tensor | None):
        args = (t,) if not self.num_classes else (t, self._label(y, t))
        try:
            with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
                return fn(*args)
        except ForeignModelError:
            raise
        except Exception as e:  # noqa: BLE001 - the user's code: said in one line
            raise _fail(f"your model's {name} failed: {type(e).__name__}: {e}") from e

    @staticmethod
    def _split(out) -> tuple[torch.Tensor, torch.Tensor | None]:
        if isinstance(out, (tuple, list)):
            if len(out) != 2 or not all(torch.is_tensor(t) for t in out):
                raise _fail("encode must return the mean, or a (mu, logvar) pair of tensors")
            mu, logvar = out
            if mu.shape != logvar.shape:
                raise _fail(
                    f"encode's mu and logvar differ in shape: {tuple(mu.shape)} and "
                    f"{tuple(logvar.shape)}"
                )
            return mu.flatten(1), logvar.flatten(1)
        if not torch.is_tensor(out):
            raise _fail(f"encode must return a tensor, not a {type(out).__name__}")
        return out.flatten(1), None

    # -- the shared interface -----------------------------------------------------------------
    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def is_variational(self) -> bool:
        return self.variational

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.config.image_shape

    def encode(
        self, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """q(z | x): (mu, logvar), each (B, D); a posterior-mean-only encoder gives (mu, None)."""
        mu, logvar = self._split(self._call(self._encode_fn, "encode", x, y))
        if (logvar is not None) != self.variational:
            raise _fail("encode returned a (mu, logvar) pair once and a mean alone another time")
        if mu.shape != (len(x), self.latent_dim):
            raise _fail(
                f"encode returns shape {tuple(mu.shape)} for {len(x)} images; "
                f"expected ({len(x)}, {self.latent_dim})"
            )
        return mu, logvar

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """p(x | z): the raw output (B, C, H, W): logits for a Bernoulli decoder (the logits of
        its probabilities where it returns those), the mean for a Gaussian one."""
        out = self._call(self._decode_fn, "decode", z, y)
        if not torch.is_tensor(out):
            raise _fail(f"decode must return a tensor, not a {type(out).__name__}")
        n, shape = len(z), self.config.image_shape
        if out.numel() != n * math.prod(shape) or len(out) != n:
            c, h, w = shape
            raise _fail(
                f"decode returns shape {tuple(out.shape)} for {n} codes; the images are "
                f"{c}x{h}x{w} ({n}, {c}, {h}, {w}) or flat ({n}, {c * h * w})"
            )
        out = out.reshape(n, *shape)
        if self.output == "probs":
            out = torch.logit(out.clamp(PROB_EPS, 1 - PROB_EPS))
        return out

    def mean_image(self, out: torch.Tensor) -> torch.Tensor:
        """E[x | z] in [0, 1] from the raw output (a Gaussian mean is clipped for display)."""
        return out.clamp(0, 1) if self.output == "mean" else torch.sigmoid(out)

    def decode_image(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.mean_image(self.decode(z, y))

    def decoder_log_std(self) -> torch.Tensor:
        if self.std is None:
            raise _fail(self.likelihood_problem() or "no Gaussian std")
        return torch.tensor(math.log(self.std))

    def likelihood_problem(self) -> str | None:
        """Why the model has no log p(x | z), or None if it has one."""
        if self.output == "mean" and self.std is None:
            return (
                "its decoder gives a Gaussian mean without a std, so it has no likelihood "
                "(give std= to explore() for one)"
            )
        return None

    def log_likelihood(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """log p(x | z) in nats per image, (B,)."""
        if self.output == "mean":
            return gaussian_log_likelihood(out, x, self.decoder_log_std().to(out.device))
        return bernoulli_log_likelihood(out, x)

    def evaluate_problem(self) -> str | None:
        """Why no ELBO can be computed for this model, or None."""
        if not self.variational:
            return (
                "your model's encoder gives a posterior mean alone (no logvar): "
                "it is an autoencoder, with no ELBO"
            )
        return self.likelihood_problem()

    def train_problem(self) -> str | None:
        """Why Train cannot train this model by its ELBO, or None."""
        problem = self.evaluate_problem()
        if problem is not None:
            return f"your model is explore-only here: {problem}"
        if not self._trains:
            return "your model is explore-only here: it has no parameters to train"
        return None

    def trained_shapes(self) -> list[tuple[int, ...]]:
        """The shapes of the parameters Train trains, in the order its optimiser holds them
        (what a kept optimiser state must fit)."""
        return [tuple(p.shape) for n, p in self.named_parameters() if n in self._trains]

    def training_copy(self) -> ForeignModel:
        """A copy to train (on another thread), its parameters trainable as the user left
        them; the views keep decoding with this one meanwhile."""
        try:
            model = copy.deepcopy(self)
        except Exception as e:  # noqa: BLE001 - the user's objects: said in one line
            raise _fail(f"your model cannot be copied to train it ({type(e).__name__}: {e})") from e
        for n, p in model.named_parameters():
            p.requires_grad_(n in self._trains)
        model.frozen = False
        return model.train()

    frozen = False  # the views' model: the user's code runs without gradients
    origin = "as your code made it"  # how much training it had, before any here

    def requires_grad_(self, requires_grad: bool = True) -> ForeignModel:
        """Frozen for the views, a user's model keeps its parameters as the user left them
        (their own code may train them again): its calls run without gradients instead."""
        self.frozen = not requires_grad
        return self

    noise: torch.Generator | None = None
    noise_rows: tuple[int, int, int] | None = None
    randn_like = LatentModel.randn_like
    reparameterize = LatentModel.reparameterize

    def elbo_terms(
        self, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Single-sample estimate of (-E_q[log p(x|z)], KL(q || p)), each (B,)."""
        mu, logvar = self.encode(x, y)
        if logvar is None:
            z, kl = mu, mu.new_zeros(mu.shape[0])
        else:
            z, kl = self.reparameterize(mu, logvar), gaussian_kl(mu, logvar)
        return -self.log_likelihood(x, self.decode(z, y)), kl

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Reconstruction E[x | z = mean of q(z|x)] in [0, 1]."""
        mu, _ = self.encode(x, y)
        return self.decode_image(mu, y)


def _takes_label(fn) -> bool:
    """The function takes a second positional argument (a conditional model's class)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p for p in params if p.kind in kinds and p.default is inspect.Parameter.empty]
    return len(required) >= 2


def wrap(
    model=None,
    data=None,
    *,
    output: str = "logits",
    encode=None,
    decode=None,
    latent_dim: int | None = None,
    num_classes: int | None = None,
    std: float | None = None,
    one_hot: bool = False,
    source: str | None = None,
) -> ForeignModel:
    """The user's model (or functions) as a ForeignModel for ``data``'s images (an
    :class:`~trainer.data.ImageData`: its image shape, its classes and a first batch decide
    what the model is); ``source`` says where it came from (default: its class's name)."""
    if isinstance(model, ForeignModel):
        return model
    encode = encode or getattr(model, "encode", None)
    decode = decode or getattr(model, "decode", None)
    if encode is None or decode is None:
        raise ForeignModelError(
            "the model needs encode(x) and decode(z) methods; where they are named otherwise, "
            "give encode= and decode="
        )
    module = model if isinstance(model, nn.Module) else None
    conditional = num_classes is not None and num_classes > 0
    if num_classes is None:
        conditional = _takes_label(encode) or _takes_label(decode)
        num_classes = data.num_classes if conditional else 0
    if conditional and data.num_classes == 0:
        raise ForeignModelError(
            "the model is conditional (encode and decode take a class): give labels= for its images"
        )
    if latent_dim is None:  # from a first image's code
        p = next(module.parameters(), None) if module is not None else None
        x = data.test_x[:2].float().div(255)
        if p is not None:
            x = x.to(p.device, p.dtype)
        args = (x,)
        if conditional:
            y = data.test_y[:2].to(x.device)
            args = (x, F.one_hot(y, num_classes).to(x.dtype) if one_hot else y)
        if module is not None:
            was = module.training
            module.eval()
        try:
            with torch.no_grad():
                out = encode(*args)
        except Exception as e:  # noqa: BLE001 - the user's code, said in one line
            raise ForeignModelError(f"your model's encode failed: {type(e).__name__}: {e}") from e
        finally:
            if module is not None:
                module.train(was)
        mu = out[0] if isinstance(out, (tuple, list)) else out
        if not torch.is_tensor(mu):
            raise ForeignModelError(f"encode must return a tensor, not a {type(mu).__name__}")
        latent_dim = int(mu.flatten(1).shape[1])
    return ForeignModel(
        encode,
        decode,
        latent_dim=latent_dim,
        image_shape=data.image_shape,
        num_classes=num_classes,
        output=output,
        std=std,
        one_hot=one_hot,
        module=module,
        source=source or (type(model).__name__ if model is not None else "your functions"),
    )


def check_model(model: ForeignModel, images: torch.Tensor, labels=None) -> None:
    """Run a first batch of ``images`` (float in [0, 1] or uint8, (N, C, H, W)) through the
    model; a ForeignModelError names the first thing that does not fit."""
    shape = tuple(model.config.image_shape)
    if not torch.is_tensor(images) or images.dim() != 4 or tuple(images.shape[1:]) != shape:
        got = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
        raise _fail(f"the model takes images of shape (N, {', '.join(map(str, shape))}), not {got}")
    if len(images) == 0:
        raise _fail("there are no images to explore")
    x = images[:CHECK_ROWS]
    x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
    y = None
    if model.num_classes:
        if labels is None:
            raise _fail(
                f"the model is conditional ({model.num_classes} classes): give labels= "
                "for its images"
            )
        y = torch.as_tensor(labels)[:CHECK_ROWS].long()
        if len(y) != len(x):
            raise _fail(f"there are {len(labels)} labels for {len(images)} images")
    p = next(model.parameters())
    x = x.to(p.device, p.dtype)
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            mu, logvar = model.encode(x, y)
            if not torch.isfinite(mu).all() or (
                logvar is not None and not torch.isfinite(logvar).all()
            ):
                raise _fail("encode gives NaN or infinite codes for the first images")
            out = model.decode(mu, y)
            if not torch.isfinite(out).all():
                raise _fail("decode gives NaN or infinite values for the first images' codes")
            raw = model._call(model._decode_fn, "decode", mu, y)
            if model.output == "probs" and (raw.min() < 0 or raw.max() > 1):
                raise _fail(
                    "decode was said to return probabilities (output='probs'), and it returns "
                    f"values from {float(raw.min()):.3g} to {float(raw.max()):.3g}: "
                    "use output='logits'"
                )
    finally:
        model.train(was)
