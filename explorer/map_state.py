"""The latent map's owner: which method maps the codes, the map on screen, and its computing.

Linear maps (two axes, the principal plane, two custom directions) are planes: they are
projected at once from the session's encoded test subset and follow the model live while it
trains. Non-linear maps (UMAP, t-SNE) and maps of the whole test set are computed in a
background thread (the test images encoded with a copy of the model, then
:func:`trainer.maps.project`) with progress and Cancel; they are kept in memory per model
weights, data and method (and on disk by :class:`trainer.maps.MapCache`), and while the
model trains they are not recomputed for each snapshot: they are marked stale ("trained
since") and recomputed on request.

The view (``explorer.widgets.latent_map``) takes a :class:`MapState` and renders it.
"""

from __future__ import annotations

import copy
import math
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch
from PySide6.QtCore import QObject, Signal, Slot

from explorer.state import Session
from explorer.worker import Cancelled, ThreadRunner, Worker, describe_error
from trainer import maps
from trainer.maps import LINEAR, METHODS, NONLINEAR, TITLES, MapUnavailable, Projection

CACHED_MAPS = 8  # maps kept in memory (a 70,000-point map is about 1 MB of positions)
ENCODE_BATCH = 500  # test images encoded per step in the background
REFRESH_S = 1.0  # re-encode the sample's codes at most this often while training
REFRESH_CHUNK = 400  # test images encoded per repaint tick while training
ENCODE_SHARE = 0.3  # of the progress bar, when the codes are encoded before mapping
METHOD_LABELS = {
    "axes": "Axes",
    "pca": "Principal plane",
    "umap": "UMAP",
    "tsne": "t-SNE",
    "custom": "Custom",
}


@dataclass(frozen=True)
class MapPoints:
    """What the map shows: ``rows`` (N,) of ``data.test_x``, their ``codes`` (N, D), their
    ``labels`` (N,) or None, and the ``projection`` (its ``xy`` is (N, 2))."""

    rows: np.ndarray
    codes: np.ndarray
    labels: np.ndarray | None
    projection: Projection

    @property
    def xy(self) -> np.ndarray:
        return self.projection.xy

    def __len__(self) -> int:
        return len(self.rows)


class MapWorker(Worker):
    """Encodes test images (unless their codes are given) and maps the codes, off the GUI
    thread; checks its cancel flag between batches and inside the map."""

    progressed = Signal(float, str)
    computed = Signal(object, object)  # key, MapPoints
    failed = Signal(object, str)  # key, message

    def __init__(self, key, project, model, x, y, codes, rows, labels, method, kwargs) -> None:
        super().__init__()
        self.key, self.project, self.model = key, project, model
        self.x, self.y, self.codes, self.rows, self.labels = x, y, codes, rows, labels
        self.method, self.kwargs = method, kwargs

    def _check(self) -> bool:
        return self.cancelled.is_set()

    @Slot()
    def run(self) -> None:
        try:
            codes = self.codes
            share = 0.0
            if codes is None:
                share = ENCODE_SHARE
                codes = self._encode()
            if share == 0.0:
                self.progressed.emit(0.0, f"mapping {len(codes):,} codes")

            last = [None]

            def progress(f: float, text: str) -> None:
                if self._check():
                    raise Cancelled
                if self._due() or text != last[0]:  # a new stage is always said
                    last[0] = text
                    self.progressed.emit(share + (1 - share) * float(f), text)

            proj = self.project(
                codes, self.method, progress=progress, cancelled=self._check, **self.kwargs
            )
            if not self._check():
                self.computed.emit(self.key, MapPoints(self.rows, codes, self.labels, proj))
        except (Cancelled, maps.Cancelled):
            pass
        except MapUnavailable as e:
            self.failed.emit(self.key, str(e))
        except Exception as e:  # noqa: BLE001 - every failure becomes a message
            self.failed.emit(self.key, describe_error(e))
        finally:
            self.done()

    @torch.no_grad()
    def _encode(self) -> np.ndarray:
        n = len(self.x)
        parts = []
        for start in range(0, n, ENCODE_BATCH):
            if self._check():
                raise Cancelled
            x = self.x[start : start + ENCODE_BATCH].float().div_(255.0)
            y = None if self.y is None else self.y[start : start + ENCODE_BATCH]
            mu, _ = self.model.encode(x, y)
            parts.append(mu.numpy().astype(np.float32))
            if self._due():
                done = min(n, start + ENCODE_BATCH)
                self.progressed.emit(
                    ENCODE_SHARE * done / n, f"encoding test images: {done:,} of {n:,}"
                )
        return np.concatenate(parts) if parts else np.zeros((0, self.model.latent_dim))


class MapState(QObject):
    """The one owner of the latent map: method, the points on screen, the computing."""

    methodChanged = Signal(str)
    pointsChanged = Signal()  # ``points`` is another map (or None)
    progressed = Signal(float, str)  # while computing: fraction 0..1, what is being done
    busyChanged = Signal(bool)
    wholeChanged = Signal(bool)  # a linear map of every test image, or of the sample
    staleChanged = Signal(bool)
    problemChanged = Signal(str)  # why the chosen map cannot be shown ("" when it can)
    viewRangeAsked = Signal(object)  # ((x0, x1), (y0, y1)): a restored bookmark's view

    def __init__(self, session: Session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.method = "pca" if session.pca else "axes"
        self.whole = False  # a linear map of all the test images, not the subset
        self.custom_axes: tuple[np.ndarray, np.ndarray] | None = None
        self.custom_names: tuple[str, str] | None = None  # the custom axes' names
        self.points: MapPoints | None = None
        self.stale = False  # the model has trained since this map was computed
        self.problem = ""
        self.fraction, self.text = 0.0, ""
        # the part of the map in view where the user zoomed or panned (None: fitted to the
        # points), kept up to date by the view; a restored bookmark's waits in
        # ``pending_range`` for its points
        self.view_range: tuple | None = None
        self.pending_range: tuple | None = None
        # the mapping function: trainer.maps.project through the cache of computed maps on
        # disk (a UMAP of the same codes comes back at once, in this session or the next)
        self.project = maps.MapCache().project
        self._cache: OrderedDict = OrderedDict()
        self._key = None  # of the map computing or on screen
        self._data_serial = 0
        self.runner = ThreadRunner(self)
        self.runner.idle.connect(self._idle)
        session.dataChanged.connect(self._data_changed)
        session.structureChanged.connect(self._structure_changed)
        session.weightsChanged.connect(self._weights_changed)
        session.testLatentsChanged.connect(self._latents_changed)
        session.dimsChanged.connect(self._dims_changed)

    # -- what the view reads ------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.runner.running

    @property
    def nonlinear(self) -> bool:
        return self.method in NONLINEAR

    @property
    def computed(self) -> bool:
        """The map is computed in the background (not projected live from the subset)."""
        return self.nonlinear or self.whole

    def title(self) -> str:
        return TITLES[self.method]

    def manifold_note(self) -> str:
        """What the manifold beside a map that is not a plane shows, and why."""
        plane = "principal plane" if self.session.pca else "two chosen axes"
        if self.nonlinear:
            t = TITLES[self.method]
            return f"The manifold shows the {plane}: a {t} map has no plane to decode."
        if self.method == "custom":
            return f"The manifold shows the {plane}."
        return ""

    # -- actions ------------------------------------------------------------------------------
    def set_method(self, method: str) -> None:
        if method not in METHODS:
            raise ValueError(f"map method must be one of {', '.join(METHODS)}, not {method!r}")
        if method == self.method:
            return
        if method == "pca" and not self.session.pca_available:
            self._say("The principal plane needs a latent larger than 2.")
            return
        self.method = method
        # the session's plane (the manifold's) follows a linear choice of the map
        if method == "axes":
            self.session.set_pca(False)
        elif method == "pca":
            self.session.set_pca(True)
        self.methodChanged.emit(method)
        self.update()

    def set_whole(self, on: bool) -> None:
        """A linear map of every test image (a non-linear one always shows them all)."""
        if bool(on) != self.whole:
            self.whole = bool(on)
            self.wholeChanged.emit(self.whole)
            self.update()

    _last_refresh = 0.0

    def refresh_codes(self, now: float, training: bool) -> bool:
        """The window's repaint tick: encode the sample of test images with the session's
        weights (all at once when idle; while training, a chunk per tick and a new round at
        most every REFRESH_S). True when it did some work."""
        s = self.session
        if s.model is None:
            return False
        if not training:
            return s.refresh_test_latents()
        if s._enc is None and now - self._last_refresh < REFRESH_S:
            return False
        if s.refresh_test_latents(chunk=REFRESH_CHUNK):
            if s._enc is None:
                self._last_refresh = now
            return True
        return False

    def set_custom_axes(self, u, v, names=None) -> None:
        """Two directions (D,) for the custom map ("use as axes"), and the names its axes
        carry (two words; None: "direction 1", "direction 2"); shows it."""
        u = np.asarray(u, dtype=np.float32).reshape(-1)
        v = np.asarray(v, dtype=np.float32).reshape(-1)
        d = self.session.latent_dim
        if u.shape != (d,) or v.shape != (d,):
            raise ValueError(f"custom axes need two directions of {d} values")
        self.custom_axes = (u, v)
        self.custom_names = None if names is None else (str(names[0]), str(names[1]))
        if self.method == "custom":
            self.update()
        else:
            self.set_method("custom")

    def recompute(self) -> None:
        """Compute the chosen map again with the model's current weights."""
        self.update(force=True)

    def cancel(self) -> None:
        w = self.runner.worker
        if w is not None:
            w.cancel()
        self._pending = None
        self._set_busy_text(0.0, "")
        pts = self.points
        if pts is not None and (pts.projection.method, self._shown_whole) != (
            self.method,
            self.whole,
        ):
            # back to the map on screen: the method picker never names a map not shown
            self.whole = self._shown_whole
            if pts.projection.method != self.method:
                self.method = pts.projection.method
                self.methodChanged.emit(self.method)
            self._say("")
        elif pts is None:
            self._say(f"The {self.title()} map was cancelled: Recompute to compute it.")

    def shutdown(self, timeout_ms: int = 2000) -> bool:
        return self.runner.wait(timeout_ms)

    # -- computing ----------------------------------------------------------------------------
    def _kwargs(self) -> dict:
        s = self.session
        if self.method == "axes":
            return {"dims": tuple(s.dims)}
        if self.method == "custom":
            return {"axes": self.custom_axes, "names": self.custom_names}
        return {}

    def _params(self) -> tuple:
        if self.method == "axes":
            return tuple(self.session.dims)
        if self.method == "custom" and self.custom_axes is not None:
            return (*np.concatenate(self.custom_axes).round(6).tolist(), self.custom_names)
        return ()

    def _compute_key(self) -> tuple:
        s = self.session
        return (
            s.model_serial,
            s.weights_version,
            self._data_serial,
            self.method,
            self._params(),
        )

    _key_of_points = None

    def update(self, force: bool = False) -> None:
        """Show the chosen map: projected at once (a linear map of the subset), from the
        cache, or computed in the background."""
        s = self.session
        if s.model is None or s.data is None:
            self._show(None, None)
            return
        if self.method == "custom" and self.custom_axes is None:
            self._say("A custom map needs two directions: use a direction as an axis.")
            self._show(None, None)
            return
        if not self.computed:
            if self.runner.worker is not None:  # a map no longer asked for
                self._pending = None
                self.runner.worker.cancel()
            self._project_subset()
            return
        key = self._compute_key()
        if not force and key in self._cache:
            self._cache.move_to_end(key)
            self._show(self._cache[key], key)
            return
        if not force and self.points is not None and _same_map(self._key_of_points, key):
            # the same model and map, trained since: keep it, say so, recompute on request
            self._set_stale(True)
            return
        if not force and self.busy and _same_map(self._key, key) and self._pending is None:
            return  # being computed (with earlier weights: it will say so when it is shown)
        self._start(key)

    def _project_subset(self) -> None:
        s = self.session
        lat = s.test_latents
        if lat is None:
            self._show(None, None)
            return
        try:
            if self.method in ("axes", "pca"):
                plane = s.plane()
                if self.method == "axes" and s.dims[0] == s.dims[1]:
                    xy = np.stack([lat[:, s.dims[0]], np.zeros(len(lat))], 1)
                else:
                    xy = plane.project(torch.from_numpy(np.ascontiguousarray(lat))).numpy()
                proj = Projection(self.method, xy.astype(np.float32), plane.names, plane)
            else:
                proj = self.project(lat, self.method, **self._kwargs())
        except (MapUnavailable, ValueError) as e:
            self._say(str(e))
            self._show(None, None)
            return
        pts = MapPoints(s.test_index, lat, s.test_labels, proj)
        self._say("")
        self._show(pts, None)

    def _start(self, key) -> None:
        s = self.session
        if s.data.image_shape != tuple(s.model.config.image_shape):
            self._say("The data's images do not fit the model: choose its data.")
            return
        w = self.runner.worker
        if w is not None:
            w.cancel()  # a map of an earlier choice: never shown
            self._pending = key
            return
        self._pending = None
        rows = np.arange(len(s.data.test_x), dtype=np.int64)
        labels = None if s.data.test_y is None else s.data.test_y.numpy()
        # the codes are always encoded here, the same way (never the session's sample, even
        # when it is the whole test set): the disk cache is keyed by their bytes, and codes
        # encoded in other batches may differ in their last bits and miss it
        codes = None
        y = s.data.test_y if s.conditional else None
        model = copy.deepcopy(s.model)
        worker = MapWorker(
            key,
            self.project,
            model,
            s.data.test_x,
            y,
            codes,
            rows,
            labels,
            self.method,
            self._kwargs(),
        )
        self._key = key

        def connect(wk):
            wk.progressed.connect(self._progressed)
            wk.computed.connect(self._computed)
            wk.failed.connect(self._failed)

        self.runner.start(worker, connect)
        self._say("")
        self._set_busy_text(0.0, "starting")
        self.busyChanged.emit(True)

    _pending = None

    def _progressed(self, fraction: float, text: str) -> None:
        if self.busy:
            self._set_busy_text(fraction, text)

    def _set_busy_text(self, fraction: float, text: str) -> None:
        self.fraction, self.text = fraction, text
        self.progressed.emit(fraction, text)

    def _computed(self, key, pts: MapPoints) -> None:
        self._cache[key] = pts
        while len(self._cache) > CACHED_MAPS:
            self._cache.popitem(last=False)
        now = self._compute_key()
        if self.computed and _same_map(key, now):
            self._show(pts, key)
            self._set_stale(key[1] != now[1])  # trained while it was computed

    def _failed(self, key, message: str) -> None:
        if _same_map(key, self._compute_key()):
            self._say(f"{TITLES[key[3]]}: {message}" if message else "")

    def _idle(self) -> None:
        self.busyChanged.emit(False)
        pending, self._pending = self._pending, None
        if pending is not None and pending == self._compute_key() and self.computed:
            self.update(force=True)

    _shown_whole = False

    def _show(self, pts: MapPoints | None, key) -> None:
        self.points, self._key_of_points = pts, key
        self._shown_whole = self.whole
        self._set_stale(False)
        self.pointsChanged.emit()

    def _set_stale(self, on: bool) -> None:
        if on != self.stale:
            self.stale = on
            self.staleChanged.emit(on)

    def _say(self, problem: str) -> None:
        if problem != self.problem:
            self.problem = problem
            self.problemChanged.emit(problem)

    # -- the session changed ------------------------------------------------------------------
    def _data_changed(self) -> None:
        self._data_serial += 1
        self._cache.clear()
        self.update()

    def _structure_changed(self) -> None:
        # another latent size: custom axes and the chosen axes no longer fit
        self.custom_axes = None
        m = "pca" if self.session.pca else "axes"
        if self.method in LINEAR and self.method != m:
            self.method = m
            self.methodChanged.emit(m)
        self._cache.clear()

    def _weights_changed(self) -> None:
        if self.computed:
            self.update()

    def _latents_changed(self) -> None:
        if not self.computed:
            self.update()

    def _dims_changed(self, *_args) -> None:
        s = self.session
        if self.method in ("axes", "pca"):
            m = "pca" if s.pca else "axes"
            if m != self.method:
                self.method = m
                self.methodChanged.emit(m)
        if self.method in ("axes", "pca") or not self.computed:
            self.update()

    # -- the map's points and z ---------------------------------------------------------------
    def approximate_code(self, x: float, y: float, k: int = 8) -> np.ndarray:
        """The code at map position (x, y) of a map that is not a plane: the inverse-distance
        weighted mean of the codes of the ``k`` nearest points (their own code on a point)."""
        pts = self.points
        d2 = ((pts.xy - np.array([x, y], dtype=np.float32)) ** 2).sum(1)
        k = min(k, len(d2))
        near = np.argpartition(d2, k - 1)[:k] if k < len(d2) else np.arange(len(d2))
        d = np.sqrt(d2[near].astype(np.float64))
        if d.min() < 1e-9:
            return pts.codes[near[d.argmin()]].copy()
        w = 1.0 / d**2
        return (w[:, None] * pts.codes[near]).sum(0) / w.sum()

    def nearest_point(self, z) -> int:
        """The map's point whose code is nearest ``z`` (D,) in latent space."""
        z = np.asarray(z, dtype=np.float32).reshape(1, -1)
        return int(((self.points.codes - z) ** 2).sum(1).argmin())

    # -- export -------------------------------------------------------------------------------
    def export_problem(self) -> str | None:
        """Why the map on screen cannot be exported now (None: it can)."""
        if self.points is None or len(self.points) == 0:
            return "There is no map to export yet." + (f" {self.problem}" if self.problem else "")
        return None

    def map_codes(self, images: bool = False):
        """The map on screen as :class:`trainer.codes.MapCodes`: the codes, labels (-1:
        none), places and method, and with ``images`` the test images in [0, 1]."""
        from trainer.codes import MapCodes

        pts, s = self.points, self.session
        labels = pts.labels if pts.labels is not None else np.full(len(pts), -1)
        pics = None
        if images:
            pics = s.data.test_x[torch.from_numpy(pts.rows)].float().div_(255.0).numpy()
        names = tuple(s.class_names) if pts.labels is not None else ()
        return MapCodes(pts.codes, labels, pts.xy, pts.projection.method, names, pics)

    # -- bookmarks ----------------------------------------------------------------------------
    def bookmark(self) -> dict:
        return {
            "method": self.method,
            "dims": [int(d) for d in self.session.dims],
            "whole": self.whole,
            "custom_axes": None
            if self.custom_axes is None
            else [[float(v) for v in a] for a in self.custom_axes],
            "view_range": None
            if self.view_range is None
            else [[float(a), float(b)] for a, b in self.view_range],
        }

    def restore(self, d: dict) -> None:
        if not isinstance(d, dict):
            raise ValueError("map: a bookmark's map must be a dictionary")
        method = d.get("method", self.method)
        if method not in METHODS:
            raise ValueError(f"map.method must be one of {', '.join(METHODS)}, not {method!r}")
        n = self.session.latent_dim
        dims = d.get("dims", list(self.session.dims))
        if (
            not isinstance(dims, list | tuple)
            or len(dims) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in dims)
            or not all(0 <= v < max(n, 1) for v in dims)
        ):
            raise ValueError(f"map.dims must be two latent dimensions below {n}, not {dims!r}")
        whole = d.get("whole", False)
        if not isinstance(whole, bool):
            raise ValueError(f"map.whole must be true or false, not {whole!r}")
        axes = d.get("custom_axes")
        if axes is not None:
            if (
                not isinstance(axes, list | tuple)
                or len(axes) != 2
                or not all(isinstance(a, list | tuple) and len(a) == n for a in axes)
                or not all(_finite(v) for a in axes for v in a)
            ):
                raise ValueError(f"map.custom_axes must be two lists of {n} numbers")
            axes = tuple(np.asarray(a, dtype=np.float32) for a in axes)
        if method == "custom" and axes is None:
            raise ValueError("map.custom_axes is needed for a custom map")
        if method == "pca" and not self.session.pca_available:
            raise ValueError("map.method: the principal plane needs a latent larger than 2")
        vr = d.get("view_range")
        if vr is not None and (
            not isinstance(vr, list | tuple)
            or len(vr) != 2
            or not all(isinstance(r, list | tuple) and len(r) == 2 for r in vr)
            or not all(_finite(v) for r in vr for v in r)
            or not all(r[0] < r[1] for r in vr)
        ):
            raise ValueError("map.view_range must be [[x0, x1], [y0, y1]] with x0 < x1, y0 < y1")
        self.session.set_dims(*dims)
        if whole != self.whole:
            self.whole = whole
            self.wholeChanged.emit(whole)  # the view's box shows what is saved next
        self.custom_axes = axes
        self.custom_names = None
        self.pending_range = None
        if method != self.method:
            self.set_method(method)
        else:
            self.update()
        if vr is not None:  # once the map is there: now (a plane) or when computed
            vr = tuple(tuple(float(v) for v in r) for r in vr)
            if self.points is not None and not self.busy:
                self.viewRangeAsked.emit(vr)
            else:
                self.pending_range = vr


def _same_map(a, b) -> bool:
    """Two compute keys name the same map of the same model and data (the weights may
    differ: the model trained in between)."""
    return a is not None and b is not None and a[0] == b[0] and a[2:] == b[2:]


def _finite(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
