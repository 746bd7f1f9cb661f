"""Exports: image grids (PNG and other formats), animated GIFs, loss history as CSV.

Grids are laid out with :func:`trainer.imaging.tile`, the same layout the window shows, and
written with Pillow: no torchvision, whose import (it pulls in torch's compiler stack) cost
the command line seconds after every run and the window seconds at its first export.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .files import atomic_write
from .imaging import tile
from .loop import History


class ExportError(Exception):
    """An export could not be written; the message names the file."""


IMAGE_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".bmp": "bmp",
                 ".tif": "tiff", ".tiff": "tiff", ".webp": "webp"}  # fmt: skip
MAX_SIDE = 30_000  # pixels: beyond this an image is a mistake (and gigabytes of memory)


def _write(path: str | os.PathLike, write) -> Path:
    try:
        return atomic_write(path, write)
    except OSError as e:
        raise ExportError(f"{path}: could not be written ({e.strerror or e})") from None


def _image_format(path: Path) -> str:
    fmt = IMAGE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        kinds = ", ".join(IMAGE_FORMATS)
        got = path.suffix or "(none)"
        raise ExportError(f"{path}: unsupported image type {got!r}; use {kinds}")
    return fmt


def grid_image(images: torch.Tensor, nrow: int, padding: int = 2, pad_value: float = 0.0):
    """(N, C, H, W) in [0, 1] -> one (C, H', W') grid tensor, ``nrow`` images per row."""
    arr = tile(images.detach().float().cpu().clamp(0, 1).numpy(), nrow, padding, pad_value)
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(arr))


def save_grid(
    images: torch.Tensor,
    path: str | os.PathLike,
    nrow: int,
    padding: int = 2,
    pad_value: float = 0.0,
    scale: int = 1,
) -> Path:
    """Save N images (N, C, H, W) in [0, 1] as one PNG grid with ``nrow`` images per row.

    The PNG measures nrow * (W + padding) + padding pixels across (times ``scale``).
    """
    if images.ndim != 4:
        raise ValueError(f"expected images of shape (N, C, H, W), got {tuple(images.shape)}")
    path = Path(path)
    fmt = _image_format(path)
    n, _, h, w = images.shape
    cols = min(nrow, n)
    rows = -(-n // cols)
    size = (cols * (w + padding) + padding) * scale, (rows * (h + padding) + padding) * scale
    if max(size) > MAX_SIDE:
        raise ExportError(
            f"{path}: the grid would be {size[0]} x {size[1]} pixels; "
            "use a smaller scale or fewer images"
        )
    from PIL import Image

    grid = tile(images.detach().float().cpu().clamp(0, 1).numpy(), cols, padding, pad_value)
    if scale > 1:
        grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    pixels = np.clip(np.rint(grid * 255.0), 0, 255).astype(np.uint8)  # (H, W) or (H, W, 3)

    def write(f):
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format=fmt)
        f.write(buf.getvalue())

    return _write(path, write)


def save_mosaic(
    groups: Sequence[torch.Tensor],
    path: str | os.PathLike,
    nrow: int,
    ncol_groups: int,
    padding: int = 0,
    gap: int = 6,
    scale: int = 1,
) -> Path:
    """Save several image grids (each (N, C, H, W), ``nrow`` per row) side by side as one PNG.

    Used for a conditional model's manifold: one grid per class, ``ncol_groups`` per row.
    """
    grids = torch.stack([grid_image(g.clamp(0, 1), nrow=nrow, padding=padding) for g in groups])
    return save_grid(grids, path, nrow=ncol_groups, padding=gap, pad_value=1.0, scale=scale)


def save_gif(
    frames: torch.Tensor | Sequence[torch.Tensor],
    path: str | os.PathLike,
    fps: float = 10.0,
    scale: int = 4,
    bounce: bool = True,
) -> Path:
    """Save frames (T, C, H, W) in [0, 1] as a looping animated GIF.

    ``bounce`` plays the frames forward and then back, so an interpolation loops smoothly.
    """
    from PIL import Image

    path = Path(path)
    if path.suffix.lower() != ".gif":
        raise ExportError(f"{path}: an animation is saved as .gif, not {path.suffix or '(none)'!r}")
    t = torch.stack(list(frames)) if not torch.is_tensor(frames) else frames
    if t.ndim != 4 or len(t) < 1:
        raise ValueError("expected frames of shape (T, C, H, W)")
    arr = (t.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    arr = arr.repeat(scale, axis=2).repeat(scale, axis=3)
    mode_frames = []
    for a in arr:
        img = a[0] if a.shape[0] == 1 else np.transpose(a, (1, 2, 0))
        mode_frames.append(Image.fromarray(np.ascontiguousarray(img)))
    if bounce and len(mode_frames) > 2:
        mode_frames = mode_frames + mode_frames[-2:0:-1]

    def write(f):
        mode_frames[0].save(
            f,
            format="GIF",
            save_all=True,
            append_images=mode_frames[1:],
            duration=max(20, round(1000 / fps)),
            loop=0,
        )

    return _write(path, write)


def write_history_csv(history: History, path: str | os.PathLike) -> Path:
    """Loss history as CSV: one row per snapshot, with the test loss filled in at epoch ends."""
    cols = list(History.STEP_KEYS) + ["test_nelbo", "test_recon", "test_kl"]
    by_step = {e["step"]: e for e in history.epochs}
    text = io.StringIO()
    w = csv.writer(text)
    w.writerow(cols)
    seen = set()
    for row in history.steps:
        e = by_step.get(row["step"], {})
        seen.add(row["step"]) if e else None
        w.writerow(
            [row.get(k, "") for k in History.STEP_KEYS]
            + [e.get("test_nelbo", ""), e.get("test_recon", ""), e.get("test_kl", "")]
        )
    for step, e in sorted(by_step.items()):  # epochs with no step row of their own
        if step not in seen:
            w.writerow(
                [step, e["epoch"]]
                + [""] * (len(History.STEP_KEYS) - 2)
                + [e["test_nelbo"], e["test_recon"], e["test_kl"]]
            )
    return _write(path, lambda f: f.write(text.getvalue().encode()))
