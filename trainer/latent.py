"""Walking the latent space: the Figure 4 grid, traversals, interpolation, prior samples."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .config import COLLAPSED_KL, TRAVERSAL_COLUMNS  # noqa: F401 - shown to users of latent
from .directions import add_direction, mean_difference
from .models import LatentModel


def inverse_cdf_grid(n: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The n x n latent grid of Kingma & Welling (2014), Figure 4.

    Linearly spaced points of the open unit square, p_i = (i + 1/2) / n, are mapped through
    the inverse CDF of the standard Gaussian, so that the grid is evenly spaced in
    probability mass under the prior rather than in z.

    Returns
    -------
    Tensor of shape (n, n, 2) with ``grid[i, j] = (Phi^-1(p_i), Phi^-1(p_j))``
    (``meshgrid`` 'ij' order). Both coordinates increase with their index.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"grid size must be a positive integer, not {n!r}")
    p = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    z = torch.special.ndtri(p).to(dtype)  # (n,)
    gi, gj = torch.meshgrid(z, z, indexing="ij")
    return torch.stack([gi, gj], dim=-1)


def grid_latents(
    n: int, dims: tuple[int, int], base: torch.Tensor, latent_dim: int | None = None
) -> torch.Tensor:
    """The Figure 4 grid placed on two latent dimensions of a larger latent.

    Laid out for display, row-major: row r (top to bottom) holds ``z[dims[1]]`` decreasing,
    column c (left to right) holds ``z[dims[0]]`` increasing, every other dimension is taken
    from ``base`` (shape (D,)). Returns (n * n, D).
    """
    base = base.reshape(-1)
    d = latent_dim if latent_dim is not None else base.numel()
    dx, dy = dims
    if not (0 <= dx < d and 0 <= dy < d):
        raise ValueError(f"dimensions {dims} are outside a latent of size {d}")
    if dx == dy and d > 1:
        raise ValueError("the two grid dimensions must differ")
    g = inverse_cdf_grid(n, dtype=base.dtype).to(base.device)  # (n, n, 2)
    values = g[:, 0, 0]  # (n,) increasing
    z = base.expand(n, n, d).clone()
    z[:, :, dx] = values.view(1, n)  # along columns
    if dy != dx:
        z[:, :, dy] = values.flip(0).view(n, 1)  # top row = largest
    return z.reshape(n * n, d)


def traverse(base: torch.Tensor, dim: int, values: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """Latents that vary one dimension over ``values`` and keep the rest of ``base``: (n, D)."""
    base = base.reshape(-1)
    values = torch.as_tensor(values, dtype=base.dtype, device=base.device)
    z = base.expand(values.numel(), base.numel()).clone()
    z[:, dim] = values
    return z


def traversal_values(columns: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The Figure 4 spacing on one axis: Phi^-1((i + 1/2) / columns), increasing: (columns,)."""
    if not isinstance(columns, int) or columns < 1:
        raise ValueError(f"columns must be a positive integer, not {columns!r}")
    p = (torch.arange(columns, dtype=torch.float64) + 0.5) / columns
    return torch.special.ndtri(p).to(dtype)


def cdf_cell(value: float, n: int) -> int:
    """Which of the n cells of the Figure 4 spacing holds ``value`` (the cell whose slab of
    prior probability it falls in)."""
    prob = 0.5 * (1 + math.erf(value / math.sqrt(2)))
    return int(min(n - 1, max(0, math.floor(prob * n))))


def kl_order(kl_per_dim) -> list[int]:
    """Dimensions from most to least informative (largest KL first; ties by index)."""
    kl = np.asarray(kl_per_dim, dtype=float)
    return [int(i) for i in np.argsort(-kl, kind="stable")]


@dataclass(frozen=True)
class Traversal:
    """One row per latent dimension, each sweeping that dimension over ``values`` while the
    others stay at ``base``."""

    dims: list[int]  # the dimension of each row, top to bottom
    values: torch.Tensor  # (C,) the values swept, left to right
    kl: np.ndarray | None  # (R,) each row's KL (nats), when known
    collapsed: list[bool]  # rows whose KL is below COLLAPSED_KL
    images: torch.Tensor  # (R * C, ch, H, W), row-major

    @property
    def columns(self) -> int:
        return len(self.values)


def traversal(
    model: LatentModel,
    base: torch.Tensor,
    y: int | None = None,
    columns: int = 11,
    kl_per_dim=None,
) -> Traversal:
    """Decode the traversal of every latent dimension in one batch.

    With ``kl_per_dim`` the rows are ordered by it (most informative first) and rows below
    :data:`COLLAPSED_KL` are marked collapsed; without it they keep the index order.
    """
    base = base.reshape(-1).float()
    d = model.latent_dim
    if base.numel() != d:
        raise ValueError(f"z has {base.numel()} values; the model's latent has {d}")
    kl = None if kl_per_dim is None else np.asarray(kl_per_dim, dtype=float)
    if kl is not None and kl.shape != (d,):
        raise ValueError(f"{kl.shape[0] if kl.ndim else 0} KL values for a latent of {d}")
    dims = kl_order(kl) if kl is not None else list(range(d))
    values = traversal_values(columns)
    z = base.expand(d, columns, d).clone()  # (R, C, D)
    for r, dim in enumerate(dims):
        z[r, :, dim] = values
    images = decode_batch(model, z.reshape(-1, d), y)
    row_kl = None if kl is None else kl[dims]
    collapsed = [bool(v < COLLAPSED_KL) for v in row_kl] if row_kl is not None else [False] * d
    return Traversal(dims, values, row_kl, collapsed, images)


@dataclass(frozen=True)
class Plane:
    """A plane in latent space, with coordinates (a, b):
    ``z = centre + a * scales[0] * axes[0] + b * scales[1] * axes[1]``.

    Two latent dimensions through a point (:func:`dims_plane`: unit scales, the point's
    other values kept), or the principal plane of a set of codes (:func:`principal_plane`:
    centred at their mean, each axis scaled by the codes' standard deviation along it).
    """

    centre: torch.Tensor  # (D,)
    axes: torch.Tensor  # (2, D), orthonormal rows
    scales: torch.Tensor  # (2,)
    names: tuple[str, str]  # the axes as people read them: "z3", "PC1 (σ = 1.42)"

    def project(self, z: torch.Tensor) -> torch.Tensor:
        """(N, D) latents -> (N, 2) plane coordinates (the nearest point of the plane)."""
        z = torch.as_tensor(z, dtype=self.centre.dtype).reshape(-1, self.centre.numel())
        return ((z - self.centre) @ self.axes.T) / self.scales

    def lift(self, ab: torch.Tensor) -> torch.Tensor:
        """(N, 2) plane coordinates -> (N, D) latents."""
        ab = torch.as_tensor(ab, dtype=self.centre.dtype).reshape(-1, 2)
        return self.centre + (ab * self.scales) @ self.axes

    def grid(self, n: int) -> torch.Tensor:
        """The Figure 4 grid laid on the plane, in display order (as :func:`grid_latents`):
        row r holds b decreasing, column c holds a increasing. (n * n, D)."""
        v = traversal_values(n, self.centre.dtype)
        a = v.view(1, n).expand(n, n)
        b = v.flip(0).view(n, 1).expand(n, n)
        return self.lift(torch.stack([a, b], dim=-1).reshape(-1, 2))


MAP_POINTS = 2000  # test images encoded for a latent map and its principal plane


def map_subset(n: int, k: int = MAP_POINTS) -> np.ndarray:
    """The rows of an n-image test set that a latent map shows: a seeded, sorted choice of
    at most ``k`` (the window and ``latent-train manifold --plane pca`` use the same)."""
    rng = np.random.default_rng(0)
    return np.sort(rng.choice(n, size=min(n, k), replace=False))


def dims_plane(z: torch.Tensor, dims: tuple[int, int]) -> Plane:
    """The plane of latent dimensions ``dims`` through ``z`` (its other values kept)."""
    z = z.reshape(-1).float()
    d = z.numel()
    dx, dy = dims
    centre = z.clone()
    centre[dx] = 0.0
    axes = torch.zeros(2, d)
    axes[0, dx] = 1.0
    if dy != dx:
        centre[dy] = 0.0
        axes[1, dy] = 1.0
    return Plane(centre, axes, torch.ones(2), (f"z{dx}", f"z{dy}"))


def principal_plane(codes) -> Plane:
    """The plane of the first two principal components of ``codes`` (N, D): centred at their
    mean, each axis in units of the codes' standard deviation along it. Signs are fixed
    (each axis's largest entry positive), so a small change in the codes cannot flip it."""
    c = torch.as_tensor(np.asarray(codes), dtype=torch.float64)
    n, d = c.shape
    if d < 2 or n < 3:
        raise ValueError("a principal plane needs a latent of 2 or more and at least 3 codes")
    mean = c.mean(0)
    _u, sv, vt = torch.linalg.svd(c - mean, full_matrices=False)
    axes = vt[:2].clone()  # (2, D)
    for k in range(2):
        if axes[k, axes[k].abs().argmax()] < 0:
            axes[k] = -axes[k]
    std = (sv[:2] / math.sqrt(max(1, n - 1))).clamp_min(1e-6)
    names = tuple(f"PC{k + 1} (σ = {float(std[k]):.2f})" for k in range(2))
    return Plane(mean.float(), axes.float(), std.float(), names)  # type: ignore[arg-type]


@torch.no_grad()
def arithmetic(
    model: LatentModel, x: torch.Tensor, y: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Latent arithmetic on three images ``x`` (3, C, H, W; uint8 or floats in [0, 1]):
    z = z_a - z_b + z_c with each z the posterior mean (an autoencoder's code).

    Returns the row to show, (4, C, H, W): the three inputs and the decoded result, and the
    result's z (D,). A conditional model encodes each image with its own class (``y``, (3,))
    and decodes the result with c's.
    """
    xf = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    p = next(model.parameters())
    yy = None if not model.num_classes else torch.as_tensor(y).long().to(p.device)
    mu, _ = model.encode(xf.to(p.device, p.dtype), yy)
    # a - b is the direction between two groups of one image each: one implementation
    mu = mu.float().cpu()
    z = add_direction(mu[2], mean_difference(mu[0:1], mu[1:2]))
    out = decode_batch(model, z.reshape(1, -1), None if yy is None else int(yy[2]))
    return torch.cat([xf.cpu().clamp(0, 1), out]), z


def lerp(z0: torch.Tensor, z1: torch.Tensor, steps: int) -> torch.Tensor:
    """Linear interpolation, endpoints included: (steps, D)."""
    if steps < 2:
        raise ValueError("interpolation needs at least 2 steps")
    t = torch.linspace(0, 1, steps, dtype=z0.dtype, device=z0.device).unsqueeze(1)
    return (1 - t) * z0.reshape(1, -1) + t * z1.reshape(1, -1)


def slerp(z0: torch.Tensor, z1: torch.Tensor, steps: int) -> torch.Tensor:
    """Spherical interpolation (White, 2016), endpoints included: (steps, D).

    Moves along the great circle between the two directions (the usual formula, applied to
    the vectors themselves, so the norm also changes smoothly); falls back to ``lerp`` when
    the two are (anti)parallel or one is zero.
    """
    if steps < 2:
        raise ValueError("interpolation needs at least 2 steps")
    # float64 on the CPU (Apple MPS has no float64); a path of a few points costs nothing
    a, b = z0.reshape(-1).double().cpu(), z1.reshape(-1).double().cpu()
    na, nb = a.norm(), b.norm()
    if na < 1e-12 or nb < 1e-12:
        return lerp(z0, z1, steps)
    cos = torch.clamp(torch.dot(a / na, b / nb), -1.0, 1.0)
    omega = torch.arccos(cos)
    if omega < 1e-6 or torch.pi - omega < 1e-6:
        return lerp(z0, z1, steps)
    t = torch.linspace(0, 1, steps, dtype=torch.float64).unsqueeze(1)
    so = torch.sin(omega)
    z = (torch.sin((1 - t) * omega) / so) * a + (torch.sin(t * omega) / so) * b
    return z.to(device=z0.device, dtype=z0.dtype)


@torch.no_grad()
def decode_batch(
    model: LatentModel, z: torch.Tensor, y: torch.Tensor | int | None = None
) -> torch.Tensor:
    """Decode many latents in one forward pass: (N, D) -> mean images (N, C, H, W) on the CPU.

    ``y`` may be one class for all, a tensor of N classes, or None for unconditional models.
    """
    p = next(model.parameters())
    z = z.to(device=p.device, dtype=p.dtype)
    labels = None
    if model.num_classes:
        if y is None:
            raise ValueError("a conditional model needs a class to decode")
        labels = torch.as_tensor(y, device=p.device).long().expand(z.shape[0]).contiguous()
        if int(labels.min()) < 0 or int(labels.max()) >= model.num_classes:
            raise ValueError(f"class must be 0 to {model.num_classes - 1}")
    return model.decode_image(z, labels).float().cpu()


def class_rows(z: torch.Tensor, classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One row per class with the same latents: ``z`` ((n, D), or one (D,)) under each of the
    first ``classes`` classes, class by class. Returns the (classes * n, D) latents and their
    labels (0, ..., 0, 1, ..., 1, ...), to decode with :func:`decode_batch`."""
    z = z.reshape(-1, z.shape[-1])
    return z.repeat(classes, 1), torch.arange(classes).repeat_interleave(len(z))


@torch.no_grad()
def sample_prior(
    model: LatentModel,
    n: int,
    y: torch.Tensor | int | None = None,
    mode: str = "mean",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Ancestral sampling: z ~ N(0, I), then x ~ p(x | z).

    ``mode='mean'`` returns E[x | z] (the usual picture); ``mode='sample'`` draws the
    pixels themselves (Bernoulli or Gaussian noise, clamped to [0, 1]). Returns (n, C, H, W).
    """
    if mode not in ("mean", "sample"):
        raise ValueError(f"mode must be 'mean' or 'sample', not {mode!r}")
    z = torch.randn(n, model.latent_dim, generator=generator)
    mean = decode_batch(model, z, y)
    if mode == "mean":
        return mean
    if model.config.likelihood == "bernoulli":
        return torch.bernoulli(mean, generator=generator)
    std = float(model.decoder_log_std().exp())
    noise = torch.randn(mean.shape, generator=generator) * std
    return (mean + noise).clamp(0, 1)
