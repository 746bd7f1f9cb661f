"""Turning batches of decoded images into one display array (NumPy only, no Qt)."""

from __future__ import annotations

import colorsys

import numpy as np

# Ten well-separated class colours (Tableau 10, brightened for a dark background): the map,
# the film and every legend colour class k alike
CLASS_COLOURS = [
    "#4e9cff", "#ff9f40", "#5ad17f", "#ff6b6b", "#b48cff",
    "#c49a6c", "#ff8fd0", "#b0b6c3", "#e6d85a", "#4fd6e0",
]  # fmt: skip


def class_rgb(k: int) -> tuple[int, int, int]:
    """Class ``k``'s colour as (r, g, b) 0-255; past the ten, evenly spaced hues."""
    if 0 <= k < len(CLASS_COLOURS):
        h = CLASS_COLOURS[k]
        return int(h[1:3], 16), int(h[3:5], 16), int(h[5:7], 16)
    r, g, b = colorsys.hsv_to_rgb((k * 0.618034) % 1.0, 0.45, 0.9)
    return round(r * 255), round(g * 255), round(b * 255)


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


class ImageError(Exception):
    """A file or picture that cannot be used as a model's input; the message says why."""


IMAGE_FORMATS = "PNG, JPEG, BMP, GIF, TIFF or WebP"
MAX_INPUT_PIXELS = 50_000_000  # a dropped picture larger than this is refused, not decoded


def prepare_image(source, image_shape: tuple[int, int, int], dark_background: bool):
    """A picture (a path, bytes or a PIL image) made into one model input the way the
    model's data is: ``(1, C, H, W)`` uint8, and a sentence saying what was done.

    The picture is fitted into H x W keeping its aspect (the rest filled with its own
    background), converted to greyscale or colour as the model takes, and inverted when its
    background is light but the model's images are dark (MNIST's white strokes on black).
    """
    import io
    import warnings
    from pathlib import Path

    from PIL import Image, UnidentifiedImageError

    c, h, w = image_shape
    name = Path(source).name if isinstance(source, str | Path) else "the picture"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            if isinstance(source, Image.Image):
                im = source.copy()
            elif isinstance(source, bytes | bytearray):
                im = Image.open(io.BytesIO(source))
            else:
                im = Image.open(source)
            if im.width * im.height > MAX_INPUT_PIXELS:
                raise ImageError(f"{name}: too large a picture ({im.width} x {im.height})")
            im.load()
    except (UnidentifiedImageError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as e:  # fmt: skip
        raise ImageError(f"{name}: not a picture Latent Explorer can read ({IMAGE_FORMATS}): "
                         f"{str(e).split(chr(10))[0]}") from None  # fmt: skip
    except OSError as e:
        raise ImageError(f"{name}: cannot be read ({e.strerror or e})") from None
    done = []
    if im.mode in ("RGBA", "LA", "P"):  # transparency: on white, as a page would show it
        im = im.convert("RGBA")
        page = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(page, im)
    grey = im.convert("L")
    arr = np.asarray(grey, dtype=np.float32) / 255.0
    border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
    light = float(np.median(border)) > 0.5
    was = im.mode
    im = im.convert("L" if c == 1 else "RGB")
    if was not in ("L", "1") and c == 1:
        done.append("made greyscale")
    elif was in ("L", "1") and c == 3:
        done.append("made colour")
    ow, oh = im.size
    # a drawing on a page: crop to what is drawn and leave a margin, as MNIST's digits sit in
    # a 20 x 20 box of their 28 x 28 (a photo, which fills its frame, is kept whole)
    ink = np.abs(arr - (1.0 if light else 0.0)) > 0.15
    box_w, box_h = w, h
    if ink.any():
        rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
        x0, x1, y0, y1 = cols[0], cols[-1] + 1, rows[0], rows[-1] + 1
        if (x1 - x0) * (y1 - y0) < 0.8 * ow * oh:
            im = im.crop((int(x0), int(y0), int(x1), int(y1)))
            box_w, box_h = max(1, round(w * 20 / 28)), max(1, round(h * 20 / 28))
            done.append("cropped to what is drawn")
    cw, ch = im.size
    scale = min(box_w / cw, box_h / ch)
    nw, nh = max(1, round(cw * scale)), max(1, round(ch * scale))
    fill = (255 if light else 0) if c == 1 else ((255,) * 3 if light else (0,) * 3)
    canvas = Image.new(im.mode, (w, h), fill)
    canvas.paste(im.resize((nw, nh), Image.LANCZOS), ((w - nw) // 2, (h - nh) // 2))
    done.insert(0, f"fitted from {ow} x {oh} into {w} x {h}")
    out = np.asarray(canvas, dtype=np.uint8)
    out = out[None] if out.ndim == 2 else out.transpose(2, 0, 1)
    if light and dark_background:
        out = 255 - out
        done.append("inverted (its background is light, the model's images are dark)")
    return out[None].copy(), f"{name}: " + ", ".join(done) + "."
