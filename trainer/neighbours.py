"""Nearest neighbours of a point of the latent space among the training images: does the
model generate, or does it remember?

A :class:`NeighbourIndex` encodes the training images once (posterior means, in batches)
and keeps, for each image, its code (float32) and its pixels (flattened, float16 in [0, 1]).
Two searches:

- :meth:`NeighbourIndex.query`: the images whose codes are nearest to z (L2 in the latent);
- :meth:`NeighbourIndex.query_pixels`: the images nearest to a picture (the decoded image of
  z), L2 over pixels in [0, 1].

Each is one matrix product (``||a||^2 - 2 a.b + ||b||^2``) and a ``topk``; the candidates it
finds are then measured exactly (against the uint8 images themselves for pixels), so the
nearest image of a training image's own code is that image at distance 0. Float16 pixels
halve the memory of float32 and the product's time (it reads half the bytes); their rounding
can only reorder near ties, which the exact pass over a pool of candidates settles. For the
60,000 MNIST training images of a 20-D model the index holds 94 MB of pixels and 4.8 MB of
codes (:meth:`NeighbourIndex.nbytes`).

A data set without training images (an example's bundled test images) is searched in its
test images instead; ``source`` then says "test", and every caller says so.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .latent import decode_batch

Progress = Callable[[float, str], None]  # (fraction done 0..1, what is being done)
BUILD_BATCH = 1000  # images encoded at a time
PIXEL_CHUNK = 16384  # rows of pixels multiplied at a time (bounds the temporaries)
POOL = 32  # at least this many candidates are measured exactly


class Cancelled(Exception):
    """The caller asked a build to stop."""


@dataclass(frozen=True)
class Neighbours:
    """The k nearest images of one query, nearest first."""

    rows: np.ndarray  # (k,) rows of the searched split (train_x, or test_x when source="test")
    distances: np.ndarray  # (k,) float: L2 distance (latent units, or pixels in [0, 1])
    space: str  # "latent" or "pixels"
    source: str  # "train" or "test": which images were searched
    searched: int  # how many images the search looked at (the class's, when restricted)
    cls: int | None = None  # the class the search was restricted to, if any


def model_key(model: torch.nn.Module) -> tuple:
    """What changes when the model's weights do: each parameter's storage and version (a
    tensor's version counts the in-place writes to it: an optimiser step, load_state_dict)."""
    return (id(model), tuple((p.data_ptr(), p._version) for p in model.parameters()))


def index_key(model: torch.nn.Module, data, split: str = "train") -> tuple:
    """The key an index of ``model`` over ``data``'s ``split`` is built for: another model,
    other weights or other data give another key (see :meth:`NeighbourIndex.fits`)."""
    return (model_key(model), id(data), len(data.train_x), len(data.test_x), split)


def searched(data, split: str = "train"):
    """The images an index of ``data``'s ``split`` holds: (source, images, labels); the test
    images where the training split is empty (an example's bundled test images)."""
    source = "test" if split == "test" or len(data.train_x) == 0 else "train"
    if source == "train":
        return source, data.train_x, data.train_y
    return source, data.test_x, data.test_y


def _flat_float(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) uint8 or float images -> (N, C*H*W) float32 in [0, 1]."""
    x = x.reshape(len(x), -1)
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


class NeighbourIndex:
    """The codes and pixels of one split of a data set, encoded by one model.

    Build with :meth:`build`; search with :meth:`query` (latent) and :meth:`query_pixels`.
    """

    def __init__(
        self,
        codes: torch.Tensor,
        pixels: torch.Tensor,
        images: torch.Tensor,
        labels: torch.Tensor | None,
        source: str,
        key: tuple = (),
        seconds: float = 0.0,
    ) -> None:
        self.codes = codes.float().contiguous()  # (N, D)
        self.pixels = pixels.contiguous()  # (N, P) float16 in [0, 1]
        self.images = images  # (N, C, H, W) uint8: the data set's own tensor (not copied)
        self.labels = labels  # (N,) int64 or None
        self.source = source
        self.key = key
        self.seconds = seconds
        self._code_sq = (self.codes.double() ** 2).sum(1).float()  # (N,)
        self._pixel_sq = (self.pixels.float() ** 2).sum(1)  # (N,), of the float16 values

    # -- building -----------------------------------------------------------------------------
    @classmethod
    @torch.no_grad()
    def build(
        cls,
        model,
        data,
        split: str = "train",
        batch: int = BUILD_BATCH,
        progress: Progress | None = None,
        cancelled: Callable[[], bool] | None = None,
        key: tuple | None = None,
    ) -> NeighbourIndex:
        """Encode ``data``'s ``split`` ("train" or "test") with ``model`` (posterior means,
        ``batch`` images at a time). A split of no images falls back to the test images
        (``source="test"``). ``progress(fraction, text)`` is called after each batch;
        ``cancelled()`` is polled, and True ends the build with :class:`Cancelled`.
        ``key``: what the index is for (default :func:`index_key`)."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', not {split!r}")
        if key is None:
            key = index_key(model, data, split)
        source, x, y = searched(data, split)
        n = len(x)
        if n == 0:
            raise ValueError("there are no images to search: the data has no test images either")
        if model.num_classes and y is None:
            raise ValueError("a conditional model needs labelled images to encode")
        p = next(model.parameters(), None)
        dev = p.device if p is not None else torch.device("cpu")
        dt = p.dtype if p is not None and p.dtype.is_floating_point else torch.float32
        t0 = time.perf_counter()
        codes = torch.empty(n, model.latent_dim, dtype=torch.float32)
        pixels = torch.empty(n, math.prod(x.shape[1:]), dtype=torch.float16)
        was_training = model.training
        model.eval()
        try:
            for start in range(0, n, batch):
                if cancelled is not None and cancelled():
                    raise Cancelled
                stop = min(n, start + batch)
                xb = x[start:stop]
                xf = _flat_float(xb)
                pixels[start:stop] = xf.half()
                yb = y[start:stop].to(dev) if model.num_classes else None
                mu, _ = model.encode(xf.reshape(xb.shape).to(dev, dt), yb)
                codes[start:stop] = mu.float().cpu()
                if progress is not None:
                    progress(stop / n, f"{stop:,} of {n:,} {source} images encoded")
        finally:
            model.train(was_training)
        images = x.cpu() if torch.is_tensor(x) else x  # (a memory-mapped split stays one)
        labels = None if y is None else y.cpu().long()
        return cls(codes, pixels, images, labels, source, key, time.perf_counter() - t0)

    def fits(self, key: tuple) -> bool:
        """Whether this index is the one for ``key`` (same model, weights and data)."""
        return self.key == key

    # -- what it holds ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.codes)

    @property
    def nbytes(self) -> int:
        """Memory the index holds of its own (the images are the data set's, not copied)."""
        own = [self.codes, self.pixels, self._code_sq, self._pixel_sq]
        if self.labels is not None:
            own.append(self.labels)
        return sum(t.numel() * t.element_size() for t in own)

    @property
    def where(self) -> str:
        """How callers name the images searched: "training images" or "test images"."""
        return "training images" if self.source == "train" else "test images"

    def count(self, cls: int | None = None) -> int:
        """How many images a search (restricted to class ``cls``) looks at."""
        if cls is None:
            return len(self)
        return int((self.labels == int(cls)).sum()) if self.labels is not None else 0

    # -- searching ----------------------------------------------------------------------------
    def _mask(self, cls: int | None) -> torch.Tensor | None:
        if cls is None:
            return None
        if self.labels is None:
            raise ValueError("these images have no labels: a search cannot keep to one class")
        return self.labels != int(cls)

    def _check_k(self, k: int, cls: int | None) -> int:
        n = self.count(cls)
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a whole number of at least 1, not {k!r}")
        if k > n:
            of = f" of class {cls}" if cls is not None else ""
            raise ValueError(f"k = {k}, but there are only {n:,} {self.where}{of} to search")
        return int(k)

    def _pool(self, d2: torch.Tensor, k: int, mask: torch.Tensor | None, n: int):
        """The candidate rows of each query (B, m): the ``m`` smallest of ``d2`` (B, N)."""
        if mask is not None:
            d2 = d2.masked_fill(mask, float("inf"))
        m = min(n, max(POOL, 4 * k))
        return torch.topk(d2, m, dim=1, largest=False).indices

    def _finish(self, exact: torch.Tensor, cand: torch.Tensor, k: int, space: str, cls, n):
        """Keep the k nearest of the candidates by their exact distances (B, m)."""
        order = torch.argsort(exact, dim=1, stable=True)[:, :k]
        rows = torch.gather(cand, 1, order).numpy()
        dist = torch.gather(exact, 1, order).numpy()
        return [Neighbours(r, d, space, self.source, n, cls) for r, d in zip(rows, dist)]

    def query(self, z, k: int = 8, cls: int | None = None):
        """The k images whose codes are nearest to ``z`` (D,) — or to each row of (B, D),
        giving a list — restricted to class ``cls`` when given (a conditional model's
        current class)."""
        z = torch.as_tensor(np.asarray(z, dtype=np.float32))
        one = z.ndim == 1
        z = z.reshape(-1, self.codes.shape[1]) if z.numel() else z.reshape(0, 0)
        if z.ndim != 2 or z.shape[1] != self.codes.shape[1]:
            raise ValueError(
                f"z has {z.shape[-1] if z.ndim else 0} values; the codes have {self.codes.shape[1]}"
            )
        k = self._check_k(k, cls)
        n = self.count(cls)
        d2 = (z * z).sum(1, keepdim=True) - 2.0 * (z @ self.codes.T) + self._code_sq  # (B, N)
        cand = self._pool(d2, k, self._mask(cls), n)
        exact = (self.codes[cand] - z[:, None, :]).double().norm(dim=2)  # (B, m)
        found = self._finish(exact, cand, k, "latent", cls, n)
        return found[0] if one else found

    def query_pixels(self, image, k: int = 8, cls: int | None = None):
        """The k images nearest to ``image`` (C, H, W) — or each of (B, C, H, W) — in pixel
        space: L2 over pixels in [0, 1] (a uint8 image is divided by 255)."""
        x = torch.as_tensor(image)
        one = x.ndim == 3
        x = x.reshape(1, *x.shape) if one else x
        if x.ndim != 4 or tuple(x.shape[1:]) != tuple(self.images.shape[1:]):
            shape = "x".join(map(str, self.images.shape[1:]))
            raise ValueError(f"image of shape {tuple(x.shape)}; the images are {shape}")
        q = _flat_float(x)  # (B, P)
        k = self._check_k(k, cls)
        n = self.count(cls)
        qh = q.half()
        dots = torch.cat(
            [
                (self.pixels[i : i + PIXEL_CHUNK] @ qh.T).float().T
                for i in range(0, len(self.pixels), PIXEL_CHUNK)
            ],
            dim=1,
        )  # (B, N)
        d2 = (qh.float() ** 2).sum(1, keepdim=True) - 2.0 * dots + self._pixel_sq
        cand = self._pool(d2, k, self._mask(cls), n)
        rows = _flat_float(self.images[cand.reshape(-1)]).reshape(*cand.shape, -1)
        exact = (rows - q[:, None, :]).double().norm(dim=2)  # (B, m)
        found = self._finish(exact, cand, k, "pixels", cls, n)
        return found[0] if one else found

    def thumbnails(self, rows) -> torch.Tensor:
        """The images of ``rows`` as floats in [0, 1]: (k, C, H, W)."""
        idx = torch.as_tensor(np.asarray(rows, dtype=np.int64))
        return self.images[idx].float() / 255.0


@dataclass(frozen=True)
class Search:
    """The two searches of one point of the latent space: its decoded image, and the
    nearest images by code and by pixels."""

    z: np.ndarray  # (D,)
    image: torch.Tensor  # (C, H, W) the decoded image of z, in [0, 1]
    latent: Neighbours
    pixels: Neighbours
    cls: int | None  # the class z was decoded with (conditional models), which the search keeps


def search(model, index: NeighbourIndex, z, k: int = 8, cls: int | None = None) -> Search:
    """Decode z (with class ``cls`` for a conditional model) and find its k nearest images
    in the index, by code and by the decoded image's pixels. A conditional model's search
    keeps to class ``cls`` (its images of other classes are another question)."""
    z = torch.as_tensor(np.asarray(z, dtype=np.float32)).reshape(-1)
    if z.numel() != model.latent_dim:
        raise ValueError(f"z has {z.numel()} values; the model's latent has {model.latent_dim}")
    y = cls if model.num_classes else None
    if model.num_classes and y is None:
        raise ValueError("a conditional model needs a class to decode")
    image = decode_batch(model, z.reshape(1, -1), y)[0]
    return Search(z.numpy(), image, index.query(z, k, y), index.query_pixels(image, k, y), y)


def describe(found: Neighbours, class_names: list[str] | None = None) -> str:
    """One line naming what was searched: "latent space, 60,000 training images" and the
    class a search kept to."""
    space = "latent space (L2 of codes)" if found.space == "latent" else "pixel space (L2, [0, 1])"
    of = ""
    if found.cls is not None:
        name = class_names[found.cls] if class_names and found.cls < len(class_names) else ""
        of = f" of class {found.cls}" + (f" ({name})" if name and name != str(found.cls) else "")
    where = "training images" if found.source == "train" else "test images"
    return f"nearest {where} in {space}, among {found.searched:,}{of}"
