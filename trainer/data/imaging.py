"""Pictures in and out (NumPy and Pillow, no Qt): the one decoding path for every picture
the project reads (an image folder, a dropped or pasted picture), and batches of decoded
images laid out as one display array."""

from __future__ import annotations

import colorsys
import os
import struct
from pathlib import Path

import numpy as np

from ..files import NotRegularFile, open_regular, printable

# Ten well-separated class colours (Tableau 10, brightened for a dark background): the map,
# the film and every legend colour class k alike
CLASS_COLOURS = [
    "#4e9cff",
    "#ff9f40",
    "#5ad17f",
    "#ff6b6b",
    "#b48cff",
    "#c49a6c",
    "#ff8fd0",
    "#b0b6c3",
    "#e6d85a",
    "#4fd6e0",
]


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


class ImageTooLarge(ImageError):
    """A picture of more pixels than :func:`max_pixels` allows (refused undecoded)."""


IMAGE_FORMATS = "PNG, JPEG, BMP, GIF, TIFF or WebP"
# Pillow's names for them: the only plugins ever asked to open a file. Pillow would otherwise
# identify a file by its content among all its formats, EPS among them (run by Ghostscript)
PIL_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP")
BACKGROUNDS = ("white", "black")  # what transparent pixels are put on
BLANK_LEVELS = 3  # an image whose every channel spans at most this many levels is blank
# what a damaged file makes Pillow raise (its own fuzzers expect the same kinds)
_DAMAGED = (
    OSError,
    ValueError,
    EOFError,
    SyntaxError,
    struct.error,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    OverflowError,
    MemoryError,
)


def max_pixels() -> int | None:
    """The most pixels an image may have: Pillow's decompression-bomb bound (read at call
    time, so that it can be changed), or None if it was switched off."""
    from PIL import Image

    return Image.MAX_IMAGE_PIXELS


def _first_line(e: BaseException) -> str:
    text = str(e).strip().split("\n")[0] or type(e).__name__
    return text[:200]


def printable_name(source, name: str | None = None) -> str:
    """How a message names a picture: ``name``, else its path, else "the picture"; escaped
    (a file name may hold a newline), so that the message stays one line."""
    if name is None:
        name = str(source) if isinstance(source, str | os.PathLike) else "the picture"
    return printable(name)


def open_image(source, name: str | None = None, draft=None):
    """A picture opened, checked and read: a path (only a regular file is read), bytes (a
    pasted PNG, say) or a PIL image. Returns a PIL image in memory, turned as its EXIF
    orientation says (as every viewer turns it).

    ``draft(width, height)``, if given, says the least (width, height) a JPEG is needed at:
    it is then decoded at a half, a quarter or an eighth of its size where that is no
    smaller (a scaled decoding, as Pillow's thumbnails make: several times as fast).

    Only the formats of :data:`PIL_FORMATS` are tried, whatever the file's name or
    content; an image of more than :func:`max_pixels` pixels is refused before it is
    decoded. Raises :class:`ImageError` naming the picture (see :func:`printable_name`).
    """
    import io
    import warnings

    from PIL import Image

    shown = printable_name(source, name)
    limit = max_pixels()
    try:
        with warnings.catch_warnings():
            # Pillow's notes on damaged metadata it skipped (a picture's tags, its EXIF)
            # would reach the console as warnings with source lines: the picture is read
            warnings.simplefilter("ignore", UserWarning)
            # past the bound Pillow only warns, past twice that it refuses: both refuse here
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            if isinstance(source, Image.Image):
                if limit and source.width * source.height > limit:
                    raise Image.DecompressionBombError(shown)
                return _upright(source)
            if isinstance(source, bytes | bytearray | memoryview):
                f = io.BytesIO(bytes(source))
            else:
                f = open_regular(source)
            with f, Image.open(f, formats=PIL_FORMATS) as im:
                if limit and im.width * im.height > limit:
                    raise Image.DecompressionBombError(shown)
                if draft is not None and im.format == "JPEG":
                    im.draft("RGB", draft(im.width, im.height))
                return _upright(im)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLarge(f"{shown}: too large an image (more than {limit} pixels)") from None
    except Image.UnidentifiedImageError:
        raise ImageError(
            f"{shown}: not a picture Latent Explorer can read ({IMAGE_FORMATS})"
        ) from None
    except FileNotFoundError:
        raise ImageError(f"{shown}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{shown}: is a folder, not a picture") from None
    except NotRegularFile:
        raise ImageError(f"{shown}: is not a file (a named pipe, a device or a socket)") from None
    except PermissionError:
        raise ImageError(f"{shown}: cannot be read (permission denied)") from None
    except MemoryError:
        raise ImageError(f"{shown}: not enough memory to decode it") from None
    except _DAMAGED as e:
        why = getattr(e, "strerror", None) or _first_line(e)
        raise ImageError(f"{shown}: not a readable image ({printable(why)})") from None


def _upright(im):
    """``im`` decoded into memory and turned as its EXIF orientation says (a copy: the
    file can be closed); an orientation that cannot be read is left out, as viewers do."""
    from PIL import ImageOps

    im.load()
    try:
        return ImageOps.exif_transpose(im)
    except _DAMAGED:
        return im.copy()


def _stretch(a: np.ndarray) -> np.ndarray:
    """Levels 0..255 from the range ``a`` spans (its finite values: -inf is black, +inf
    white), as a viewer's automatic contrast shows data in no fixed range."""
    finite = a[np.isfinite(a)]
    if finite.size == 0:
        return np.where(a > 0, 255, 0).astype(np.uint8)
    lo, hi = float(finite.min()), float(finite.max())
    if hi == lo:
        return np.full(a.shape, 0 if hi <= 0 else 255, np.uint8)
    with np.errstate(invalid="ignore", over="ignore"):
        out = (a.astype(np.float64) - lo) * (255.0 / (hi - lo))
    return _levels(out)


def _levels(a: np.ndarray) -> np.ndarray:
    """Floats in 0..255 rounded to uint8 (NaN is 0, what lies outside is clipped)."""
    return np.clip(np.nan_to_num(np.rint(a), nan=0.0), 0, 255).astype(np.uint8)


def _grey_levels(im) -> np.ndarray:
    """An image of one channel of more than 8 bits as uint8 levels (H, W).

    - 16-bit (I;16, I;16B, ...): 0..65535 scaled onto 0..255.
    - 32-bit integers (I): read as 16-bit samples when they lie within 0..65535 (how 16-bit
      images reach Pillow), else stretched from the image's minimum to its maximum.
    - Floats (F): 0..1 taken as black..white; an image whose values pass 1 but stay within
      0..255 is taken as 8-bit levels; any other range is stretched from its minimum to its
      maximum. NaN is black.
    """
    if im.mode.startswith("I;16"):
        a = np.asarray(im)
        if a.dtype.kind == "u":
            return _levels(a.astype(np.float32) / 257.0)
        im = im.convert("I")
    if im.mode == "I":
        a = np.asarray(im, dtype=np.int64)
        if a.size and a.min() >= 0 and a.max() <= 65535:
            return _levels(a.astype(np.float32) / 257.0)
        return _stretch(a.astype(np.float64))
    a = np.asarray(im, dtype=np.float64)  # F
    finite = a[np.isfinite(a)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if lo >= -1e-3 and hi <= 1.0 + 1e-3:
        return _levels(a * 255.0)
    if lo >= 0 and hi <= 255:
        return _levels(a)
    return _stretch(a)


TRANSLUCENT_MODES = ("RGBA", "LA", "PA", "La", "RGBa")


def has_alpha(im) -> bool:
    """Whether ``im`` has transparent pixels' data: an alpha channel, or a palette or colour
    key marking a colour transparent."""
    return im.mode in TRANSLUCENT_MODES or im.info.get("transparency") is not None


def _check_background(background: str) -> None:
    if background not in BACKGROUNDS:
        raise ValueError(f"background must be {' or '.join(BACKGROUNDS)}, not {background!r}")


def flatten(im, background: str = "white"):
    """``im`` as an 8-bit image to train on: mode "L" for an image of one channel, "RGB"
    otherwise.

    Transparent pixels are put on ``background`` ("white", as a page shows a drawing, or
    "black"): an icon's drawing stays where it is, whatever colour its transparent pixels
    hold. 16-bit, 32-bit and float images are scaled as :func:`_grey_levels` says; CMYK,
    YCbCr, LAB and HSV are converted to RGB; a palette to its colours.
    """
    from PIL import Image

    _check_background(background)
    mode = im.mode
    if mode in ("1", "L") and not has_alpha(im):
        return im.convert("L")
    if mode == "I" or mode == "F" or mode.startswith("I;16"):
        return Image.fromarray(_grey_levels(im), "L")
    if has_alpha(im):
        bg = 255 if background == "white" else 0
        grey = mode in ("LA", "La", "L", "1")
        if mode == "La":  # premultiplied: the grey is already weighed by its alpha
            a = np.asarray(im, dtype=np.uint16)
            c, alpha = a[..., :1], a[..., 1:]
            out = c + (bg * (255 - alpha) + 127) // 255
        else:
            a = np.asarray(im.convert("RGBA"), dtype=np.uint16)
            c, alpha = a[..., :3], a[..., 3:]
            out = (c * alpha + bg * (255 - alpha) + 127) // 255
        out = np.clip(out, 0, 255).astype(np.uint8)
        if grey:
            return Image.fromarray(np.ascontiguousarray(out[..., 0]), "L")
        return Image.fromarray(out, "RGB")
    return im.convert("RGB")


def decode_image(
    source,
    colour: bool = True,
    background: str = "white",
    size: tuple[int, int] | None = None,
    name: str | None = None,
) -> np.ndarray:
    """Any picture the project reads as uint8 pixels: (H, W, 3) in colour, (H, W) in grey.

    Opened by :func:`open_image` (known formats only, bounded, turned as its EXIF says),
    made 8-bit with transparency on ``background`` by :func:`flatten`, and resized to
    ``size`` (width, height) if given. Raises :class:`ImageError` naming the file.
    """
    from PIL import Image

    _check_background(background)
    im = open_image(source, name)
    try:
        im = flatten(im, background).convert("RGB" if colour else "L")
        if size is not None and im.size != tuple(size):
            im = im.resize(tuple(size), Image.BILINEAR)
        return np.asarray(im, dtype=np.uint8)
    except MemoryError:
        shown = printable_name(source, name)
        raise ImageError(f"{shown}: not enough memory to decode it") from None
    except _DAMAGED as e:
        why = printable(_first_line(e))
        raise ImageError(f"{printable_name(source, name)}: not a readable image ({why})") from None


def prepare_image(
    source, image_shape: tuple[int, int, int], dark_background: bool, background: str = "white"
):
    """A picture (a path, bytes or a PIL image) made into one model input the way the
    model's data is: ``(1, C, H, W)`` uint8, and a sentence saying what was done.

    The picture is decoded as a folder's images are (:func:`decode_image`: transparency on
    ``background``, the model's data's; but on the other one where its drawing would vanish
    on it), fitted into H x W keeping its aspect (the rest filled with its own background),
    converted to greyscale or colour as the model takes, and inverted when its background
    is light but the model's images are dark (MNIST's white strokes on black).
    """
    from PIL import Image

    _check_background(background)
    c, h, w = image_shape
    name = Path(source).name if isinstance(source, str | os.PathLike) else "the picture"
    picture = open_image(source, name)
    name = printable_name(source, name)
    done = []
    try:
        im = flatten(picture, background)
        if has_alpha(picture) and _blank(np.asarray(im)):
            other = BACKGROUNDS[1 - BACKGROUNDS.index(background)]
            flat = flatten(picture, other)
            if not _blank(np.asarray(flat)):  # a drawing in the background's own colour
                im = flat
                done.append(f"its transparent pixels made {other} (its drawing is {background})")
    except _DAMAGED as e:
        raise ImageError(f"{name}: not a readable image ({printable(_first_line(e))})") from None
    grey = im.convert("L")
    arr = np.asarray(grey, dtype=np.float32) / 255.0
    border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
    light = float(np.median(border)) > 0.5
    was = im.mode  # "L" or "RGB"
    im = im.convert("L" if c == 1 else "RGB")
    if was == "RGB" and c == 1:
        done.append("made greyscale")
    elif was == "L" and c == 3:
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


def _blank(a: np.ndarray) -> bool:
    """Whether pixels ``a`` (H, W) or (H, W, C) are one colour, give or take
    :data:`BLANK_LEVELS` levels in each channel."""
    a = a.reshape(a.shape[0] * a.shape[1], -1) if a.ndim == 3 else a.reshape(-1, 1)
    return bool((a.max(0).astype(int) - a.min(0) <= BLANK_LEVELS).all()) if a.size else True
