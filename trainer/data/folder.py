"""A folder of images, one sub-folder per class (``--dataset folder``): decoded once into the
decoded cache (:mod:`trainer.data.cache`), refused when the images carry no information."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np

from ..files import printable
from . import cache
from .arrays import ImageData, _finish, _split
from .imaging import (
    BACKGROUNDS,
    BLANK_LEVELS,
    ImageError,
    ImageTooLarge,
    decode_image,
    max_pixels,
)
from .spec import DataError, DataSpec, Progress

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def _image_files(folder: Path) -> list[tuple[str, os.stat_result]]:
    """The image files under ``folder``, at any depth, with their stat, in path order (as
    ``sorted(folder.rglob("*"))`` gives them: the order fixes a folder's train/test split).
    One stat per file: a folder of 200,000 images is listed in about a second."""
    found = []
    for dirpath, _dirs, names in os.walk(folder):
        for name in names:
            if os.path.splitext(name)[1].lower() not in IMAGE_SUFFIXES:
                continue
            path = os.path.join(dirpath, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                found.append((path, st))
    found.sort(key=lambda e: e[0].split(os.sep))
    return found


def _colour_name(px: np.ndarray) -> str:
    """A single colour's name for people, from its channel values (C,)."""
    v = [int(c) for c in px]
    if max(v) - min(v) <= BLANK_LEVELS:
        g = v[0]
        return "black" if g <= BLANK_LEVELS else "white" if g >= 255 - BLANK_LEVELS else f"grey {g}"
    return "RGB " + ", ".join(map(str, v))


def check_informative(x: np.ndarray, spec: DataSpec) -> None:
    """Refuse images (N, C, H, W) that carry (almost) no information: all the same, or each
    of a single colour (blank), give or take :data:`~trainer.data.imaging.BLANK_LEVELS` levels.

    Read a chunk at a time, and over at the first image unlike the first and the first not
    blank: real data is let through after its first chunk."""
    n = len(x)
    if n == 0:
        return
    first = np.asarray(x[0], dtype=np.int16)
    same = blank = True
    step = max(1, (16 << 20) // max(1, first.size))
    for i in range(0, n, step):
        c = np.asarray(x[i : i + step])
        if same:
            same = bool((np.abs(c.astype(np.int16) - first) <= BLANK_LEVELS).all())
        if blank:
            flat = c.reshape(len(c), c.shape[1], -1)
            blank = bool((flat.max(2).astype(np.int16) - flat.min(2) <= BLANK_LEVELS).all())
        if not (same or blank):
            return
    what = printable(spec.describe())
    colour = _colour_name(np.median(first.reshape(first.shape[0], -1), axis=1))
    if same:
        found = f"all {n:,} images in {what} are the same after decoding"
        found += f": a single colour ({colour})" if blank else ""
    else:
        found = f"each of the {n:,} images in {what} is a single colour after decoding (blank)"
    found += "; there is nothing to learn from them"
    bg = spec.background
    if not (blank and spec.source == "folder" and colour == bg):
        raise DataError(found)
    other = BACKGROUNDS[1 - BACKGROUNDS.index(bg)]
    why = f" (transparent pixels are put on {bg}: for drawings in {bg} on transparency, "
    raise DataError(
        f"{found}{why}use --background {other})",
        gui=f"{found}{why}choose Background: {other.capitalize()} under Data).",
    )


def load_folder(spec: DataSpec, progress: Progress | None = None) -> ImageData:
    root = Path(spec.root).expanduser()
    shown = printable(str(root))
    if not root.is_dir():
        raise DataError(f"{shown}: no such folder")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataError(f"{shown}: no class sub-folders (expected ROOT/<class>/<image files>)")
    files: list[tuple[str, int]] = []
    entries: list[tuple[str, os.stat_result]] = []  # (name under root, stat): the cache's key
    prefix = len(os.path.join(str(root), ""))
    for k, c in enumerate(classes):
        for path, st in _image_files(root / c):
            files.append((path, k))
            entries.append((path[prefix:], st))
    if len(files) < 2:
        raise DataError(f"{shown}: found {len(files)} image(s); need at least 2")
    s = spec.image_size
    # "decoding": how images are decoded (trainer.data.imaging); a new way decodes them again.
    # "root": where the folder is (two folders alike in names, sizes and times are two)
    options = {
        "image_size": s,
        "classes": classes,
        "max_pixels": max_pixels(),
        "background": spec.background,
        "decoding": 2,
        "root": str(root.resolve()),
    }
    key = cache.folder_key(entries, options)
    hit = cache.read_cached(key, progress)
    if hit is not None:  # (checked by check_informative before it was kept)
        xtr, xte, ytr, yte = _split(hit.x, hit.y, spec.test_fraction, spec.seed)
        return _finish(f"folder:{root.name}", xtr, xte, ytr, yte, classes)
    unkept = cache.writable(key)
    why = "once: later loads read them from the cache" if unkept is None else f"in memory: {unkept}"
    # decoded straight into the cache's layout (N, C, H, W): no second copy of the images
    imgs = np.empty((len(files), 3, s, s), dtype=np.uint8)
    for i, (f, _) in enumerate(files):
        if progress is not None and i % 64 == 0:
            progress(i / len(files), f"decoding {i:,} of {len(files):,} images ({why})")
        try:
            px = decode_image(f, background=spec.background, size=(s, s))
        except ImageTooLarge as e:
            raise DataError(f"{e}; shrink it or move it out of the folder") from None
        except ImageError as e:
            raise DataError(str(e)) from None
        imgs[i] = px.transpose(2, 0, 1)
    x = imgs
    step = max(1, (16 << 20) // imgs[:1].nbytes)  # a grey folder is kept as one channel
    grey = all(
        bool((c[:, 0] == c[:, 1]).all() and (c[:, 1] == c[:, 2]).all())
        for c in (imgs[i : i + step] for i in range(0, len(imgs), step))
    )
    if grey:  # each image's first channel moved to the front, in place, a chunk at a time:
        # a chunk's images lie after where the chunks before it went (numpy buffers a chunk
        # that overlaps itself), so none is overwritten before it has moved
        x = imgs.reshape(-1)[: len(files) * s * s].reshape(len(files), 1, s, s)
        for i in range(0, len(files), step):
            x[i : i + step, 0] = imgs[i : i + step, 0]
    check_informative(x, spec)
    y = np.array([k for _, k in files], dtype=np.int64)
    x = cache.keep(key, f"folder:{root.resolve()}:{s}", x, y, classes)
    xtr, xte, ytr, yte = _split(x, y, spec.test_fraction, spec.seed)
    return _finish(f"folder:{root.name}", xtr, xte, ytr, yte, classes)
