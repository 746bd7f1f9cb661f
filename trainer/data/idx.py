"""IDX files (the MNIST family's format), gzipped or not: read exactly as their header
promises, and loaded as a dataset of their own (``--dataset idx``)."""

from __future__ import annotations

import gzip
import math
import os
import stat
import struct
import zlib
from pathlib import Path

import numpy as np

from ..files import NotRegularFile, open_regular, read_problem
from . import cache
from .arrays import MAX_SIDE, ImageData, _as_nchw, _finish, _labels, _split
from .spec import DataError, DataSpec, Progress

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


MAX_IDX_BYTES = 2**31  # the most data one IDX file may hold (MNIST's training images: 47 MB)
_CHUNK = 1 << 20


def _os_problem(p: Path, e: OSError) -> str:
    loop = "cannot be read (a loop of symbolic links: a link that leads back to itself)"
    return f"{p}: {read_problem(e, loop)}"


def _open_regular(p: Path):
    """``p`` opened for binary reading if it is a regular file; DataError otherwise (never
    blocks: see :func:`trainer.files.open_regular`)."""
    try:
        return open_regular(p)
    except IsADirectoryError:
        raise DataError(f"{p}: is a folder, not an IDX file") from None
    except NotRegularFile as e:
        kinds = [
            (stat.S_ISFIFO, "a named pipe (FIFO)"),
            (stat.S_ISCHR, "a device"),
            (stat.S_ISBLK, "a device"),
            (stat.S_ISSOCK, "a socket"),
        ]
        kind = next((k for test, k in kinds if test(e.mode)), "something other than a file")
        raise DataError(f"{p}: is {kind}; an IDX file must be a regular file") from None
    except OSError as e:
        raise DataError(_os_problem(p, e)) from None


def _read_upto(f, n: int) -> bytes:
    out = b""
    while len(out) < n:
        more = f.read(n - len(out))
        if not more:
            break
        out += more
    return out


def _check_idx_shape(p: Path, shape: tuple[int, ...], kind: str) -> None:
    """Refuse, from the header alone, a shape that cannot be ``kind`` ("images"/"labels")."""
    if kind == "labels":
        if len(shape) != 1:
            raise DataError(f"{p}: labels must be one number per image, got shape {shape}")
        return
    hw = None
    if len(shape) == 3:
        hw = shape[1:]
    elif len(shape) == 4 and shape[1] in (1, 3):
        hw = shape[2:]
    elif len(shape) == 4 and shape[3] in (1, 3):
        hw = shape[1:3]
    if hw is None:
        raise DataError(f"{p}: expected images (N, H, W) or (N, C, H, W), got shape {shape}")
    if not (1 <= min(hw) and max(hw) <= MAX_SIDE):
        raise DataError(
            f"{p}: images must be 1 to {MAX_SIDE} pixels high and wide, not {hw[0]}x{hw[1]}"
        )


def read_idx(
    path: str | os.PathLike, kind: str | None = None, progress: Progress | None = None
) -> np.ndarray:
    """Read an IDX file (the MNIST-family format), gzipped or not.

    Reads exactly the data the header promises, and refuses a promise larger than
    :data:`MAX_IDX_BYTES`, a file that holds less or more than promised, and anything but a
    regular file. ``kind`` ("images" or "labels") checks the shape before any data is read.
    ``progress`` is called after each megabyte read (see :func:`load_data`).
    """
    p = Path(path)
    with _open_regular(p) as f:
        try:
            gz = f.read(2) == b"\x1f\x8b"
            f.seek(0)
            if not gz:
                return _read_idx_body(p, f, os.fstat(f.fileno()).st_size, kind, progress)
        except OSError as e:
            raise DataError(_os_problem(p, e)) from None
        try:
            with gzip.GzipFile(fileobj=f, mode="rb") as g:
                return _read_idx_body(p, g, None, kind, progress)
        except EOFError:
            raise DataError(f"{p}: truncated (the gzip data ends early)") from None
        except (OSError, zlib.error) as e:
            raise DataError(f"{p}: damaged gzip data ({e})") from None


def _read_idx_body(
    p: Path, f, size: int | None, kind: str | None, progress: Progress | None = None
) -> np.ndarray:
    """The IDX array in stream ``f``; ``size`` is the file's length when not compressed."""
    head = _read_upto(f, 4)
    if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _IDX_TYPES:
        raise DataError(f"{p}: not an IDX file (bad magic number)")
    ndim = head[3]
    if not 1 <= ndim <= 4:
        raise DataError(f"{p}: not an IDX file of images or labels ({ndim} dimensions)")
    dims = _read_upto(f, 4 * ndim)
    if len(dims) < 4 * ndim:
        raise DataError(f"{p}: not an IDX file (bad header)")
    shape = struct.unpack(f">{ndim}I", dims)
    if kind is not None:
        _check_idx_shape(p, shape, kind)
    dtype = np.dtype(_IDX_TYPES[head[2]])
    need = math.prod(shape) * dtype.itemsize
    if need > MAX_IDX_BYTES:
        raise DataError(
            f"{p}: the header promises {need} bytes of data (shape {shape}); "
            f"at most {MAX_IDX_BYTES} are read from one file"
        )
    truncated = f"{p}: truncated (header promises {need} bytes of data for shape {shape}, "
    longer = (
        f"{p}: holds more data than its header describes (shape {shape}, {need} bytes); "
        "a damaged header or not an IDX file"
    )
    if size is not None:
        have = size - 4 - 4 * ndim
        if have < need:
            raise DataError(truncated + f"file has {have})")
        if have > need:
            raise DataError(longer)
    buf = np.empty(need, dtype=np.uint8)
    view = memoryview(buf)
    got = 0
    while got < need:
        n = f.readinto(view[got : got + _CHUNK])
        if not n:
            raise DataError(truncated + f"file has {got})")
        got += n
        if progress is not None:
            progress(got / need, f"{p.name}: {got >> 20} of {need >> 20} MB")
    if f.read(1):
        raise DataError(longer)
    return buf.view(dtype).reshape(shape)


def load_idx(spec: DataSpec, progress: Progress | None = None) -> ImageData:
    paths = [Path(spec.images).expanduser()] + (
        [Path(spec.labels).expanduser()] if spec.labels else []
    )
    key = cache.source_key("idx", paths, None, {})
    hit = cache.read_cached(key, progress)
    if hit is not None:
        x, y, class_names = hit.x, hit.y, hit.class_names
    else:
        progress = cache.in_memory(key, progress)
        x = _as_nchw(read_idx(spec.images, "images", progress), str(spec.images))
        y = None
        class_names: list[str] = []
        if spec.labels:
            y = read_idx(spec.labels, "labels", progress)
            if len(y) != len(x):
                raise DataError(
                    f"{spec.labels}: {len(y)} labels for {len(x)} images in {spec.images}"
                )
            y, class_names = _labels(y, str(spec.labels))
        x = cache.keep(key, "idx:" + "|".join(str(p.resolve()) for p in paths), x, y, class_names)
    xtr, xte, ytr, yte = _split(x, y, spec.test_fraction, spec.seed)
    return _finish(spec.describe(), xtr, xte, ytr, yte, class_names)
