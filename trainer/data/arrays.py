"""Datasets as uint8 tensors, one per split.

Every source ends in an :class:`ImageData`: ``train_x`` / ``test_x`` of shape (N, C, H, W),
dtype uint8, and int64 labels (or None). Training slices batches out of these tensors by
index; no per-sample Python work and no PIL happen after loading. The training split of a
decoded cache (:mod:`trainer.data.cache`) is not copied: it is :class:`Rows` of the
memory-mapped file, which a trainer copies onto its device when it fits there, and streams
from otherwise (:mod:`trainer.loop.feed`).

Also the checks every source's arrays pass on their way in: images as (N, C, H, W) uint8,
labels as whole numbers 0..K-1, and the seeded train/test split.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ..config import MAX_CLASSES
from .spec import DataError

MAX_SIDE = 1024  # IDX images: at most this many pixels high and wide


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
    tensor on a device, and :mod:`trainer.loop.feed` gathers training batches from ``base``
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
class Attributes:
    """Yes-or-no attributes of each image, as CelebA's 40 (Smiling, Eyeglasses, …): their
    names, and per split a bool tensor (N, K) on the CPU, in the order of the split's images."""

    names: list[str]
    train: torch.Tensor
    test: torch.Tensor


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
    attributes: Attributes | None = None  # CelebA's, kept on the CPU wherever the images go

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
