"""CelebA's aligned faces (``--dataset celeba --root DIR``), read from the standard extracted
layout::

    DIR/img_align_celeba/000001.jpg … 202599.jpg
    DIR/list_attr_celeba.txt       the image count; the 40 attribute names; a row of 1 / -1
                                   per image
    DIR/list_eval_partition.txt    "000001.jpg 0" per image: 0 train, 1 validation, 2 test

The official split: its training images are trained on and its test images held out (the
validation images are not loaded). Each face is cropped to the centre square of
:data:`CROP` of its shorter side (the 148 x 148 pixels around the face of the 178 x 218
aligned images) and resized to ``spec.image_size`` (32, 64 or 128 pixels), decoded once into
the decoded cache (:mod:`trainer.data.cache`), training images first. The attributes are
kept with the data (:class:`~trainer.data.arrays.Attributes`), read from their list on each
load (with the partition list, they are part of the cache's key).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import stat
import warnings
from pathlib import Path

import numpy as np
import torch

from ..files import NotRegularFile, open_regular, printable, read_problem
from . import cache
from .arrays import Attributes, ImageData, Rows, _finish
from .folder import check_informative
from .imaging import ImageError, ImageTooLarge, flatten, max_pixels, open_image
from .spec import DataError, DataSpec, Progress

IMAGES_DIR = "img_align_celeba"
ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
CROP = 148 / 178  # the side of the centre square kept, as a share of the shorter side
TRAIN, VALIDATION, TEST = 0, 1, 2
MAX_LIST_BYTES = 1 << 28  # a list file larger than this is no CelebA's (the official: 27 MB)
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # an image's name in the lists: no folders


def _read_list(root: Path, name: str) -> tuple[str, str]:
    """The text of ``root/name`` and a digest of its bytes (for the cache's key)."""
    p = root / name
    shown = printable(str(p))
    try:
        with open_regular(p) as f:
            data = f.read(MAX_LIST_BYTES + 1)
    except FileNotFoundError:
        raise DataError(
            f"{shown}: no such file; --root must be the extracted CelebA folder, holding "
            f"{IMAGES_DIR}/, {ATTR_FILE} and {PARTITION_FILE} (see the README)"
        ) from None
    except IsADirectoryError:
        raise DataError(f"{shown}: is a folder, not CelebA's list") from None
    except NotRegularFile:
        raise DataError(f"{shown}: is not a regular file") from None
    except OSError as e:
        raise DataError(f"{shown}: {read_problem(e, 'cannot be read')}") from None
    if len(data) > MAX_LIST_BYTES:
        raise DataError(f"{shown}: larger than {MAX_LIST_BYTES >> 20} MB; not CelebA's list")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise DataError(f"{shown}: not a text file of CelebA's (it holds other bytes)") from None
    return text, hashlib.sha256(data).hexdigest()


def _bad_line(shown: str, i: int, line: str, want: str) -> DataError:
    return DataError(f"{shown}: line {i}: expected {want}, found {printable(line[:80])!r}")


def read_partition(root: Path) -> tuple[list[str], np.ndarray, str]:
    """The images' names and partitions (0, 1, 2) in the list's order, and its digest."""
    text, digest = _read_list(root, PARTITION_FILE)
    shown = printable(str(root / PARTITION_FILE))
    names, parts = [], []
    for i, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if not words:
            continue
        if len(words) != 2 or not _NAME.fullmatch(words[0]) or words[1] not in ("0", "1", "2"):
            raise _bad_line(shown, i, line, "an image's name and its partition 0, 1 or 2")
        names.append(words[0])
        parts.append(int(words[1]))
    if len(set(names)) != len(names):
        seen: set[str] = set()
        twice = next(n for n in names if n in seen or seen.add(n))
        raise DataError(f"{shown}: {printable(twice)} is listed twice")
    p = np.array(parts, dtype=np.int8)
    for part, what in ((TRAIN, "training"), (TEST, "test")):
        if not (p == part).any():
            raise DataError(f"{shown}: lists no {what} images (partition {part})")
    return names, p, digest


def read_attributes(root: Path, names: list[str]) -> tuple[list[str], np.ndarray, str]:
    """The attributes' names, a bool row per image of ``names`` (as listed in the partition
    list), and the list's digest."""
    text, digest = _read_list(root, ATTR_FILE)
    shown = printable(str(root / ATTR_FILE))
    lines = text.splitlines()
    if len(lines) < 2 or not lines[0].strip().isdigit():
        first = lines[0] if lines else ""
        raise _bad_line(shown, 1, first, "the number of images")
    count = int(lines[0])
    attrs = lines[1].split()
    if not attrs:
        raise _bad_line(shown, 2, lines[1], "the attributes' names")
    rows = [line for line in lines[2:] if line.strip()]
    if len(rows) != count:
        raise DataError(f"{shown}: its first line promises {count} images, it lists {len(rows)}")
    k = len(attrs)
    index: dict[str, int] = {}
    values = []
    for i, line in enumerate(rows):
        name, *rest = line.split(None, 1)
        index[name] = i
        values.append(rest[0] if rest else "")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flat = np.fromstring(" ".join(values), dtype=np.int8, sep=" ")
    if flat.size != count * k or not np.isin(flat, (-1, 1)).all():
        for i, rest in enumerate(values):  # the first row at fault, for the message
            words = rest.split()
            if len(words) != k or any(w not in ("1", "-1") for w in words):
                raise _bad_line(shown, i + 3, rows[i], f"an image's name and {k} values 1 or -1")
    table = flat.reshape(count, k) > 0
    missing = next((n for n in names if n not in index), None)
    if missing is not None:
        raise DataError(
            f"{shown}: has no row for {printable(missing)} (listed in {PARTITION_FILE})"
        )
    order = np.fromiter((index[n] for n in names), dtype=np.int64, count=len(names))
    return attrs, table[order], digest


def _image_entries(folder: Path, names: list[str]) -> list[tuple]:
    """(name, size, modification time, inode, change time) of each image: the cache's key
    (as an image folder's, :func:`trainer.data.cache.folder_key`)."""
    entries = []
    for n in names:
        p = folder / n
        try:
            st = os.stat(p)
        except FileNotFoundError:
            raise DataError(
                f"{printable(str(p))}: no such file (listed in {PARTITION_FILE})"
            ) from None
        except OSError as e:
            raise DataError(f"{printable(str(p))}: {read_problem(e, 'cannot be read')}") from None
        if not stat.S_ISREG(st.st_mode):
            raise DataError(f"{printable(str(p))}: is not a regular file")
        entries.append((n, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns))
    return entries


def decode_face(path: Path, size: int) -> np.ndarray:
    """One face as uint8 (3, size, size): its centre square (:data:`CROP` of its shorter
    side) resized; ImageError naming the file. A JPEG is decoded at the smallest of its
    scaled sizes (a half, a quarter, an eighth) whose centre square is still ``size`` wide
    or more (so it is only ever made smaller)."""
    from PIL import Image

    def least(w: int, h: int) -> tuple[int, int]:
        scale = size / max(1.0, min(w, h) * CROP)
        return math.ceil(w * scale), math.ceil(h * scale)

    im = flatten(open_image(path, draft=least), "white").convert("RGB")
    w, h = im.size
    side = max(1, round(min(w, h) * CROP))
    left, top = (w - side) / 2, (h - side) / 2
    box = (left, top, left + side, top + side)
    out = im.resize((size, size), Image.BILINEAR, box=box)
    return np.asarray(out, dtype=np.uint8).transpose(2, 0, 1)


def load_celeba(spec: DataSpec, progress: Progress | None = None) -> ImageData:
    root = Path(spec.root).expanduser()
    shown = printable(str(root))
    if not root.is_dir():
        raise DataError(f"{shown}: no such folder")
    folder = root / IMAGES_DIR
    if not folder.is_dir():
        raise DataError(
            f"{printable(str(folder))}: no such folder; --root must be the extracted CelebA "
            f"folder, holding {IMAGES_DIR}/ (the aligned faces), {ATTR_FILE} and "
            f"{PARTITION_FILE} (see the README)"
        )
    names, parts, part_digest = read_partition(root)
    attr_names, table, attr_digest = read_attributes(root, names)
    order = np.concatenate([np.flatnonzero(parts == TRAIN), np.flatnonzero(parts == TEST)])
    files = [names[i] for i in order]
    n_train = int((parts == TRAIN).sum())
    s = spec.image_size
    if progress is not None:
        progress(None, f"listing {len(files):,} faces")
    entries = [
        (PARTITION_FILE, part_digest),
        (ATTR_FILE, attr_digest),
        *_image_entries(folder, files),
    ]
    options = {
        "image_size": s,
        "crop": CROP,
        "max_pixels": max_pixels(),
        "decoding": 1,  # (JPEGs decoded scaled down, see decode_face)
        "root": str(root.resolve()),
    }
    key = cache.key_of("celeba", entries, options)
    attributes = table[order]
    hit = cache.read_cached(key, progress)
    if hit is not None and len(hit.x) == len(files):
        return _finished(spec, hit.x, n_train, attr_names, attributes)
    unkept = cache.writable(key)
    why = "once: later loads read them from the cache" if unkept is None else f"in memory: {unkept}"
    x = np.empty((len(files), 3, s, s), dtype=np.uint8)
    for i, name in enumerate(files):
        if progress is not None and i % 64 == 0:
            progress(i / len(files), f"decoding {i:,} of {len(files):,} faces ({why})")
        try:
            x[i] = decode_face(folder / name, s)
        except ImageTooLarge as e:
            raise DataError(f"{e}; not one of CelebA's aligned faces") from None
        except ImageError as e:
            raise DataError(str(e)) from None
    check_informative(x, spec)
    x = cache.keep(key, f"celeba:{root.resolve()}:{s}", x, None, [])
    return _finished(spec, x, n_train, attr_names, attributes)


def _finished(spec: DataSpec, x: np.ndarray, n_train: int, attr_names, attributes) -> ImageData:
    """The data, its training images first in ``x`` (memory-mapped: kept there, as Rows)."""
    if isinstance(x, np.memmap):
        xtr = Rows(torch.from_numpy(x), torch.arange(n_train))
    else:
        xtr = x[:n_train]
    xte = np.array(x[n_train:])
    data = _finish(spec.describe(), xtr, xte, None, None, [])
    data.attributes = Attributes(
        list(attr_names),
        torch.from_numpy(np.ascontiguousarray(attributes[:n_train])),
        torch.from_numpy(np.ascontiguousarray(attributes[n_train:])),
    )
    return data
