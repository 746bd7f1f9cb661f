"""VAE, conditional VAE and plain autoencoder with MLP or convolutional bodies.

Every model shares one interface, so the loop, the evaluator and the explorer never ask
which kind they hold:

- ``encode(x, y) -> (mu, logvar)``      x: (B, C, H, W) in [0, 1]; logvar is None for the AE
- ``decode(z, y) -> out``               raw decoder output (B, C, H, W): logits or pre-sigmoid mean
- ``mean_image(out)``                   E[x | z] in [0, 1], for display
- ``log_likelihood(x, out)``            log p(x | z), (B,)
- ``elbo_terms(x, y)``                  per-sample reconstruction and KL, (B,) each
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import MAX_PARAMETERS, ConfigError, ModelConfig
from .losses import bernoulli_log_likelihood, gaussian_kl, gaussian_log_likelihood

# Bounds on a learned Gaussian decoder std: data with constant pixels (MNIST borders)
# would otherwise drive sigma -> 0 and the likelihood to +inf.
MIN_LOG_STD = math.log(0.02)
MAX_LOG_STD = math.log(2.0)


def _one_hot(y: torch.Tensor | None, num_classes: int, like: torch.Tensor) -> torch.Tensor | None:
    if num_classes == 0:
        return None
    if y is None:
        raise ValueError("this is a conditional model: a class label is needed")
    return F.one_hot(y.long(), num_classes).to(like.dtype)


def _cat(a: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    return a if b is None else torch.cat([a, b], dim=1)


class MLPEncoder(nn.Module):
    def __init__(self, n_in: int, hidden: int, n_out: int):
        super().__init__()
        self.fc = nn.Linear(n_in, hidden)
        self.head = nn.Linear(hidden, n_out)

    def forward(self, x_flat: torch.Tensor) -> torch.Tensor:  # (B, n_in) -> (B, n_out)
        return self.head(F.relu(self.fc(x_flat)))


class MLPDecoder(nn.Module):
    def __init__(self, n_in: int, hidden: int, image_shape: tuple[int, int, int]):
        super().__init__()
        self.image_shape = image_shape
        self.fc = nn.Linear(n_in, hidden)
        self.out = nn.Linear(hidden, math.prod(image_shape))

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (B, n_in) -> (B, C, H, W)
        return self.out(F.relu(self.fc(h))).view(-1, *self.image_shape)


def _n_down(size: int) -> int:
    # 28 -> 14 -> 7; 32 -> 16 -> 8; 64 -> 32 -> 16 -> 8
    return 3 if size == 64 else 2


class ConvEncoder(nn.Module):
    def __init__(self, image_shape: tuple[int, int, int], hidden: int, n_extra: int, n_out: int):
        super().__init__()
        c, size, _ = image_shape
        chans = [c, 32, 64, 64][: _n_down(size) + 1]
        layers: list[nn.Module] = []
        for a, b in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(a, b, 4, stride=2, padding=1), nn.ReLU()]
        self.conv = nn.Sequential(*layers)
        side = size >> _n_down(size)
        self.fc = nn.Linear(chans[-1] * side * side + n_extra, hidden)
        self.head = nn.Linear(hidden, n_out)

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None) -> torch.Tensor:
        h = self.conv(x).flatten(1)  # (B, 64 * side^2)
        return self.head(F.relu(self.fc(_cat(h, extra))))


class ConvDecoder(nn.Module):
    def __init__(self, n_in: int, hidden: int, image_shape: tuple[int, int, int]):
        super().__init__()
        c, size, _ = image_shape
        n = _n_down(size)
        self.side = size >> n
        chans = [64, 64, 32][-n:] + [c] if n == 2 else [64, 64, 32, c]
        self.chans0 = chans[0]
        self.fc = nn.Sequential(
            nn.Linear(n_in, hidden),
            nn.ReLU(),
            nn.Linear(hidden, chans[0] * self.side**2),
            nn.ReLU(),
        )
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(chans[:-1], chans[1:])):
            layers.append(nn.ConvTranspose2d(a, b, 4, stride=2, padding=1))
            if i < len(chans) - 2:
                layers.append(nn.ReLU())
        self.deconv = nn.Sequential(*layers)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.fc(h).view(-1, self.chans0, self.side, self.side))


class LatentModel(nn.Module):
    """A VAE, CVAE or AE, as chosen by ``config.model``."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        zd, ncls, hid = (
            config.latent_dim,
            config.num_classes if config.conditional else 0,
            config.hidden,
        )
        self.num_classes = ncls
        n_stats = zd if config.model == "ae" else 2 * zd
        if config.arch == "mlp":
            self.encoder = MLPEncoder(config.n_pixels + ncls, hid, n_stats)
            self.decoder = MLPDecoder(zd + ncls, hid, config.image_shape)
        else:
            self.encoder = ConvEncoder(config.image_shape, hid, ncls, n_stats)
            self.decoder = ConvDecoder(zd + ncls, hid, config.image_shape)
        if config.likelihood == "gaussian":
            init = math.log(config.gaussian_std) if config.gaussian_std else math.log(0.1)
            # Stored even when fixed, so that the checkpoint says what it was.
            self.log_std = nn.Parameter(
                torch.tensor(init), requires_grad=config.gaussian_std is None
            )

    # -- the shared interface ---------------------------------------------------------------
    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def is_variational(self) -> bool:
        return self.config.model != "ae"

    def evaluate_problem(self) -> str | None:
        """Why Evaluate cannot measure this model (None: it can; trainer.foreign's may not)."""
        return None

    def encode(
        self, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """q(z | x): posterior mean and log-variance, each (B, D). The AE returns (z, None)."""
        onehot = _one_hot(y, self.num_classes, x)
        if self.config.arch == "mlp":
            stats = self.encoder(_cat(x.flatten(1), onehot))
        else:
            stats = self.encoder(x, onehot)
        if stats.dtype in (torch.bfloat16, torch.float16):  # from layers under autocast
            stats = stats.float()  # the statistics, the KL and the sampling: float32
        if not self.is_variational:
            return stats, None
        mu, logvar = stats.chunk(2, dim=1)
        return mu, logvar

    # Where the model's noise comes from. None: torch's global generator, which every thread
    # of the process shares; a Trainer gives its model a stream of its own, so that nothing
    # another thread draws (the window's views, say) changes what a seeded run computes.
    noise: torch.Generator | None = None
    # A process training its share (rows a:b) of a global batch of n images draws the whole
    # batch's noise and keeps its rows, (n, a, b): every process of a run then draws exactly
    # what a single process would (trainer.loop.distributed).
    noise_rows: tuple[int, int, int] | None = None

    def randn_like(self, t: torch.Tensor) -> torch.Tensor:
        """Standard normal noise shaped like ``t``, from ``self.noise``."""
        rows = self.noise_rows
        if rows is not None and t.dim() >= 1 and t.shape[0] == rows[2] - rows[1]:
            n, a, b = rows
            full = torch.randn(
                (n, *t.shape[1:]), generator=self.noise, dtype=t.dtype, device=t.device
            )
            return full[a:b]
        return torch.randn(t.shape, generator=self.noise, dtype=t.dtype, device=t.device)

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """z = mu + sigma * eps, eps ~ N(0, I): differentiable in mu and logvar."""
        return mu + torch.exp(0.5 * logvar) * self.randn_like(mu)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """p(x | z): raw decoder output of shape (B, C, H, W)."""
        return self.decoder(_cat(z, _one_hot(y, self.num_classes, z)))

    def mean_image(self, out: torch.Tensor) -> torch.Tensor:
        """E[x | z] in [0, 1] from the raw decoder output."""
        return torch.sigmoid(out)

    def decode_image(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.mean_image(self.decode(z, y))

    def decoder_log_std(self) -> torch.Tensor:
        return self.log_std.clamp(MIN_LOG_STD, MAX_LOG_STD)

    def log_likelihood(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """log p(x | z) in nats per image, (B,)."""
        if self.config.likelihood == "bernoulli":
            return bernoulli_log_likelihood(out, x)
        return gaussian_log_likelihood(torch.sigmoid(out), x, self.decoder_log_std())

    def elbo_terms(
        self, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Single-sample estimate of (-E_q[log p(x|z)], KL(q || p)), each (B,).

        For the AE the code is deterministic and the KL term is zero.
        """
        mu, logvar = self.encode(x, y)
        if logvar is None:
            z, kl = mu, mu.new_zeros(mu.shape[0])
        else:
            z, kl = self.reparameterize(mu, logvar), gaussian_kl(mu, logvar)
        recon = -self.log_likelihood(x, self.decode(z, y))
        return recon, kl

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Reconstruction E[x | z = mean of q(z|x)] in [0, 1]."""
        mu, _ = self.encode(x, y)
        return self.decode_image(mu, y)


def build_model(config: ModelConfig) -> LatentModel:
    """The model ``config`` describes, on the CPU; a ConfigError (before any allocation)
    if it would have more than MAX_PARAMETERS parameters."""
    with torch.device("meta"):
        n = count_parameters(LatentModel(config))
    if n > MAX_PARAMETERS:
        c, h, w = config.image_shape
        raise ConfigError(
            f"a model of {n:,} parameters is too large (at most {MAX_PARAMETERS:,}); "
            f"use fewer --hidden units or smaller images than {c}x{h}x{w}",
            gui=f"A model of {n:,} parameters is too large (at most {MAX_PARAMETERS:,}): "
            "choose a smaller Hidden size, or smaller images under Data.",
        )
    return LatentModel(config)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def flops_per_image(config: ModelConfig) -> int:
    """Multiply-adds x 2 of one forward pass (encoder, then decoder) for one image: in closed
    form for the MLP body, counted over the layers' shapes for the convolutional one."""
    if config.arch != "mlp":
        return counted_flops_per_image(config)
    ncls = config.num_classes if config.conditional else 0
    n_stats = config.latent_dim * (1 if config.model == "ae" else 2)
    macs = (
        (config.n_pixels + ncls) * config.hidden
        + config.hidden * n_stats
        + (config.latent_dim + ncls) * config.hidden
        + config.hidden * config.n_pixels
    )
    return 2 * macs


def counted_flops_per_image(config: ModelConfig) -> int:
    """Multiply-adds x 2 of every linear, convolution and transposed convolution of one
    image's forward pass, read off the layers' shapes in a pass on the meta device (nothing
    is computed or allocated). Element-wise work (activations, the loss) is not counted."""
    with torch.device("meta"):
        model = build_model(config)
    macs = 0

    def count(mod, inputs, out) -> None:
        nonlocal macs
        if isinstance(mod, nn.Linear):
            macs += out.numel() * mod.in_features
        elif isinstance(mod, nn.Conv2d):
            kh, kw = mod.kernel_size
            macs += out.numel() * (mod.in_channels // mod.groups) * kh * kw
        elif isinstance(mod, nn.ConvTranspose2d):
            kh, kw = mod.kernel_size
            macs += inputs[0].numel() * (mod.out_channels // mod.groups) * kh * kw

    kinds = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)
    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, kinds)]
    try:
        x = torch.zeros((1, *config.image_shape), device="meta")
        y = torch.zeros(1, dtype=torch.long, device="meta") if config.conditional else None
        with torch.no_grad():
            mu, _ = model.encode(x, y)
            model.decode(torch.zeros_like(mu), y)
    finally:
        for h in hooks:
            h.remove()
    return 2 * macs
