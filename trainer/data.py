"""Datasets as uint8 tensors, one per split.

Every source ends in an :class:`ImageData`: ``train_x`` / ``test_x`` of shape (N, C, H, W),
dtype uint8, and int64 labels (or None). Training slices batches out of these tensors by
index; no per-sample Python work and no PIL happen after loading. The training split of a
decoded cache (:mod:`trainer.cache`) is not copied: it is :class:`Rows` of the memory-mapped
file, which a trainer copies onto its device when it fits there, and streams from otherwise
(:mod:`trainer.feed`).
"""

from __future__ import annotations

import gzip
import math
import numbers
import os
import reprlib
import stat
import struct
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import MAX_CLASSES, MAX_SEED
from .files import NotRegularFile, open_regular, printable, read_problem
from .imaging import BACKGROUNDS, BLANK_LEVELS

SOURCES = ("mnist", "fashion-mnist", "kmnist", "shapes", "idx", "folder")
# the test images bundled with the example models (assets/examples/data/<bundle>): data to
# explore a model with, never to train on, so it is no choice of ``--dataset``
EXAMPLE = "example"
SOURCE_TITLES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "kmnist": "Kuzushiji-MNIST",
                 "shapes": "the built-in shapes"}  # fmt: skip
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}

# progress(fraction in 0..1 or None, text): called during long loads; may raise to cancel
Progress = Callable[[float | None, str], None]

MNIST_CLASSES = [str(i) for i in range(10)]
FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
KMNIST_CLASSES = ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"]
SHAPE_CLASSES = ["circle", "square", "triangle", "ring", "cross"]


class DataError(Exception):
    """Data could not be loaded; the message names the file or source and what to do.

    ``str(e)`` speaks of the command line's flags; ``e.gui``, where the window names the
    same thing differently, says it in the window's terms.
    """

    def __init__(self, message: str, gui: str | None = None) -> None:
        super().__init__(message)
        self.gui = gui


def _short(v: Any) -> str:
    """``repr(v)``, cut short: values in messages may come from any file."""
    return reprlib.repr(v)


def cache_dir() -> Path:
    """Where downloaded datasets live: $LATENT_EXPLORER_DATA, else the user's cache folder."""
    env = os.environ.get("LATENT_EXPLORER_DATA")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "latent-explorer" / "datasets"


@dataclass(frozen=True)
class DataSpec:
    """Which data to load; stored in checkpoints so that a model can find its data again."""

    source: str = "shapes"
    images: str | None = None  # idx: images file
    labels: str | None = None  # idx: labels file (optional)
    root: str | None = None  # folder: one sub-folder per class
    image_size: int = 28  # folder / shapes: side of the (square) images
    test_fraction: float = 0.2  # sources without an official test split
    seed: int = 0
    shapes_count: int = 6000  # shapes: images in all
    bundle: str | None = None  # example: the bundled test set's name ("mnist", …)
    background: str = "white"  # folder: what transparent pixels are put on (or "black")

    def __post_init__(self) -> None:
        # from_dict is fed checkpoint metadata and settings files: any type may arrive here
        if not isinstance(self.source, str) or self.source not in (*SOURCES, EXAMPLE):
            raise DataError(
                f"unknown dataset {_short(self.source)}; choose one of {', '.join(SOURCES)}"
            )
        for name in ("images", "labels", "root", "bundle"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, str):
                raise DataError(
                    f"data field {name!r} must be a file name or empty, not {_short(v)}"
                )
        for name in ("image_size", "seed", "shapes_count"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise DataError(f"data field {name!r} must be a whole number, not {_short(v)}")
            object.__setattr__(self, name, int(v))
        if not isinstance(self.background, str) or self.background not in BACKGROUNDS:
            raise DataError(
                f"data field 'background' must be {' or '.join(BACKGROUNDS)}, "
                f"not {_short(self.background)}"
            )
        tf = self.test_fraction
        if isinstance(tf, bool) or not isinstance(tf, numbers.Real) or not math.isfinite(tf):
            raise DataError(
                f"data field 'test_fraction' must be a number between 0 and 1, not {_short(tf)}"
            )
        object.__setattr__(self, "test_fraction", float(tf))
        if self.source == "idx" and not self.images:
            raise DataError(
                "--dataset idx needs --images FILE (and optionally --labels FILE)",
                gui="IDX files need an images file: choose one under Data ▸ Images "
                "(a labels file is optional).",
            )
        if self.source == "folder" and not self.root:
            raise DataError(
                "--dataset folder needs --root DIR (one sub-folder per class)",
                gui="An image folder needs a folder: choose one under Data ▸ Folder "
                "(one sub-folder per class).",
            )
        if self.source == EXAMPLE:
            from .examples import check_bundle_name  # a name, never a path

            check_bundle_name(self.bundle)
        if not (0.0 < self.test_fraction < 1.0):
            raise DataError(f"test fraction must be between 0 and 1, not {self.test_fraction}")
        if not (8 <= self.image_size <= 256):
            raise DataError(f"image size must be 8 to 256 pixels, not {self.image_size}")
        if not (10 <= self.shapes_count <= 1_000_000):
            raise DataError(f"shapes count must be 10 to 1000000, not {self.shapes_count}")
        if not (0 <= self.seed <= MAX_SEED):
            raise DataError(f"seed must be 0 to {MAX_SEED}, not {self.seed}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataSpec:
        if not isinstance(d, dict):
            raise DataError(f"data settings must be a mapping of fields, not {_short(d)}")
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def describe(self) -> str:
        """The data's name for people: "Fashion-MNIST", "IDX file t10k-images.gz", …"""
        if self.source == "idx":
            return f"IDX file {Path(self.images).name}"
        if self.source == "folder":
            return f"image folder {self.root}"
        if self.source == EXAMPLE:
            from .examples import bundle_title

            return f"the bundled {bundle_title(self.bundle)} test images"
        return SOURCE_TITLES[self.source]


def _real(path: str | None) -> str | None:
    """``path`` resolved (links, ``..``), for telling two names of one file apart."""
    if path is None:
        return None
    try:
        return os.path.realpath(os.path.expanduser(path))
    except (OSError, ValueError):
        return path


def same_data(a: DataSpec | None, b: DataSpec | None) -> bool:
    """``a`` and ``b`` name the same images: the same dataset, IDX file or folder (a model
    trained on one and continued on the other is not fine-tuned on other data). The shapes'
    count and a source's test split do not count; an example's bundled test images are
    its dataset's (a bundle is named as its dataset's source)."""

    def identity(s: DataSpec) -> tuple:
        if s.source == EXAMPLE:
            return (s.bundle,)
        if s.source == "idx":
            return ("idx", _real(s.images))
        if s.source == "folder":
            return ("folder", _real(s.root))
        return (s.source,)

    return a is not None and b is not None and identity(a) == identity(b)


def describe_shape(shape: tuple[int, int, int]) -> str:
    """(1, 28, 28) -> "28 x 28 greyscale"; (3, 64, 64) -> "64 x 64 colour"."""
    c, h, w = shape
    kind = {1: "greyscale", 3: "colour"}.get(c, f"{c}-channel")
    return f"{w} x {h} {kind}"


def model_data_problem(image_shape, num_classes: int, conditional: bool, data) -> str | None:
    """Why a model taking ``image_shape`` images (conditioned on ``num_classes`` classes
    when ``conditional``) cannot learn from ``data`` (an ImageData), or None if it can."""
    if tuple(data.image_shape) != tuple(image_shape):
        return (
            f"the model takes {describe_shape(tuple(image_shape))} images, and those of "
            f"{data.name} are {describe_shape(data.image_shape)}"
        )
    if conditional and data.num_classes != num_classes:
        has = f"{data.num_classes}" if data.num_classes else "no labels"
        return f"the model is conditioned on {num_classes} classes, and {data.name} has {has}"
    return None


class Rows:
    """The rows ``index`` of a uint8 image array ``base`` (N, C, H, W) on the CPU, not
    copied: a split of a memory-mapped decoded cache, read only as it is needed.

    It answers what code asks of an image tensor (``len``, ``shape``, slicing and indexing,
    which gather those rows into a new tensor); :meth:`to` gives the whole split as one
    tensor on a device, and :mod:`trainer.feed` gathers training batches from ``base``
    directly."""

    CHUNK_BYTES = 64 << 20  # copied onto a device this many bytes at a time

    def __init__(self, base: torch.Tensor, index: torch.Tensor) -> None:
        self.base, self.index = base, index.to(torch.int64)
        self._dense: torch.Tensor | None = None  # the copy in memory, once made

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.index), *self.base.shape[1:]))

    @property
    def dtype(self) -> torch.dtype:
        return self.base.dtype

    @property
    def device(self) -> torch.device:
        return self.base.device

    @property
    def nbytes(self) -> int:
        return len(self.index) * self.base[:1].nbytes

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key) -> torch.Tensor:
        if isinstance(key, numbers.Integral):
            return self.base[int(self.index[key])]
        return self.base.index_select(0, self.index[key])

    def to(self, device: torch.device | str) -> torch.Tensor:
        """The whole split as one tensor on ``device`` (in memory on the CPU: made once, then
        kept), copied a chunk at a time."""
        device = torch.device(device)
        if device.type == "cpu" and self._dense is not None:
            return self._dense
        out = torch.empty(self.shape, dtype=self.dtype, device=device)
        step = max(1, self.CHUNK_BYTES // max(1, self.base[:1].nbytes))
        for i in range(0, len(self), step):
            out[i : i + step].copy_(self[i : i + step])
        if device.type == "cpu":
            self._dense = out
        return out

    def __repr__(self) -> str:
        return f"Rows({tuple(self.shape)} of {tuple(self.base.shape)})"


def nbytes(x: torch.Tensor | Rows) -> int:
    """The bytes of an image split (a tensor or :class:`Rows`)."""
    return x.nbytes if isinstance(x, Rows) else x.numel() * x.element_size()


@dataclass
class ImageData:
    """One dataset. Images are uint8 (N, C, H, W); labels int64 (N,) or None. The training
    images may be :class:`Rows` of a memory-mapped cache; the test images are in memory."""

    name: str
    train_x: torch.Tensor | Rows
    test_x: torch.Tensor
    train_y: torch.Tensor | None = None
    test_y: torch.Tensor | None = None
    class_names: list[str] = field(default_factory=list)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.class_names) if self.train_y is not None else 0

    @property
    def device(self) -> torch.device:
        return self.train_x.device

    def to(self, device: torch.device | str) -> ImageData:
        mv = lambda t: None if t is None else t.to(device)  # noqa: E731
        return replace(
            self,
            train_x=mv(self.train_x),
            test_x=mv(self.test_x),
            train_y=mv(self.train_y),
            test_y=mv(self.test_y),
        )

    def __repr__(self) -> str:
        return (
            f"ImageData({self.name!r}, train={tuple(self.train_x.shape)}, "
            f"test={tuple(self.test_x.shape)}, classes={self.num_classes})"
        )


# -- IDX -------------------------------------------------------------------------------------
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


MAX_IDX_BYTES = 2**31  # the most data one IDX file may hold (MNIST's training images: 47 MB)
MAX_SIDE = 1024  # IDX images: at most this many pixels high and wide
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
        kinds = [(stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a device"),
                 (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket")]  # fmt: skip
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


def _as_nchw(arr: np.ndarray, what: str) -> np.ndarray:
    if arr.ndim == 3:  # (N, H, W)
        arr = arr[:, None]
    elif arr.ndim == 4 and arr.shape[-1] in (1, 3) and arr.shape[1] not in (1, 3):
        arr = arr.transpose(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
    if arr.ndim != 4 or arr.shape[1] not in (1, 3):
        raise DataError(f"{what}: expected images (N, H, W) or (N, C, H, W), got shape {arr.shape}")
    h, w = arr.shape[2:]
    if not (1 <= min(h, w) and max(h, w) <= MAX_SIDE):
        raise DataError(f"{what}: images must be 1 to {MAX_SIDE} pixels high and wide, not {h}x{w}")
    if arr.dtype != np.uint8:
        arr = _to_uint8(arr, what)
    return np.ascontiguousarray(arr)


def _to_uint8(arr: np.ndarray, what: str) -> np.ndarray:
    """Pixels of another type as uint8: values in 0..1 scaled to 0..255, then rounded and
    clipped to 0..255; NaN or infinite pixels refused. Converted a few MB at a time."""
    out = np.empty(arr.shape, dtype=np.uint8)
    if arr.size == 0:
        return out
    step = max(1, (4 << 20) // math.prod(arr.shape[1:]))
    lo, hi = math.inf, -math.inf
    for i in range(0, len(arr), step):
        c = arr[i : i + step]
        if c.dtype.kind == "f" and not np.isfinite(c).all():
            j = i + int(np.flatnonzero(~np.isfinite(c).reshape(len(c), -1).all(1))[0])
            raise DataError(f"{what}: image {j} has pixels that are not numbers (NaN or infinite)")
        lo, hi = min(lo, float(c.min())), max(hi, float(c.max()))
    if lo < 0 or hi > 255:  # clipping would turn such images black or white without a word
        raise DataError(
            f"{what}: pixels run from {lo:.6g} to {hi:.6g}; images must hold 0 to 255, "
            "or 0 to 1 as floating point: rescale them"
        )
    scale = 255.0 if hi <= 1.0 else 1.0
    for i in range(0, len(arr), step):
        c = np.clip(arr[i : i + step].astype(np.float64), -1.0, 256.0)
        c *= scale
        out[i : i + step] = np.clip(np.rint(c), 0, 255)
    return out


def _fmt(v) -> str:
    v = v.item() if isinstance(v, np.generic) else v
    if isinstance(v, float) and math.isfinite(v) and v == int(v):
        v = int(v)
    return f"{v:g}" if isinstance(v, float) else str(v)


def _labels(y: np.ndarray, where: str, classes: int | None = None) -> tuple[np.ndarray, list[str]]:
    """Labels as int64 and their class names, if they are whole numbers 0..K-1 with every
    class present and K <= MAX_CLASSES; a DataError naming the first bad image otherwise.
    ``classes``: the class count of a known dataset (then classes may be absent)."""
    if y.size == 0:
        return y.astype(np.int64), []
    bad = None
    if y.dtype.kind == "f":
        finite = np.isfinite(y)
        if not finite.all():
            bad = "labels must be whole numbers"
            i = int(np.argmin(finite))
        elif (y != np.floor(y)).any():
            bad = "labels must be whole numbers"
            i = int(np.argmax(y != np.floor(y)))
    top = MAX_CLASSES if classes is None else classes
    if bad is None and y.min() < 0:
        bad, i = f"labels must be 0 to {top - 1}", int(np.argmin(y))
    if bad is None and y.max() >= top:
        limit = "" if classes is not None else f" (at most {MAX_CLASSES} classes)"
        bad, i = f"labels must be 0 to {top - 1}{limit}", int(np.argmax(y))
    if bad is not None:
        raise DataError(f"{where}: image {i} has label {_fmt(y[i])}; {bad}")
    y = y.astype(np.int64)
    k = int(y.max()) + 1 if classes is None else classes
    count = np.bincount(y, minlength=k)
    missing = np.flatnonzero(count == 0)
    if classes is None and missing.size:
        a = int(missing[0])
        b = a + int(np.flatnonzero(count[a:])[0])  # the next label in use (the largest is)
        i = int(np.argmax(y == b))
        unused = f"label {a} is unused" if b == a + 1 else f"labels {a}..{b - 1} are unused"
        raise DataError(
            f"{where}: image {i} has label {b} but {unused}; labels must be 0 to K-1 "
            "with every class present"
        )
    return y, [str(c) for c in range(k)]


def _split(x: np.ndarray, y: np.ndarray | None, test_fraction: float, seed: int) -> tuple:
    """(train x, test x, train y, test y). A memory-mapped ``x`` (a decoded cache) keeps its
    training rows where they are, as :class:`Rows`; the rest is copied out."""
    n = len(x)
    if n < 2:
        raise DataError("need at least 2 images to make a train/test split")
    perm = np.random.default_rng(seed).permutation(n)
    n_test = min(n - 1, max(1, round(n * test_fraction)))
    te, tr = perm[:n_test], perm[n_test:]
    if isinstance(x, np.memmap):
        xtr = Rows(torch.from_numpy(x), torch.from_numpy(tr))
        xte = torch.from_numpy(x).index_select(0, torch.from_numpy(te))
    else:
        xtr, xte = x[tr], x[te]
    return xtr, xte, None if y is None else y[tr], None if y is None else y[te]


def _finish(name, xtr, xte, ytr, yte, class_names) -> ImageData:
    def t(a):
        if a is None or isinstance(a, (Rows, torch.Tensor)):
            return a
        return torch.from_numpy(np.ascontiguousarray(a))

    return ImageData(
        name=name,
        train_x=t(xtr),
        test_x=t(xte),
        train_y=None if ytr is None else t(ytr.astype(np.int64)),
        test_y=None if yte is None else t(yte.astype(np.int64)),
        class_names=list(class_names) if ytr is not None else [],
    )


def load_idx(spec: DataSpec, progress: Progress | None = None) -> ImageData:
    paths = [Path(spec.images).expanduser()] + ([Path(spec.labels).expanduser()]
                                                if spec.labels else [])  # fmt: skip
    key = _key("idx", paths, None, {})
    hit = _cached(key, progress)
    if hit is not None:
        x, y, class_names = hit.x, hit.y, hit.class_names
    else:
        progress = _in_memory(key, progress)
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
        x = _keep(key, "idx:" + "|".join(str(p.resolve()) for p in paths), x, y, class_names)
    xtr, xte, ytr, yte = _split(x, y, spec.test_fraction, spec.seed)
    return _finish(spec.describe(), xtr, xte, ytr, yte, class_names)


def _key(kind: str, files: list[Path], root: Path | None, options: dict) -> str | None:
    """The decoded cache's key for these files, from their bytes (None: not cacheable, as a
    file that cannot be read or is no regular file; its loader says why)."""
    from . import cache

    try:
        return cache.fingerprint(kind, files, root, options)
    except (OSError, ValueError):
        return None


def _cached(key: str | None, progress: Progress | None):
    from . import cache

    if key is None:
        return None
    hit = cache.load(key)
    if hit is not None and progress is not None:
        progress(1.0, f"{len(hit.x):,} images, decoded before (read from the cache)")
    return hit


def _in_memory(key: str | None, progress: Progress | None) -> Progress | None:
    """``progress``, saying "in memory" and why when the cache of ``key`` cannot be kept."""
    from . import cache

    unkept = None if key is None or progress is None else cache.writable(key)
    if unkept is None:
        return progress
    return lambda fraction, text: progress(fraction, f"{text} (in memory: {unkept})")


def _keep(key: str | None, source: str, x, y, class_names) -> np.ndarray:
    """Store the decoded images as the cache of ``key``; returns them memory-mapped from
    there (so that the decoded copy can go), or ``x`` itself if they could not be stored."""
    from . import cache

    if key is None:
        return x
    kept = cache.store(key, source, cache.Decoded(x, y, list(class_names)))
    return x if kept is None else kept


# -- image folder -----------------------------------------------------------------------------
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
    of a single colour (blank), give or take :data:`~trainer.imaging.BLANK_LEVELS` levels.

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
    from .imaging import ImageError, ImageTooLarge, decode_image, max_pixels

    root = Path(spec.root).expanduser()
    shown = printable(str(root))
    if not root.is_dir():
        raise DataError(f"{shown}: no such folder")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataError(f"{shown}: no class sub-folders (expected ROOT/<class>/<image files>)")
    from . import cache

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
    # "decoding": how images are decoded (trainer.imaging); a new way decodes them again.
    # "root": where the folder is (two folders alike in names, sizes and times are two)
    options = {"image_size": s, "classes": classes, "max_pixels": max_pixels(),
               "background": spec.background, "decoding": 2,
               "root": str(root.resolve())}  # fmt: skip
    key = cache.folder_key(entries, options)
    hit = _cached(key, progress)
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
    x = _keep(key, f"folder:{root.resolve()}:{s}", x, y, classes)
    xtr, xte, ytr, yte = _split(x, y, spec.test_fraction, spec.seed)
    return _finish(f"folder:{root.name}", xtr, xte, ytr, yte, classes)


# -- built-in shapes --------------------------------------------------------------------------
SHAPES_CHUNK_BYTES = 8 << 20  # shapes are drawn this many bytes of float32 per array at a time


def make_shapes(
    n: int, size: int = 28, seed: int = 0, progress: Progress | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A labelled, procedurally generated set of anti-aliased white shapes on black.

    Classes: circle, square, triangle, ring, cross, each with random position, size and
    rotation. Vectorised over signed distance fields (no per-image Python work), a few
    thousand images at a time so that memory stays bounded and ``progress`` is called
    between chunks. Returns (uint8 images (n, 1, size, size), int64 labels (n,)).
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(SHAPE_CLASSES), n)
    radius = rng.uniform(0.22, 0.36, n)[:, None, None]  # in units of the image side
    cx, cy = rng.uniform(-0.12, 0.12, (2, n))[..., None, None]
    theta = rng.uniform(0, 2 * np.pi, n)[:, None, None]
    radius, cx, cy, theta = (a.astype(np.float32) for a in (radius, cx, cy, theta))
    t = ((np.arange(size) + 0.5) / size - 0.5).astype(np.float32)
    gy, gx = np.meshgrid(t, t, indexing="ij")  # (size, size)
    x = np.empty((n, 1, size, size), dtype=np.uint8)
    step = max(1, SHAPES_CHUNK_BYTES // (4 * size * size))
    for i in range(0, n, step):
        j = min(n, i + step)
        x[i:j, 0] = _shape_chunk(labels[i:j], radius[i:j], cx[i:j], cy[i:j], theta[i:j], gx, gy)
        if progress is not None:
            progress(j / n, f"{j:,} of {n:,} shapes")
    return x, labels.astype(np.int64)


def _shape_chunk(labels, radius, cx, cy, theta, gx, gy) -> np.ndarray:
    size = gx.shape[0]
    px, py = gx[None] - cx, gy[None] - cy
    c, s = np.cos(theta), np.sin(theta)
    u, v = c * px + s * py, -s * px + c * py  # rotated coordinates
    r = np.hypot(u, v)
    sdf = np.empty((len(labels), size, size), dtype=np.float32)
    for k in range(len(SHAPE_CLASSES)):
        m = labels == k
        if not m.any():
            continue
        uu, vv, rr, R = u[m], v[m], r[m], radius[m]
        if k == 0:  # circle
            d = rr - R
        elif k == 1:  # square
            d = np.maximum(np.abs(uu), np.abs(vv)) - 0.75 * R
        elif k == 2:  # equilateral triangle: intersection of three half-planes
            d = (
                np.max(
                    [
                        np.cos(a) * uu + np.sin(a) * vv
                        for a in (np.pi / 2, 7 * np.pi / 6, 11 * np.pi / 6)
                    ],
                    axis=0,
                )
                - 0.55 * R
            )
        elif k == 3:  # ring
            d = np.abs(rr - 0.8 * R) - 0.18 * R
        else:  # cross: union of two bars
            d = np.minimum(_bar(uu, vv, R), _bar(vv, uu, R))
        sdf[m] = d
    pixel = 1.0 / size
    img = np.clip(0.5 - sdf / pixel, 0.0, 1.0)  # one-pixel anti-aliased edge
    return np.rint(img * 255).astype(np.uint8)


def _bar(a: np.ndarray, b: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Signed distance to a bar of half-length r and half-width 0.28 r along a."""
    return np.maximum(np.abs(a) - r, np.abs(b) - 0.28 * r)


def load_shapes(spec: DataSpec, progress: Progress | None = None) -> ImageData:
    x, y = make_shapes(spec.shapes_count, spec.image_size, spec.seed, progress)
    xtr, xte, ytr, yte = _split(x, y, spec.test_fraction, spec.seed + 1)
    return _finish("shapes", xtr, xte, ytr, yte, SHAPE_CLASSES)


# -- torchvision MNIST family -----------------------------------------------------------------
_TV = {
    "mnist": ("MNIST", MNIST_CLASSES),
    "fashion-mnist": ("FashionMNIST", FASHION_CLASSES),
    "kmnist": ("KMNIST", KMNIST_CLASSES),
}


def offline_hint() -> str:
    alts = [
        "--dataset shapes (built in, no files needed)",
        "--dataset idx --images FILE [--labels FILE]",
        "--dataset folder --root DIR",
    ]
    if debian_fashion_available():
        alts.insert(0, "--dataset fashion-mnist (Debian's files are installed)")
    else:
        alts.append("Fashion-MNIST offline via `apt-get install dataset-fashion-mnist`")
    return "offline alternatives: " + "; ".join(alts)


def debian_fashion_available(root: Path | None = None) -> bool:
    """True if Debian's ``dataset-fashion-mnist`` files are in ``root`` (default: where the
    package puts them; looked up at call time, so tests and callers can move it)."""
    root = DEBIAN_FASHION if root is None else Path(root)
    names = [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ]
    return all((root / n).exists() or (root / (n + ".gz")).exists() for n in names)


def _idx_pair(
    root: Path, prefix: str, classes: int, progress: Progress | None = None
) -> tuple[np.ndarray, np.ndarray]:
    def pick(n: str) -> Path:
        return root / n if (root / n).exists() else root / (n + ".gz")

    images, labels = pick(f"{prefix}-images-idx3-ubyte"), pick(f"{prefix}-labels-idx1-ubyte")
    x = _as_nchw(read_idx(images, "images", progress), str(images))
    y = read_idx(labels, "labels", progress)
    if len(y) != len(x):
        raise DataError(f"{labels}: {len(y)} labels for {len(x)} images in {images}")
    return x, _labels(y, str(labels), classes)[0]


def is_cached(source: str) -> bool:
    """True if a torchvision dataset is already on disk (or, for Fashion-MNIST, Debian's)."""
    if source == "fashion-mnist" and debian_fashion_available():
        return True
    if source not in _TV:
        return True
    raw = cache_dir() / _TV[source][0] / "raw"
    return (raw / "train-images-idx3-ubyte").exists() and (raw / "t10k-images-idx3-ubyte").exists()


def load_torchvision(spec: DataSpec, progress: Progress | None = None) -> ImageData:
    cls_name, class_names = _TV[spec.source]
    if spec.source == "fashion-mnist" and debian_fashion_available():
        xtr, ytr = _idx_pair(DEBIAN_FASHION, "train", len(class_names), progress)
        xte, yte = _idx_pair(DEBIAN_FASHION, "t10k", len(class_names), progress)
        return _finish("fashion-mnist", xtr, xte, ytr, yte, class_names)
    import torchvision.datasets as tvd

    root = cache_dir()
    if progress is not None and not is_cached(spec.source):
        progress(None, f"Downloading {spec.describe()}…")
    try:
        root.mkdir(parents=True, exist_ok=True)
        ds = {
            s: getattr(tvd, cls_name)(str(root), train=s == "train", download=True)
            for s in ("train", "test")
        }
    except Exception as e:  # urllib / socket / RuntimeError: all mean "could not get it"
        first = (str(e).strip().splitlines() or [type(e).__name__])[0].rstrip(".:")
        head = f"could not download {spec.source} into {root} ({first})"
        here = "Fashion-MNIST (installed on this computer), " if debian_fashion_available() else ""
        raise DataError(
            f"{head}; " + offline_hint(),
            gui=f"{head}. Without internet, choose {here}Shapes (built in), IDX files or an "
            "image folder under Data.",
        ) from None
    x = {s: ds[s].data.numpy()[:, None] for s in ds}
    y = {s: ds[s].targets.numpy().astype(np.int64) for s in ds}
    return _finish(spec.source, x["train"], x["test"], y["train"], y["test"], class_names)


def load_data(spec: DataSpec, progress: Progress | None = None) -> ImageData:
    """Load the dataset ``spec`` describes, on the CPU.

    ``progress(fraction, text)``, if given, is called now and then during long work
    (``fraction`` in 0..1, or None when there is nothing to measure); an exception it raises
    ends the load (the window cancels a load that way when it closes).
    """
    if progress is not None:
        progress(None, f"Loading {spec.describe()}…")
    if spec.source in _TV:
        return load_torchvision(spec, progress)
    if spec.source == "idx":
        return load_idx(spec, progress)
    if spec.source == "folder":
        return load_folder(spec, progress)
    if spec.source == EXAMPLE:
        from .examples import load_bundle

        return load_bundle(spec.bundle, progress)
    return load_shapes(spec, progress)
