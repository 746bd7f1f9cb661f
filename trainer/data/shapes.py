"""The built-in shapes (``--dataset shapes``): drawn, seeded, with no files."""

from __future__ import annotations

import numpy as np

from .arrays import ImageData, _finish, _split
from .spec import DataSpec, Progress

SHAPE_CLASSES = ["circle", "square", "triangle", "ring", "cross"]


SHAPES_CHUNK_BYTES = 8 << 20  # shapes are drawn this many bytes of float32 per array at a time


def make_shapes(
    n: int, size: int = 28, seed: int = 0, progress: Progress | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A labelled, procedurally generated set of anti-aliased white shapes on black.

    Classes: circle, square, triangle, ring, cross, each with random position, size and
    rotation. Vectorised over signed distance fields (no per-image Python work), a few
    thousand images at a time so that memory stays bounded and ``progress`` is called
    between chunks. Returns (uint8 images (n, 1, size, size), int64 labels (n,)).
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(SHAPE_CLASSES), n)
    radius = rng.uniform(0.22, 0.36, n)[:, None, None]  # in units of the image side
    cx, cy = rng.uniform(-0.12, 0.12, (2, n))[..., None, None]
    theta = rng.uniform(0, 2 * np.pi, n)[:, None, None]
    radius, cx, cy, theta = (a.astype(np.float32) for a in (radius, cx, cy, theta))
    t = ((np.arange(size) + 0.5) / size - 0.5).astype(np.float32)
    gy, gx = np.meshgrid(t, t, indexing="ij")  # (size, size)
    x = np.empty((n, 1, size, size), dtype=np.uint8)
    step = max(1, SHAPES_CHUNK_BYTES // (4 * size * size))
    for i in range(0, n, step):
        j = min(n, i + step)
        x[i:j, 0] = _shape_chunk(labels[i:j], radius[i:j], cx[i:j], cy[i:j], theta[i:j], gx, gy)
        if progress is not None:
            progress(j / n, f"{j:,} of {n:,} shapes")
    return x, labels.astype(np.int64)


def _shape_chunk(labels, radius, cx, cy, theta, gx, gy) -> np.ndarray:
    size = gx.shape[0]
    px, py = gx[None] - cx, gy[None] - cy
    c, s = np.cos(theta), np.sin(theta)
    u, v = c * px + s * py, -s * px + c * py  # rotated coordinates
    r = np.hypot(u, v)
    sdf = np.empty((len(labels), size, size), dtype=np.float32)
    for k in range(len(SHAPE_CLASSES)):
        m = labels == k
        if not m.any():
            continue
        uu, vv, rr, R = u[m], v[m], r[m], radius[m]
        if k == 0:  # circle
            d = rr - R
        elif k == 1:  # square
            d = np.maximum(np.abs(uu), np.abs(vv)) - 0.75 * R
        elif k == 2:  # equilateral triangle: intersection of three half-planes
            d = (
                np.max(
                    [
                        np.cos(a) * uu + np.sin(a) * vv
                        for a in (np.pi / 2, 7 * np.pi / 6, 11 * np.pi / 6)
                    ],
                    axis=0,
                )
                - 0.55 * R
            )
        elif k == 3:  # ring
            d = np.abs(rr - 0.8 * R) - 0.18 * R
        else:  # cross: union of two bars
            d = np.minimum(_bar(uu, vv, R), _bar(vv, uu, R))
        sdf[m] = d
    pixel = 1.0 / size
    img = np.clip(0.5 - sdf / pixel, 0.0, 1.0)  # one-pixel anti-aliased edge
    return np.rint(img * 255).astype(np.uint8)


def _bar(a: np.ndarray, b: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Signed distance to a bar of half-length r and half-width 0.28 r along a."""
    return np.maximum(np.abs(a) - r, np.abs(b) - 0.28 * r)


def load_shapes(spec: DataSpec, progress: Progress | None = None) -> ImageData:
    x, y = make_shapes(spec.shapes_count, spec.image_size, spec.seed, progress)
    xtr, xte, ytr, yte = _split(x, y, spec.test_fraction, spec.seed + 1)
    return _finish("shapes", xtr, xte, ytr, yte, SHAPE_CLASSES)
