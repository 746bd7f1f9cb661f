"""Maps of a set of latent codes on a plane: two chosen axes, the principal plane, a custom
plane of two directions, or a non-linear embedding (UMAP, t-SNE).

The linear methods are planes (:class:`~trainer.latent.Plane`): a point of the map lifts back
to a latent code exactly, so the manifold can be decoded on them. The non-linear ones are not:
their ``Projection.plane`` is None, and a point of such a map stands for the codes near it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .files import atomic_write, open_regular
from .latent import Plane, dims_plane, principal_plane
from .paths import cache_dir

LINEAR = ("axes", "pca", "custom")
NONLINEAR = ("umap", "tsne")
METHODS = ("axes", "pca", "custom", "umap", "tsne")
TITLES = {
    "axes": "two latent dimensions",
    "pca": "principal plane (PCA)",
    "custom": "two directions",
    "umap": "UMAP",
    "tsne": "t-SNE",
}

Progress = Callable[[float, str], None]  # (fraction done 0..1, what is being done)
Transform = Callable[[np.ndarray], np.ndarray]  # codes (M, D) -> their places (M, 2)

INSTALL = "pip install 'latent-explorer[maps]'"
# below this many codes Barnes-Hut t-SNE is faster than FFT-interpolated t-SNE
BH_BELOW = 10_000
UMAP_NEIGHBOURS = 15
# below this many codes UMAP measures every pair's distance itself (its own threshold), which
# spares NN-descent's compilation; above it the neighbour graph is a stage of its own
UMAP_EXACT_BELOW = 4096
TSNE_PERPLEXITY = 30.0


class MapUnavailable(RuntimeError):
    """The method cannot run here (its library is not installed, or the codes do not allow
    it); the message says why and what to do, in one line."""


class Cancelled(Exception):
    """The caller asked a running map to stop."""


@dataclass(frozen=True)
class Projection:
    """A map of N codes: ``xy`` (N, 2) float32, and for a linear method the plane it is."""

    method: str
    xy: np.ndarray
    names: tuple[str, str]  # the axes as people read them
    plane: Plane | None  # None for a non-linear map: its points do not lift back exactly
    seconds: float = 0.0
    # places new codes (M, D) on this map (M, 2): a plane's projection, or the fitted UMAP or
    # t-SNE model's own transform; None where nothing fitted is kept (a map read from a cache)
    transform: Transform | None = None

    @property
    def invertible(self) -> bool:
        return self.plane is not None


def custom_plane(u, v, centre, names: tuple[str, str] | None = None) -> Plane:
    """The plane through ``centre`` (D,) spanned by directions ``u`` and ``v`` (D,): its first
    axis along u, its second along the part of v orthogonal to u, each scaled to the length
    of its direction (so a step of 1 on the map is one whole direction). ``names`` are its
    axes' names ("class 3 → class 8", …); without them, "direction 1" and "direction 2"."""
    u = torch.as_tensor(np.asarray(u), dtype=torch.float64).reshape(-1)
    v = torch.as_tensor(np.asarray(v), dtype=torch.float64).reshape(-1)
    nu = float(u.norm())
    if nu < 1e-9:
        raise MapUnavailable("the first direction is zero: its two groups have the same mean")
    e1 = u / nu
    w = v - (v @ e1) * e1
    nw = float(w.norm())
    if nw < 1e-6 * max(1.0, float(v.norm())):
        raise MapUnavailable("the two directions are parallel: they span no plane")
    e2 = w / nw
    axes = torch.stack([e1, e2]).float()
    scales = torch.tensor([nu, nw], dtype=torch.float32)
    c = torch.as_tensor(np.asarray(centre), dtype=torch.float32).reshape(-1)
    if names is None:
        names = ("direction 1", "direction 2 (orthogonal part)")
    elif len(names) != 2 or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"a custom plane's names are two words, not {names!r}")
    return Plane(c, axes, scales, (names[0], names[1]))


def project(
    codes: np.ndarray,
    method: str,
    *,
    dims: tuple[int, int] = (0, 1),
    axes: tuple | None = None,
    names: tuple[str, str] | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> Projection:
    """Map ``codes`` (N, D) to 2-D with ``method`` (one of :data:`METHODS`).

    ``dims`` picks the latent dimensions of "axes"; ``axes`` gives the two directions (D,)
    of "custom", and ``names`` their names. ``progress`` is called with the fraction done;
    ``cancelled`` is polled, and when it returns True the map stops with :class:`Cancelled`.
    """
    if method not in METHODS:
        raise ValueError(f"map method must be one of {', '.join(METHODS)}, not {method!r}")
    codes = np.asarray(codes, dtype=np.float32)
    if codes.ndim != 2 or len(codes) == 0:
        raise MapUnavailable(f"a map needs codes of shape (N, D), not {codes.shape}")
    t0 = time.perf_counter()
    if method == "axes":
        d = codes.shape[1]
        if not all(0 <= k < d for k in dims):
            raise MapUnavailable(f"dimensions {dims} do not exist in a {d}-D latent")
        plane = dims_plane(torch.zeros(d), dims)
    elif method == "pca":
        try:
            plane = principal_plane(codes)
        except ValueError as e:
            raise MapUnavailable(str(e)) from None
    elif method == "custom":
        if axes is None or len(axes) != 2:
            raise MapUnavailable("a custom map needs two directions")
        plane = custom_plane(axes[0], axes[1], codes.mean(0), names)
    else:
        report = progress or (lambda _f, _s: None)
        stop = cancelled or (lambda: False)
        fit = _umap if method == "umap" else _tsne
        xy, transform = fit(codes, seed, report, stop)
        if not np.all(np.isfinite(xy)):
            raise MapUnavailable(f"the {TITLES[method]} map came out with non-finite places")
        report(1.0, "done")
        return Projection(
            method,
            xy,
            ("UMAP 1", "UMAP 2") if method == "umap" else ("t-SNE 1", "t-SNE 2"),
            None,
            time.perf_counter() - t0,
            transform,
        )
    xy = plane.project(torch.from_numpy(codes)).numpy().astype(np.float32)
    if progress is not None:
        progress(1.0, "done")
    return Projection(
        method, xy, plane.names, plane, time.perf_counter() - t0, _plane_transform(plane)
    )


def _plane_transform(plane: Plane) -> Transform:
    def transform(codes: np.ndarray) -> np.ndarray:
        c = torch.from_numpy(np.asarray(codes, dtype=np.float32).reshape(-1, plane.axes.shape[1]))
        return plane.project(c).numpy().astype(np.float32)

    return transform


def _check(codes: np.ndarray, method: str, least: int) -> None:
    if len(codes) < least:
        raise MapUnavailable(
            f"a {TITLES[method]} map needs at least {least} codes, not {len(codes)}"
        )
    if not np.all(np.isfinite(codes)):
        raise MapUnavailable(f"a {TITLES[method]} map needs finite codes: some are NaN or inf")


def _import(method: str):
    try:
        if method == "umap":
            import umap

            return umap
        import openTSNE

        return openTSNE
    except ImportError:
        library = "umap-learn" if method == "umap" else "openTSNE"
        raise MapUnavailable(
            f"{TITLES[method]} maps need {library}, which is not installed: {INSTALL}"
        ) from None


def _poll(stop: Callable[[], bool]) -> None:
    if stop():
        raise Cancelled()


class _EpochSink:
    """Where UMAP's epoch counter (a tqdm bar) is written: each write from the thread laying
    out the map reports the epochs done and polls ``stop``; the first time it says stop, the
    write raises :class:`Cancelled`, which ends the layout's loop. (A write from tqdm's
    monitor thread is let through: raising there would stop nothing.)"""

    _NUMBERS = re.compile(r"(\d+) of (\d+)")

    def __init__(self, report: Progress, stop: Callable[[], bool], lo: float, hi: float):
        self.report, self.stop, self.lo, self.hi = report, stop, lo, hi
        self.live = True
        self.thread = threading.get_ident()

    def write(self, text: str) -> int:
        if not self.live or threading.get_ident() != self.thread:
            return len(text)
        found = self._NUMBERS.search(text)
        if found:
            done, total = int(found.group(1)), max(1, int(found.group(2)))
            self.report(self.lo + (self.hi - self.lo) * done / total, "UMAP: laying out")
        if self.stop():
            self.live = False
            raise Cancelled()
        return len(text)

    def flush(self) -> None:
        pass


def _umap(codes: np.ndarray, seed: int, report: Progress, stop: Callable[[], bool]):
    """UMAP in three stages, ``stop`` polled between them and at every epoch of the last:
    the library (numba compiles it on first use: seconds), the codes' neighbour graph
    (NN-descent, from :data:`UMAP_EXACT_BELOW` codes up: it cannot be stopped midway), the
    layout."""
    _check(codes, "umap", 4)
    _poll(stop)
    report(0.0, "UMAP: loading the library (its first use compiles it)")
    umap = _import("umap")
    from umap.umap_ import nearest_neighbors

    _poll(stop)
    k = min(UMAP_NEIGHBOURS, len(codes) - 1)
    knn = (None, None, None)
    if len(codes) >= UMAP_EXACT_BELOW:
        report(0.3, "UMAP: finding each code's neighbours")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            knn = nearest_neighbors(
                codes, k, "euclidean", {}, False, np.random.RandomState(seed), n_jobs=1
            )
        _poll(stop)
    report(0.5, "UMAP: laying out")
    sink = _EpochSink(report, stop, 0.5, 0.99)
    model = umap.UMAP(
        n_neighbors=k,
        n_components=2,
        random_state=seed,
        precomputed_knn=knn,
        tqdm_kwds={
            "disable": False,
            "file": sink,
            "bar_format": "{n} of {total}",
            "mininterval": 0.1,
        },
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        xy = model.fit_transform(codes)
    sink.live = False
    model.tqdm_kwds = {"disable": True}

    def transform(new: np.ndarray) -> np.ndarray:
        new = np.asarray(new, dtype=np.float32).reshape(-1, codes.shape[1])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(model.transform(new), dtype=np.float32)

    return np.asarray(xy, dtype=np.float32), transform


def _threads() -> int:
    return max(1, torch.get_num_threads())


def _tsne(codes: np.ndarray, seed: int, report: Progress, stop: Callable[[], bool]):
    """openTSNE's t-SNE: perplexity-based affinities, a PCA start, 250 iterations of early
    exaggeration then 500 plain ones (Barnes-Hut below :data:`BH_BELOW` codes, FFT
    interpolation above); ``stop`` polled between stages and every 10 iterations."""
    _check(codes, "tsne", 4)
    _poll(stop)
    report(0.0, "t-SNE: loading the library")
    _import("tsne")
    from openTSNE import TSNEEmbedding, affinity, initialization
    from openTSNE.tsne import OptimizationInterrupt

    _poll(stop)
    n = len(codes)
    perplexity = min(TSNE_PERPLEXITY, max(1.0, (n - 1) / 3.0))
    report(0.05, "t-SNE: finding each code's neighbours")
    jobs = _threads()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        aff = affinity.PerplexityBasedNN(
            codes, perplexity=perplexity, n_jobs=jobs, random_state=seed, verbose=False
        )
        start = initialization.pca(codes, random_state=seed)
    _poll(stop)
    gradient = "bh" if n < BH_BELOW else "fft"
    phases = ((250, 12.0, 0.5), (500, 1.0, 0.8))
    total = sum(p[0] for p in phases)
    done = [0]

    def step(_iteration, _error, _embedding) -> bool:
        done[0] += 10
        report(0.3 + 0.69 * min(1.0, done[0] / total), "t-SNE: laying out")
        return bool(stop())

    emb = TSNEEmbedding(
        start,
        aff,
        negative_gradient_method=gradient,
        n_jobs=jobs,
        random_state=seed,
        callbacks=step,
        callbacks_every_iters=10,
    )
    report(0.3, "t-SNE: laying out")
    try:
        for i, (n_iter, exaggeration, momentum) in enumerate(phases):
            done[0] = sum(p[0] for p in phases[:i])
            emb = emb.optimize(
                n_iter=n_iter,
                exaggeration=exaggeration,
                momentum=momentum,
                propagate_exception=True,
            )
    except OptimizationInterrupt:
        raise Cancelled() from None

    def transform(new: np.ndarray) -> np.ndarray:
        new = np.asarray(new, dtype=np.float32).reshape(-1, codes.shape[1])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            placed = emb.transform(new, perplexity=min(5.0, perplexity))
        return np.asarray(placed, dtype=np.float32)

    return np.asarray(emb, dtype=np.float32), transform


def neighbour_agreement(xy, labels, k: int = 5) -> float:
    """The share of each point's ``k`` nearest neighbours on the map that have its class,
    averaged over the points (1.0: every neighbourhood is one class; about 1/classes for a
    map that ignores them). Exact, in blocks, so 70,000 points take seconds and little
    memory."""
    p = torch.as_tensor(np.asarray(xy, dtype=np.float32))
    y = torch.as_tensor(np.asarray(labels).astype(np.int64))
    n = len(p)
    if p.ndim != 2 or len(y) != n:
        raise ValueError(f"{n} places and {len(y)} labels: they must be one a point")
    if n <= k:
        raise ValueError(f"agreement of {k} neighbours needs more than {k} points, not {n}")
    same = 0
    rows = max(1, (1 << 24) // n)  # a block of distances takes at most 64 MB
    for lo in range(0, n, rows):
        block = p[lo : lo + rows]
        d = torch.cdist(block, p)
        d[torch.arange(len(block)), torch.arange(lo, lo + len(block))] = float("inf")
        nearest = d.topk(k, largest=False).indices
        same += int((y[nearest] == y[lo : lo + len(block), None]).sum())
    return same / (n * k)


# -- the cache of computed maps ----------------------------------------------------------------
CACHE_VERSION = 1
_LIBRARIES = {"umap": "umap-learn", "tsne": "openTSNE"}
_KEPT_IN_MEMORY = 4  # maps (with their fitted models) a MapCache keeps for this process


def maps_dir() -> Path:
    """Where computed maps are cached: beside the decoded datasets (see
    :func:`trainer.paths.cache_dir`)."""
    return cache_dir() / "maps"


def _library_version(method: str) -> str:
    from importlib import metadata

    name = _LIBRARIES.get(method)
    if name is None:
        return ""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def map_key(codes: np.ndarray, method: str, **params) -> str:
    """The key of a map: a digest of the codes' bytes (so another model's weights, or other
    data, give another key), the method, its parameters and its library's version."""
    c = np.ascontiguousarray(np.asarray(codes, dtype=np.float32))
    h = hashlib.sha256()
    head = {
        "version": CACHE_VERSION,
        "method": method,
        "shape": list(c.shape),
        "library": _library_version(method),
    }
    for name, value in sorted(params.items()):
        if value is None:
            continue
        arr = np.asarray(value)
        head[name] = arr.tolist() if arr.size <= 64 else hashlib.sha256(arr.tobytes()).hexdigest()
    h.update(json.dumps(head, sort_keys=True).encode())
    h.update(c.tobytes())
    return h.hexdigest()[:40]


def _seal(key: str, xy: np.ndarray, names: tuple[str, str]) -> str:
    h = hashlib.sha256(key.encode())
    h.update(np.ascontiguousarray(xy, dtype=np.float32).tobytes())
    h.update("\0".join(names).encode())
    return h.hexdigest()


class MapCache:
    """Computed maps, on disk under ``folder`` (default :func:`maps_dir`), one ``KEY.npz``
    each, written atomically and sealed by a digest of its key and contents. A file that
    does not read back whole and sealed is removed and its map computed again: nothing is
    trusted that does not check. A folder that cannot be written costs only the caching
    (``problem`` says why). The last few maps are also kept in memory with their fitted
    models (``Projection.transform``); one read from disk has none (fitted models are not
    written: only arrays are, and read without pickle)."""

    def __init__(self, folder: str | os.PathLike | None = None):
        self._folder = Path(folder) if folder is not None else None
        self._memory: dict[str, Projection] = {}
        self.problem: str | None = None  # why the last map could not be written, if it could not

    @property
    def folder(self) -> Path:
        return self._folder if self._folder is not None else maps_dir()

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.npz"

    def get(self, key: str, n: int, method: str) -> Projection | None:
        """The map of ``key`` (``n`` points by ``method``), or None where none is cached or
        the cached one is damaged (then it is removed)."""
        if key in self._memory:
            return self._memory[key]
        path = self.path(key)
        try:
            with open_regular(path) as f, np.load(f, allow_pickle=False) as z:
                xy = np.asarray(z["xy"], dtype=np.float32)
                names = tuple(str(s) for s in z["names"])
                seal = str(z["seal"])
                stored = (str(z["method"]), str(z["key"]), float(z["seconds"]))
        except FileNotFoundError:
            return None
        except Exception:  # damaged: half a file, another file, a wrong field (rebuilt)
            self._remove(path)
            return None
        fits = (
            stored[:2] == (method, key)
            and xy.shape == (n, 2)
            and len(names) == 2
            and np.all(np.isfinite(xy))
            and seal == _seal(key, xy, names)
        )
        if not fits:
            self._remove(path)
            return None
        return Projection(method, xy, names, None, stored[2], None)

    def put(self, key: str, p: Projection) -> None:
        """Keep ``p`` in memory and write it (not its fitted model) to the cache folder."""
        self._remember(key, p)
        if p.plane is not None:  # a plane is computed in milliseconds: not worth a file
            return

        def write(f):
            np.savez(
                f,
                xy=np.asarray(p.xy, dtype=np.float32),
                names=np.array(p.names),
                method=np.array(p.method),
                key=np.array(key),
                seconds=np.array(p.seconds),
                seal=np.array(_seal(key, p.xy, p.names)),
            )

        try:
            atomic_write(self.path(key), write)
            self.problem = None
        except (OSError, RuntimeError) as e:  # RuntimeError: Path.home() without a home
            self.problem = f"maps are not cached: {self.folder}: {getattr(e, 'strerror', e) or e}"

    def project(self, codes: np.ndarray, method: str, **kwargs) -> Projection:
        """:func:`project`, from the cache where the same codes were mapped the same way."""
        codes = np.asarray(codes, dtype=np.float32)
        params = {k: v for k, v in kwargs.items() if k in ("dims", "axes", "seed")}
        if method in LINEAR:
            params.pop("seed", None)
        if method != "axes":
            params.pop("dims", None)
        key = map_key(codes, method, **params)
        found = self.get(key, len(codes), method) if codes.ndim == 2 else None
        if found is not None:
            progress = kwargs.get("progress")
            if progress is not None:
                progress(1.0, "done (from the cache)")
            return found
        p = project(codes, method, **kwargs)
        self.put(key, p)
        return p

    def _remember(self, key: str, p: Projection) -> None:
        self._memory.pop(key, None)
        self._memory[key] = p
        while len(self._memory) > _KEPT_IN_MEMORY:
            self._memory.pop(next(iter(self._memory)))

    @staticmethod
    def _remove(path: Path) -> None:
        try:
            if path.is_file() and not path.is_symlink():
                path.unlink()
        except OSError:
            pass
