"""Finding the latent map's points under the mouse: a grid of buckets over their positions.

Picking among 70,000 points must take well under a millisecond (a hover follows the mouse):
the points are sorted by grid cell once per map, and a query looks only at the cells around
the mouse. A lasso tests the points in its bounding box with the even-odd rule, in NumPy.
"""

from __future__ import annotations

import numpy as np

PER_CELL = 4  # points per grid cell on average
MAX_CELLS = 400  # a query wider than this many cells tests every point instead


class GridIndex:
    """Points ``xy`` (N, 2), bucketed on a regular grid over their bounding box."""

    def __init__(self, xy: np.ndarray) -> None:
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        self.xy = xy
        ok = np.isfinite(xy).all(1)
        self.valid = np.flatnonzero(ok)
        n = len(self.valid)
        if n == 0:
            self.lo, self.cell, self.shape = np.zeros(2), np.ones(2), (1, 1)
            self.order = np.zeros(0, dtype=np.int64)
            self.starts = np.zeros(2, dtype=np.int64)
            return
        p = xy[self.valid]
        self.lo = p.min(0)
        span = np.maximum(p.max(0) - self.lo, 1e-9)
        side = max(1, int(np.sqrt(n / PER_CELL)))
        self.shape = (side, side)
        self.cell = span / side * (1 + 1e-9)
        ij = self._cells(p)
        key = ij[:, 0] * side + ij[:, 1]
        order = np.argsort(key, kind="stable")
        self.order = self.valid[order]
        self.starts = np.searchsorted(key[order], np.arange(side * side + 1))

    def _cells(self, p: np.ndarray) -> np.ndarray:
        ij = np.floor((p - self.lo) / self.cell).astype(np.int64)
        return np.clip(ij, 0, np.array(self.shape) - 1)

    def _candidates(self, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
        """Indices of the points in the cells that meet the box [x0, x1] x [y0, y1]."""
        if len(self.order) == 0:
            return self.order
        (i0, j0), (i1, j1) = self._cells(np.array([[x0, y0], [x1, y1]]))
        if (i1 - i0 + 1) * (j1 - j0 + 1) > MAX_CELLS:
            return self.valid
        side = self.shape[1]
        parts = [
            self.order[self.starts[i * side + j0] : self.starts[i * side + j1 + 1]]
            for i in range(i0, i1 + 1)
        ]
        return np.concatenate(parts) if parts else self.order[:0]

    def nearest(self, x: float, y: float, radius: float) -> int:
        """The point nearest (x, y) within ``radius``, or -1."""
        c = self._candidates(x - radius, y - radius, x + radius, y + radius)
        if len(c) == 0:
            return -1
        d2 = ((self.xy[c] - (x, y)) ** 2).sum(1)
        k = int(d2.argmin())
        return int(c[k]) if d2[k] <= radius * radius else -1

    def in_box(self, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
        """The points inside the box, sorted."""
        c = self._candidates(x0, y0, x1, y1)
        p = self.xy[c]
        keep = (p[:, 0] >= x0) & (p[:, 0] <= x1) & (p[:, 1] >= y0) & (p[:, 1] <= y1)
        return np.sort(c[keep])

    def in_polygon(self, poly: np.ndarray) -> np.ndarray:
        """The points inside the closed polygon ``poly`` (M, 2) (even-odd rule), sorted."""
        poly = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
        poly = poly[np.isfinite(poly).all(1)]
        if len(poly) < 3:
            return np.zeros(0, dtype=np.int64)
        (x0, y0), (x1, y1) = poly.min(0), poly.max(0)
        c = self.in_box(x0, y0, x1, y1)
        return c[inside_polygon(self.xy[c], poly)]


def inside_polygon(p: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """(N,) bool: which points ``p`` (N, 2) are inside the polygon ``poly`` (M, 2)."""
    x, y = p[:, 0], p[:, 1]
    inside = np.zeros(len(p), dtype=bool)
    xa, ya = poly[:, 0], poly[:, 1]
    xb, yb = np.roll(xa, -1), np.roll(ya, -1)
    for k in range(len(poly)):  # one vectorised pass per edge
        crosses = (ya[k] > y) != (yb[k] > y)
        if not crosses.any():
            continue
        t = (y - ya[k]) / (yb[k] - ya[k] + (yb[k] == ya[k]))
        inside ^= crosses & (x < xa[k] + t * (xb[k] - xa[k]))
    return inside
