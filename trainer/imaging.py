"""Turning batches of decoded images into one display array (NumPy only, no Qt)."""

from __future__ import annotations

import numpy as np


def tile(images: np.ndarray, ncol: int, padding: int = 1, pad_value: float = 0.15) -> np.ndarray:
    """Lay out N images (N, C, H, W) in [0, 1] as one row-major array for an ImageItem.

    Returns (rows * (H + p) + p, ncol * (W + p) + p) for grey images, or the same with a
    trailing 3 for colour. Row r, column c of the layout holds image ``r * ncol + c``;
    missing cells at the end are left at ``pad_value``.
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4:
        raise ValueError(f"expected (N, C, H, W) images, got shape {images.shape}")
    n, c, h, w = images.shape
    ncol = max(1, min(ncol, n)) if n else max(1, ncol)
    nrow = max(1, -(-n // ncol))
    p = padding
    out = np.full((c, nrow * (h + p) + p, ncol * (w + p) + p), pad_value, dtype=np.float32)
    if n:
        full = np.full((nrow * ncol, c, h, w), pad_value, dtype=np.float32)
        full[:n] = images
        # (rows, cols, C, H, W) -> (C, rows, H, cols, W): one strided copy, no Python loop
        blocks = full.reshape(nrow, ncol, c, h, w).transpose(2, 0, 3, 1, 4)
        if p == 0:
            out[:] = blocks.reshape(c, nrow * h, ncol * w)
        else:
            view = out[:, p:, p:].reshape(c, nrow, h + p, ncol, w + p)
            view[:, :, :h, :, :w] = blocks
    return out[0] if c == 1 else np.ascontiguousarray(out.transpose(1, 2, 0))


def cell_centres(n: int, size: int, padding: int) -> np.ndarray:
    """Pixel coordinate of the centre of each of ``n`` cells along one axis of :func:`tile`."""
    return padding + np.arange(n) * (size + padding) + size / 2.0
