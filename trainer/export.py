"""Exports: image grids (PNG and other formats), animated GIFs, loss history as CSV.

Grids are laid out with :func:`trainer.data.imaging.tile`, the same layout the window shows, and
written with Pillow: no torchvision, whose import (it pulls in torch's compiler stack) cost
the command line seconds after every run and the window seconds at its first export.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .data.imaging import tile
from .files import JSONFileError, atomic_write, not_written, open_regular, read_json
from .loop.records import History


class ExportError(Exception):
    """An export could not be written; the message names the file."""


IMAGE_FORMATS = {
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".bmp": "bmp",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".webp": "webp",
}
MAX_SIDE = 30_000  # pixels: beyond this an image is a mistake (and gigabytes of memory)
MAX_PIXELS = 100_000_000  # pixels in all (10,000 x 10,000): about 1.2 GB while it is laid out


def _write(path: str | os.PathLike, write) -> Path:
    try:
        return atomic_write(path, write)
    except OSError as e:
        raise ExportError(not_written(path, e)) from None


def write_file(path: str | os.PathLike, blob: bytes) -> Path:
    """``blob`` (a picture another library encoded, say) written as every export is:
    atomically, and only over a regular file. ExportError names the file."""
    return _write(path, lambda f: f.write(blob))


def image_format(path: str | os.PathLike) -> str:
    """The Pillow format a file name asks for; ExportError for a type it cannot write."""
    path = Path(path)
    fmt = IMAGE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        kinds = ", ".join(IMAGE_FORMATS)
        got = path.suffix or "(none)"
        raise ExportError(f"{path}: unsupported image type {got!r}; use {kinds}")
    return fmt


def grid_size(
    n: int, image_hw: tuple[int, int], nrow: int, padding: int = 2, scale: int = 1
) -> tuple[int, int]:
    """(width, height) in pixels of :func:`save_grid`'s image of n images of ``image_hw``,
    known before a single image is decoded."""
    h, w = image_hw
    cols = max(1, min(nrow, n))
    rows = max(1, -(-n // cols))
    return (cols * (w + padding) + padding) * scale, (rows * (h + padding) + padding) * scale


def check_grid_size(path: str | os.PathLike, size: tuple[int, int]) -> None:
    """ExportError if an image of ``size`` (width, height) is too large to make."""
    w, h = size
    if max(size) > MAX_SIDE or w * h > MAX_PIXELS:
        raise ExportError(
            f"{path}: the grid would be {w} x {h} pixels (at most {MAX_SIDE} on a side and "
            f"{MAX_PIXELS // 1_000_000} million in all); use a smaller scale or fewer images"
        )


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
    fmt = image_format(path)
    n, _, h, w = images.shape
    cols = min(nrow, n)
    check_grid_size(path, grid_size(n, (h, w), cols, padding, scale))
    from PIL import Image

    grid = tile(images.detach().float().cpu().clamp(0, 1).numpy(), cols, padding, pad_value)
    pixels = np.clip(np.rint(grid * 255.0), 0, 255).astype(np.uint8)  # (H, W) or (H, W, 3)
    if scale > 1:  # magnified as bytes: a quarter of the memory of floats
        pixels = pixels.repeat(scale, axis=0).repeat(scale, axis=1)

    def write(f):
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format=fmt)
        f.write(buf.getvalue())

    return _write(path, write)


def save_picture(rgb: np.ndarray, path: str | os.PathLike, scale: int = 1) -> Path:
    """Save an (H, W, 3) or (H, W) picture with values in [0, 1], each pixel magnified to a
    ``scale`` x ``scale`` square."""
    from PIL import Image

    path = Path(path)
    fmt = image_format(path)
    h, w = rgb.shape[:2]
    check_grid_size(path, (w * scale, h * scale))
    px = np.clip(np.rint(np.asarray(rgb, dtype=float) * 255.0), 0, 255).astype(np.uint8)
    img = Image.fromarray(px)
    if scale > 1:
        img = img.resize((w * scale, h * scale), Image.NEAREST)

    def write(f):
        img.save(f, format=fmt)

    return _write(path, write)


def save_labelled_rows(
    images: torch.Tensor,
    path: str | os.PathLike,
    ncol: int,
    labels: Sequence[str],
    dimmed: Sequence[bool] = (),
    padding: int = 2,
    scale: int = 1,
) -> Path:
    """Save a grid of ``ncol`` images per row with a text label left of each row; rows whose
    ``dimmed`` flag is set are drawn faded (a traversal's collapsed dimensions)."""
    from PIL import Image, ImageDraw, ImageFont

    path = Path(path)
    fmt = image_format(path)
    n, _, h, w = images.shape
    rows = -(-n // ncol)
    if len(labels) != rows:
        raise ValueError(f"{len(labels)} labels for {rows} rows")
    imgs = images.detach().float().cpu().clamp(0, 1).clone()
    for r, dim in enumerate(dimmed):
        if dim:
            imgs[r * ncol : (r + 1) * ncol] = 0.5 + 0.3 * (imgs[r * ncol : (r + 1) * ncol] - 0.5)
    gw, gh = grid_size(n, (h, w), ncol, padding, scale)
    try:
        font = ImageFont.load_default(size=max(10, min(16, round(0.45 * h * scale))))
    except (TypeError, OSError, ImportError):
        font = ImageFont.load_default()
    margin = int(max(font.getlength(t) for t in labels)) + 12 if labels else 0
    check_grid_size(path, (gw + margin, gh))
    grid = tile(imgs.numpy(), ncol, padding, 0.0)
    pixels = np.clip(np.rint(grid * 255.0), 0, 255).astype(np.uint8)
    body = (
        Image.fromarray(pixels).resize((gw, gh), Image.NEAREST)
        if scale > 1
        else (Image.fromarray(pixels))
    )
    canvas = Image.new(body.mode, (gw + margin, gh), 0)
    canvas.paste(body, (margin, 0))
    draw = ImageDraw.Draw(canvas)
    white = 255 if body.mode == "L" else (255, 255, 255)
    grey = 140 if body.mode == "L" else (140, 140, 140)
    for r, text in enumerate(labels):
        y = (padding + r * (h + padding) + h / 2) * scale
        fill = grey if r < len(dimmed) and dimmed[r] else white
        draw.text((6, y), text, fill=fill, font=font, anchor="lm")

    def write(f):
        canvas.save(f, format=fmt)

    return _write(path, write)


def save_captioned_rows(
    rows: Sequence[torch.Tensor],
    path: str | os.PathLike,
    captions: Sequence[Sequence[str]],
    row_labels: Sequence[str] = (),
    scale: int = 3,
    gap: int = 4,
) -> Path:
    """Save rows of images (each (n, C, H, W) in [0, 1]), every image magnified ``scale``
    times with its caption under it, and a label left of each row (``row_labels``)."""
    from PIL import Image, ImageDraw, ImageFont

    path = Path(path)
    fmt = image_format(path)
    if len(captions) != len(rows) or any(len(c) != len(r) for c, r in zip(captions, rows)):
        raise ValueError("one caption for each image of each row")
    if row_labels and len(row_labels) != len(rows):
        raise ValueError(f"{len(row_labels)} row labels for {len(rows)} rows")
    _n, ch, h, w = rows[0].shape
    cw, chh = w * scale, h * scale
    try:
        font = ImageFont.load_default(size=max(10, min(14, round(0.22 * chh))))
    except (TypeError, OSError, ImportError):
        font = ImageFont.load_default()
    caption_h = int(font.getbbox("0.0g")[3]) + 6
    margin = int(max((font.getlength(t) for t in row_labels), default=0)) + 12 if row_labels else 0
    cols = max(len(r) for r in rows)
    width = margin + cols * (cw + gap) + gap
    height = len(rows) * (chh + caption_h + gap) + gap
    check_grid_size(path, (width, height))
    mode = "L" if ch == 1 else "RGB"
    canvas = Image.new(mode, (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    white = 255 if mode == "L" else (255, 255, 255)
    for r, (imgs, texts) in enumerate(zip(rows, captions)):
        top = gap + r * (chh + caption_h + gap)
        arr = (imgs.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        for c, (a, text) in enumerate(zip(arr, texts)):
            px = a[0] if ch == 1 else np.ascontiguousarray(a.transpose(1, 2, 0))
            tile_img = Image.fromarray(px).resize((cw, chh), Image.NEAREST)
            left = margin + gap + c * (cw + gap)
            canvas.paste(tile_img, (left, top))
            draw.text((left + cw / 2, top + chh + 2), text, fill=white, font=font, anchor="ma")
        if row_labels:
            draw.text((6, top + chh / 2), row_labels[r], fill=white, font=font, anchor="lm")

    def write(f):
        canvas.save(f, format=fmt)

    return _write(path, write)


def save_neighbours(search, index, path: str | os.PathLike, scale: int = 3) -> Path:
    """The picture of a nearest-neighbour search (:func:`trainer.neighbours.search` in
    ``index``): the query's decoded image, then its neighbours by code in one row and by
    pixels in the next, each with its distance under it."""
    q = search.image.reshape(1, *search.image.shape)
    rows, texts = [], []
    for nb in (search.latent, search.pixels):
        rows.append(torch.cat([q, index.thumbnails(nb.rows)]))
        texts.append(["query", *(f"{d:.2f}" for d in nb.distances)])
    return save_captioned_rows(rows, path, texts, ("latent", "pixels"), scale=scale)


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


# -- run folders ------------------------------------------------------------------------------
MANIFEST = "metrics.json"  # written last by ``latent-train train``: the run's list of files


def file_record(path: str | os.PathLike) -> dict:
    """What a run's manifest says of one of its files: its size and SHA-256."""
    h = hashlib.sha256()
    size = 0
    with open_regular(path) as f:  # a named pipe in its place would block
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    return {"bytes": size, "sha256": h.hexdigest()}


def run_problems(folder: str | os.PathLike) -> list[str]:
    """Why ``folder`` is not one complete run of ``latent-train train``; [] when it is.

    A run removes the previous run's manifest (``metrics.json``), writes its files, and
    writes the manifest last, listing every file with its size and SHA-256 (and the
    checkpoint's step). A folder without a manifest, or whose files differ from the ones it
    lists, was left by a run stopped while saving, or was changed afterwards.
    """
    folder = Path(folder)
    if not os.path.lexists(folder / MANIFEST):
        return [f"no {MANIFEST}: the run that wrote this folder did not finish saving"]
    try:
        manifest = read_json(folder / MANIFEST)
    except JSONFileError as e:
        return [f"{MANIFEST} cannot be read ({e.why})"]
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not files:
        return [f"{MANIFEST} lists no files (written by an older version, or not a run folder)"]
    problems = []
    for name, rec in files.items():
        if (
            not isinstance(rec, dict)
            or "\0" in name
            or Path(name).name != name
            or name in ("", ".", "..")
        ):
            problems.append(f"{MANIFEST} has a bad entry for {name!r}")
            continue
        path = folder / name
        try:
            got = file_record(path)
        except FileNotFoundError:
            problems.append(f"{name} is missing")
            continue
        except OSError as e:
            problems.append(f"{name} cannot be read ({e.strerror or e})")
            continue
        if got["bytes"] != rec.get("bytes"):
            problems.append(f"{name} has {got['bytes']} bytes; {MANIFEST} lists {rec.get('bytes')}")
        elif got["sha256"] != rec.get("sha256"):
            problems.append(f"{name} is not the file {MANIFEST} lists (its SHA-256 differs)")
    return problems
