"""The aggregate posterior against the prior: where the encoder puts the test set, and the
"holes" of the prior it leaves empty.

The aggregate posterior q(z) = mean_x q(z | x) is sampled (a few z per test image) and laid
on a plane (:class:`trainer.latent.Plane`) as a density; the prior N(0, I) on the same plane
is a Gaussian in plane coordinates. Cells inside the prior's 2-sigma region where the
aggregate posterior has less than :data:`HOLE_RATIO` of the prior's density are holes:
prior samples land there, but no test image was encoded there, so they decode to images
the decoder never learned. A plain autoencoder's codes leave most of the prior empty.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .evaluate import to_float
from .latent import Plane
from .models import LatentModel

HOLE_RATIO = 0.1  # a cell is empty when q(z) there is below this share of p(z)
HOLE_SIGMAS = 2.0  # holes are looked for inside this many prior standard deviations
HOLE_MIN_EXPECTED = 5.0  # ... and only where the prior expects this many samples (not noise)
HOLE_CELLS = 16  # holes are judged on a coarser grid (16 x 16): a few samples per cell
HIST_BINS = 40


@dataclass(frozen=True)
class PosteriorVsPrior:
    extent: float  # the square [-extent, extent]^2 of plane coordinates
    posterior: np.ndarray  # (bins, bins) density of q(z) on the plane; row i: b, column j: a
    prior: np.ndarray  # (bins, bins) density of p(z) on the plane, same layout
    holes: np.ndarray  # (bins, bins) bool
    hole_mass: float  # the prior's probability in the holes
    outside: float  # share of q's samples outside the square
    means: np.ndarray  # (N, D) posterior means of the images used
    samples: int  # z drawn from q in all

    @property
    def bins(self) -> int:
        return self.posterior.shape[0]

    def centres(self) -> np.ndarray:
        """The cells' centre coordinates along either axis: (bins,)."""
        edges = np.linspace(-self.extent, self.extent, self.bins + 1)
        return (edges[:-1] + edges[1:]) / 2


@torch.no_grad()
def posterior_vs_prior(
    model: LatentModel,
    x: torch.Tensor,
    y: torch.Tensor | None,
    plane: Plane,
    per_image: int = 10,
    bins: int = 64,
    extent: float = 4.0,
    seed: int = 0,
) -> PosteriorVsPrior:
    """Sample the aggregate posterior of images ``x`` and compare it with the prior on
    ``plane``. A plain autoencoder's q is a point at its code (one sample per image)."""
    model.eval()
    dev = next(model.parameters()).device
    y = y if model.num_classes else None
    mu, logvar = model.encode(to_float(x, dev), None if y is None else y.to(dev))
    mu = mu.float().cpu()
    gen = torch.Generator().manual_seed(seed)
    if logvar is None:
        z = mu
    else:
        std = torch.exp(0.5 * logvar.float().cpu())
        eps = torch.randn((per_image, *mu.shape), generator=gen)
        z = (mu + std * eps).reshape(-1, mu.shape[1])
    ab = plane.project(z).numpy()  # (M, 2): a, b
    # the prior in plane coordinates: a = (z - c) . v / s is normal with mean -(c . v) / s
    # and standard deviation 1 / s (the axes are orthonormal)
    m = (-(plane.centre @ plane.axes.T) / plane.scales).numpy().astype(float)
    sd = (1.0 / plane.scales).numpy().astype(float)

    def densities(k: int):
        edges = np.linspace(-extent, extent, k + 1)
        counts, _, _ = np.histogram2d(ab[:, 1], ab[:, 0], bins=[edges, edges])  # rows: b
        cell = (2 * extent / k) ** 2
        c = (edges[:-1] + edges[1:]) / 2
        ga = np.exp(-0.5 * ((c - m[0]) / sd[0]) ** 2) / (sd[0] * np.sqrt(2 * np.pi))
        gb = np.exp(-0.5 * ((c - m[1]) / sd[1]) ** 2) / (sd[1] * np.sqrt(2 * np.pi))
        r2 = ((c[None, :] - m[0]) / sd[0]) ** 2 + ((c[:, None] - m[1]) / sd[1]) ** 2
        return counts / (max(1, len(ab)) * cell), gb[:, None] * ga[None, :], r2, cell

    post, prior, _r2, _cell = densities(bins)
    # holes on a coarser grid, where the prior expects enough samples to tell empty from rare
    cpost, cprior, r2, cell = densities(HOLE_CELLS)
    expected = cprior * cell * len(ab)
    coarse = (
        (r2 <= HOLE_SIGMAS**2) & (expected >= HOLE_MIN_EXPECTED) & (cpost < HOLE_RATIO * cprior)
    )
    f = -(-bins // HOLE_CELLS)
    holes = np.kron(coarse, np.ones((f, f), dtype=bool))[:bins, :bins]
    inside = (np.abs(ab) <= extent).all(1).mean() if len(ab) else 1.0
    return PosteriorVsPrior(
        extent=extent,
        posterior=post,
        prior=prior,
        holes=holes,
        hole_mass=float((cprior * cell)[coarse].sum()),
        outside=float(1 - inside),
        means=mu.numpy(),
        samples=len(ab),
    )


def means_histogram(means: np.ndarray, dim: int, bins: int = HIST_BINS, span: float = 4.0):
    """Density histogram of one dimension's posterior means over [-span, span]: (centres,
    densities), and the share of means outside the span."""
    v = means[:, dim]
    edges = np.linspace(-span, span, bins + 1)
    counts, _ = np.histogram(v, bins=edges)
    width = edges[1] - edges[0]
    dens = counts / max(1, len(v)) / width
    return (edges[:-1] + edges[1:]) / 2, dens, float((np.abs(v) > span).mean()) if len(v) else 0.0


def picture(view: PosteriorVsPrior) -> np.ndarray:
    """An RGB picture (bins, bins, 3) in [0, 1], top row = largest b: the aggregate
    posterior's density (log scale, blue to white), the prior's 1- and 2-sigma contours
    (yellow) and the holes (red)."""
    post, prior = view.posterior, view.prior
    top = max(post.max(), prior.max(), 1e-12)
    lp = np.log10(np.maximum(post, top * 1e-4) / top) / 4 + 1  # 0..1 over four decades
    lp[post <= 0] = 0
    rgb = np.stack([0.15 + 0.85 * lp**2, 0.2 + 0.8 * lp**1.5, 0.35 + 0.65 * lp], -1)
    rgb[post <= 0] = (0.07, 0.08, 0.1)
    rgb[view.holes] = 0.55 * rgb[view.holes] + 0.45 * np.array([0.95, 0.25, 0.25])
    # contours of the prior: cells where its density crosses that of 1 and 2 sigma
    pk = prior.max()
    for k in (1.0, 2.0):
        level = pk * np.exp(-0.5 * k * k)
        above = prior >= level
        edge = above & ~(
            np.roll(above, 1, 0)
            & np.roll(above, -1, 0)
            & np.roll(above, 1, 1)
            & np.roll(above, -1, 1)
        )
        rgb[edge] = (0.98, 0.85, 0.3)
    return np.ascontiguousarray(rgb[::-1])  # row 0 = the top of the plane
