"""Maps of a set of latent codes on a plane: two chosen axes, the principal plane, a custom
plane of two directions, or a non-linear embedding (UMAP, t-SNE).

The linear methods are planes (:class:`~trainer.latent.Plane`): a point of the map lifts back
to a latent code exactly, so the manifold can be decoded on them. The non-linear ones are not:
their ``Projection.plane`` is None, and a point of such a map stands for the codes near it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .latent import Plane, dims_plane, principal_plane

LINEAR = ("axes", "pca", "custom")
NONLINEAR = ("umap", "tsne")
METHODS = ("axes", "pca", "custom", "umap", "tsne")
TITLES = {
    "axes": "two latent dimensions",
    "pca": "principal plane (PCA)",
    "custom": "two directions",
    "umap": "UMAP",
    "tsne": "t-SNE",
}

Progress = Callable[[float, str], None]  # (fraction done 0..1, what is being done)


class MapUnavailable(RuntimeError):
    """The method cannot run here (its library is not installed, or the codes do not allow
    it); the message says why and what to do, in one line."""


class Cancelled(Exception):
    """The caller asked a running map to stop."""


@dataclass(frozen=True)
class Projection:
    """A map of N codes: ``xy`` (N, 2) float32, and for a linear method the plane it is."""

    method: str
    xy: np.ndarray
    names: tuple[str, str]  # the axes as people read them
    plane: Plane | None  # None for a non-linear map: its points do not lift back exactly
    seconds: float = 0.0

    @property
    def invertible(self) -> bool:
        return self.plane is not None


def custom_plane(u, v, centre) -> Plane:
    """The plane through ``centre`` (D,) spanned by directions ``u`` and ``v`` (D,): its first
    axis along u, its second along the part of v orthogonal to u, each scaled to the length
    of its direction (so a step of 1 on the map is one whole direction)."""
    u = torch.as_tensor(np.asarray(u), dtype=torch.float64).reshape(-1)
    v = torch.as_tensor(np.asarray(v), dtype=torch.float64).reshape(-1)
    nu = float(u.norm())
    if nu < 1e-9:
        raise MapUnavailable("the first direction is zero: its two groups have the same mean")
    e1 = u / nu
    w = v - (v @ e1) * e1
    nw = float(w.norm())
    if nw < 1e-6 * max(1.0, float(v.norm())):
        raise MapUnavailable("the two directions are parallel: they span no plane")
    e2 = w / nw
    axes = torch.stack([e1, e2]).float()
    scales = torch.tensor([nu, nw], dtype=torch.float32)
    c = torch.as_tensor(np.asarray(centre), dtype=torch.float32).reshape(-1)
    return Plane(c, axes, scales, ("direction 1", "direction 2 (orthogonal part)"))


def project(
    codes: np.ndarray,
    method: str,
    *,
    dims: tuple[int, int] = (0, 1),
    axes: tuple | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> Projection:
    """Map ``codes`` (N, D) to 2-D with ``method`` (one of :data:`METHODS`).

    ``dims`` picks the latent dimensions of "axes"; ``axes`` gives the two directions (D,)
    of "custom". ``progress`` is called with the fraction done; ``cancelled`` is polled, and
    when it returns True the map stops with :class:`Cancelled`.
    """
    if method not in METHODS:
        raise ValueError(f"map method must be one of {', '.join(METHODS)}, not {method!r}")
    codes = np.asarray(codes, dtype=np.float32)
    if codes.ndim != 2 or len(codes) == 0:
        raise MapUnavailable(f"a map needs codes of shape (N, D), not {codes.shape}")
    t0 = time.perf_counter()
    if method == "axes":
        d = codes.shape[1]
        if not all(0 <= k < d for k in dims):
            raise MapUnavailable(f"dimensions {dims} do not exist in a {d}-D latent")
        plane = dims_plane(torch.zeros(d), dims)
    elif method == "pca":
        try:
            plane = principal_plane(codes)
        except ValueError as e:
            raise MapUnavailable(str(e)) from None
    elif method == "custom":
        if axes is None or len(axes) != 2:
            raise MapUnavailable("a custom map needs two directions")
        plane = custom_plane(axes[0], axes[1], codes.mean(0))
    else:
        raise MapUnavailable(f"{TITLES[method]} maps are not available yet")
    xy = plane.project(torch.from_numpy(codes)).numpy().astype(np.float32)
    if progress is not None:
        progress(1.0, "done")
    return Projection(method, xy, plane.names, plane, time.perf_counter() - t0)
