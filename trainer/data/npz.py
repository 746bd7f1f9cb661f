"""NumPy arrays (``--dataset npz``): an ``.npz`` archive of the images (``x`` or ``images``)
and, optionally, their labels (``y`` or ``labels``) and class names (``class_names``); or
one split given by the file (``x_train`` / ``x_test``, with ``y_train`` / ``y_test``, as
Keras's ``mnist.npz`` holds them); or an ``.npy`` file of images with, optionally, an
``.npy`` file of labels (``--labels``).

Arrays are read with ``allow_pickle=False`` (a file runs no code), each header checked
before its data is read: object arrays, arrays of text as images and arrays promising more
than :data:`MAX_NPY_BYTES` are refused. Images may be (N, H, W), (N, C, H, W) or
(N, H, W, C) with C of 1 or 3, uint8 or floating point in 0..1 (see
:func:`trainer.data.arrays._as_nchw`); labels whole numbers 0..K-1, or text (each distinct
text a class, in sorted order).
"""

from __future__ import annotations

import math
import stat
import zipfile
from pathlib import Path

import numpy as np

from ..config import MAX_CLASSES
from ..files import NotRegularFile, open_regular, printable, read_problem
from .arrays import ImageData, _as_nchw, _finish, _labels, _split
from .spec import DataError, DataSpec, Progress

MAX_NPY_BYTES = 2**34  # the most data one array may hold (16 GiB)
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK"
_IMAGES = ("x", "images")
_LABELS = ("y", "labels")
_PIXELS = (*_IMAGES, "x_train", "x_test")  # the arrays of images (of numbers only)


def _open(p: Path, what: str):
    """``p`` opened for binary reading if it is a regular file; DataError otherwise."""
    shown = printable(str(p))
    try:
        return open_regular(p)
    except IsADirectoryError:
        raise DataError(f"{shown}: is a folder, not a NumPy file ({what})") from None
    except NotRegularFile as e:
        kind = "a named pipe (FIFO)" if stat.S_ISFIFO(e.mode) else "not a regular file"
        raise DataError(f"{shown}: is {kind}; a NumPy file must be a regular file") from None
    except FileNotFoundError:
        raise DataError(f"{shown}: no such file") from None
    except OSError as e:
        raise DataError(f"{shown}: {read_problem(e, 'cannot be read')}") from None


def _read_array(f, where: str, images: bool) -> np.ndarray:
    """One array in ``.npy`` format from the stream ``f``, its header checked first."""
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"{where}: not a NumPy array ({printable(str(e))[:120]})") from None
    if dtype.hasobject:
        raise DataError(
            f"{where}: holds Python objects (dtype object), which are never unpickled; "
            "save numbers (images) or numbers or text (labels)"
        )
    kinds = "biuf" if images else "biufUS"
    if dtype.kind not in kinds:
        want = "numbers: uint8 0-255, or floats 0-1" if images else "whole numbers or text"
        raise DataError(f"{where}: holds values of type {dtype}; it must hold {want}")
    need = math.prod(shape) * dtype.itemsize
    if need > MAX_NPY_BYTES:
        raise DataError(
            f"{where}: its header promises {need} bytes (shape {shape}); at most "
            f"{MAX_NPY_BYTES} are read from one array"
        )
    buf = bytearray(need)
    view = memoryview(buf)
    got = 0
    while got < need:
        n = f.readinto(view[got:])
        if not n:
            raise DataError(
                f"{where}: truncated (its header promises {need} bytes for shape {shape}, "
                f"it holds {got})"
            )
        got += n
    order = "F" if fortran else "C"
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order=order)


def _arrays(p: Path, what: str, wanted: set[str]) -> tuple[dict[str, np.ndarray], list[str], bool]:
    """The arrays named in ``wanted`` that the file ``p`` holds, the names of all it holds
    (an ``.npy`` file holds one, named "x" here), and whether it is an ``.npz`` archive."""
    shown = printable(str(p))
    with _open(p, what) as f:
        try:
            head = f.read(6)
            f.seek(0)
        except OSError as e:
            raise DataError(f"{shown}: {read_problem(e, 'cannot be read')}") from None
        if head == _NPY_MAGIC:
            return {"x": _read_array(f, shown, what == "images")}, ["x"], False
        if not head.startswith(_ZIP_MAGIC):
            raise DataError(f"{shown}: not a NumPy file (.npz or .npy)")
        try:
            with zipfile.ZipFile(f) as z:
                members = {n[:-4]: n for n in z.namelist() if n.endswith(".npy")}
                out = {}
                for name in sorted(wanted & members.keys()):
                    with z.open(members[name]) as m:
                        out[name] = _read_array(m, f"{shown}: {name}", name in _PIXELS)
                return out, sorted(members), True
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as e:
            why = printable(str(e))[:120]
            raise DataError(f"{shown}: a damaged .npz archive ({why})") from None
        except NotImplementedError as e:  # a compression zipfile cannot read
            raise DataError(f"{shown}: {printable(str(e))[:120]}") from None


def _one(held: dict, names: tuple[str, ...], shown: str) -> np.ndarray | None:
    """The array held under one of ``names`` (None if none); both names held is a mistake."""
    found = [n for n in names if n in held]
    if len(found) > 1:
        raise DataError(f"{shown}: holds both {' and '.join(found)}; keep one of them")
    return held[found[0]] if found else None


def _images(x: np.ndarray, where: str) -> np.ndarray:
    if x.ndim == 2:
        raise DataError(
            f"{where}: images are flat rows, shape {x.shape}; save them shaped (N, H, W) "
            "or (N, C, H, W)"
        )
    if x.dtype.kind == "b":
        x = x.astype(np.uint8) * 255
    elif x.dtype.kind in "iu" and x.dtype != np.uint8 and x.size and (x.min() < 0 or x.max() > 255):
        raise DataError(
            f"{where}: pixels run from {x.min()} to {x.max()}; images must hold 0 to 255, "
            "or 0 to 1 as floating point: rescale them"
        )
    if len(x) == 0:
        raise DataError(f"{where}: holds no images (shape {x.shape})")
    return _as_nchw(x, where)


def _label_array(y: np.ndarray, n: int, where: str, images: str) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        hint = " (one-hot labels: save y.argmax(1))" if y.ndim == 2 else ""
        raise DataError(f"{where}: labels must be one number per image, got shape {y.shape}{hint}")
    if len(y) != n:
        raise DataError(f"{where}: {len(y)} labels for {n} images in {images}")
    return y


def _classes(ys: list[np.ndarray], where: str, names) -> tuple[list[np.ndarray], list[str]]:
    """Labels of one or two splits as int64 0..K-1, and the class names."""
    whole = np.concatenate(ys)
    if whole.dtype.kind in "US":
        texts, codes = np.unique(whole, return_inverse=True)
        if len(texts) > MAX_CLASSES:
            raise DataError(f"{where}: {len(texts)} distinct labels; at most {MAX_CLASSES} classes")
        found = [printable(str(t.decode() if isinstance(t, bytes) else t)) for t in texts]
        if names is not None:
            raise DataError(
                f"{where}: labels are text, which names the classes; leave out class_names"
            )
        codes = codes.astype(np.int64)
    else:
        if whole.dtype.kind == "b":
            whole = whole.astype(np.int64)
        codes, found = _labels(whole, where)
    if names is not None:
        if names.ndim != 1 or names.dtype.kind not in "US":
            raise DataError(
                f"{where}: class_names must be a list of texts, not {names.dtype} of shape "
                f"{names.shape}"
            )
        if len(names) != len(found):
            raise DataError(
                f"{where}: {len(names)} class_names for labels 0 to {len(found) - 1} "
                f"({len(found)} classes)"
            )
        found = [printable(str(t.decode() if isinstance(t, bytes) else t)) for t in names]
    out, at = [], 0
    for y in ys:
        out.append(codes[at : at + len(y)])
        at += len(y)
    return out, found


def load_npz(spec: DataSpec, progress: Progress | None = None) -> ImageData:
    path = Path(spec.images).expanduser()
    shown = printable(str(path))
    wanted = {*_IMAGES, *_LABELS, "class_names", "x_train", "x_test", "y_train", "y_test"}
    held, names, archive = _arrays(path, "images", wanted)
    npy = not archive
    if spec.labels and not npy:
        raise DataError(
            f"--labels goes with .npy images; {shown} is an .npz archive, which keeps its "
            "labels in it (as y or labels)",
            gui="A labels file goes with .npy images; an .npz archive keeps its labels in it "
            "(as y or labels): clear Labels.",
        )
    if progress is not None:
        progress(0.5, f"{path.name}: read")
    given = "x_train" in held or "x_test" in held
    if given:
        for a, b in (("x_train", "x_test"), ("y_train", "y_test")):
            if (a in held) != (b in held):
                has, lacks = (a, b) if a in held else (b, a)
                raise DataError(f"{shown}: holds {has} but no {lacks}; save both splits")
        if _one(held, _IMAGES, shown) is not None:
            raise DataError(f"{shown}: holds both x_train/x_test and x; keep one of them")
        if spec.test_fraction != DataSpec.test_fraction:  # (the default: nothing was asked)
            raise DataError(
                f"{shown}: holds its own split (x_train / x_test), so a test fraction "
                f"({spec.test_fraction:g}) does not apply: leave it out, or save the images as x"
            )
        xs = [_images(held[k], f"{shown}: {k}") for k in ("x_train", "x_test")]
        if xs[0].shape[1:] != xs[1].shape[1:]:
            raise DataError(
                f"{shown}: x_train's images are {xs[0].shape[1:]}, x_test's {xs[1].shape[1:]}; "
                "both splits must be alike"
            )
        ys = None
        if "y_train" in held:
            ys = [
                _label_array(held[f"y_{k}"], len(x), f"{shown}: y_{k}", f"x_{k}")
                for k, x in zip(("train", "test"), xs, strict=True)
            ]
        class_names: list[str] = []
        if ys is not None:
            ys, class_names = _classes(ys, shown, held.get("class_names"))
        elif "class_names" in held:
            raise DataError(f"{shown}: holds class_names but no labels (y_train, y_test)")
        xtr, xte = xs
        ytr, yte = (None, None) if ys is None else ys
        return _finish(spec.describe(), xtr, xte, ytr, yte, class_names)
    x = _one(held, _IMAGES, shown)
    if x is None:
        holds = ", ".join(names) if names else "no arrays"
        raise DataError(f"{shown}: holds no images; name them x or images (it holds {holds})")
    where = shown if npy else f"{shown}: {next(n for n in _IMAGES if n in held)}"
    x = _images(x, where)
    y = _one(held, _LABELS, shown)
    class_names = []
    if spec.labels:
        lpath = Path(spec.labels).expanduser()
        lheld, _, larchive = _arrays(lpath, "labels", {"x"})
        if larchive:
            raise DataError(f"{printable(str(lpath))}: not an .npy file of labels")
        y = lheld["x"]
        lwhere = printable(str(lpath))
    else:
        lwhere = f"{shown}: {next((n for n in _LABELS if n in held), 'y')}"
    if y is not None:
        y = _label_array(y, len(x), lwhere, where)
        (y,), class_names = _classes([y], lwhere, held.get("class_names"))
    elif "class_names" in held:
        raise DataError(f"{shown}: holds class_names but no labels (y or labels)")
    xtr, xte, ytr, yte = _split(x, y, spec.test_fraction, spec.seed)
    return _finish(spec.describe(), xtr, xte, ytr, yte, class_names)
