"""The nearest training images of the current z: the one owner of the neighbour index and of
the latest search (``latent-train neighbours`` does the same from the command line).

The index (:class:`trainer.neighbours.NeighbourIndex`) encodes the training images with a
copy of the session's model in a background thread, with progress and Cancel. It belongs to
one model, its weights and its data: new weights leave it stale (its codes are of earlier
weights; the pixel search, which needs no codes, stays exact) and it is rebuilt once the
weights have been still for a moment (training pauses or ends), so a run is never slowed by
it. Another model or other data drops it.

Every move of z (a drag, a slider, a sample, a step of an interpolation) searches again,
throttled so that a drag stays smooth: at most one search every :data:`THROTTLE_MS` (or
three times the last search's time, if longer: 60,000 MNIST-sized images take about 30 ms),
the last position always searched. A conditional model's search keeps to its current class.
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch
from PySide6.QtCore import QObject, QTimer, Signal, Slot

from explorer.state import Session
from explorer.worker import Cancelled, ThreadRunner, Worker, describe_error
from trainer.loop.threads import training_threads

THROTTLE_MS = 80  # at most one search this often while z moves
SETTLE_MS = 1500  # the weights still this long before the index is rebuilt
REFRESH_MS = 1000  # while the weights change (training), search again this often
K_DEFAULT, K_MAX = 5, 16


class NeighbourWorker(Worker):
    """Builds the index with a copy of the model, off the GUI thread."""

    progressed = Signal(float, str)
    built = Signal(object, object)  # NeighbourIndex, its key
    failed = Signal(str)

    def __init__(self, model, data, key: tuple) -> None:
        super().__init__()
        self.model, self.data, self.key = model, data, key

    @Slot()
    def run(self) -> None:
        from trainer.neighbours import Cancelled as BuildCancelled
        from trainer.neighbours import NeighbourIndex

        try:
            torch.set_num_threads(training_threads())
            index = NeighbourIndex.build(
                self.model,
                self.data,
                "train",
                progress=self._progress,
                cancelled=self.cancelled.is_set,
                key=self.key,
            )
            if not self.cancelled.is_set():
                self.built.emit(index, self.key)
        except (Cancelled, BuildCancelled):
            pass
        except Exception as e:  # noqa: BLE001 - every failure becomes a message
            self.failed.emit(describe_error(e))
        finally:
            self.done()


class NeighbourSearch(QObject):
    """The index, its building, and the latest search of the current z."""

    changed = Signal()  # the state, progress or message changed
    searched = Signal(object)  # a trainer.neighbours.Search, after each search

    def __init__(self, session: Session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.runner = ThreadRunner(self)
        self.runner.idle.connect(self._idle)
        self.index = None  # trainer.neighbours.NeighbourIndex
        self.found = None  # trainer.neighbours.Search: the latest search
        self.k = K_DEFAULT
        self.building = False
        self.fraction, self.text, self.error = 0.0, "", ""
        self.stale = False  # the index's codes are of earlier weights
        self.last_ms = 0.0  # how long the latest search took
        self.searches = 0
        self._last = 0.0
        self._build_key: tuple | None = None
        self._pending = False  # build once the running (stale) build has ended
        self._query_timer = QTimer(self)
        self._query_timer.setSingleShot(True)
        self._query_timer.timeout.connect(self.search)
        self._refresh_timer = QTimer(self)  # while the weights change (training)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(REFRESH_MS)
        self._refresh_timer.timeout.connect(self.search)
        self._build_timer = QTimer(self)
        self._build_timer.setSingleShot(True)
        self._build_timer.setInterval(SETTLE_MS)
        self._build_timer.timeout.connect(self.build)
        session.zChanged.connect(self._moved)
        session.classChanged.connect(self._moved)
        session.weightsChanged.connect(self._weights_changed)
        session.structureChanged.connect(self._drop)
        session.dataChanged.connect(self._drop)

    # -- what the views read ------------------------------------------------------------------
    def key(self) -> tuple:
        s = self.session
        return (s.model_serial, s.weights_version, id(s.data))

    @property
    def source(self) -> str:
        """ "train", or "test" when the data has no training images."""
        if self.index is not None:
            return self.index.source
        d = self.session.data
        return "test" if d is not None and len(d.train_x) == 0 else "train"

    def title(self) -> str:
        where = "training" if self.source == "train" else "test"
        cls = self._class()
        names = self.session.class_names  # (data of other classes may be on screen)
        of = "" if cls is None else f" of class {names[cls] if cls < len(names) else cls}"
        return f"Nearest {where} images{of}"

    def problem(self) -> str | None:
        """Why there can be no index now (None: there can)."""
        s = self.session
        if s.model is None:
            return "No model yet."
        if s.data is None:
            return "No data yet."
        if tuple(s.data.image_shape) != tuple(s.model.config.image_shape):
            return "The data's images do not fit the model: choose its data."
        if s.conditional and s.data.num_classes != s.model.num_classes:
            return "The data's classes do not match the conditional model's."
        if len(s.data.train_x) == 0 and len(s.data.test_x) == 0:
            return "The data has no images to search."
        return None

    def status(self) -> str:
        """One line under the heading: what is searched, or why nothing is."""
        if self.building:
            return f"Indexing the images to search… {self.fraction:.0%} ({self.text})"
        if self.error:
            return self.error
        why = self.problem()
        if why is not None:
            return why
        if self.index is None:
            return "The index is built once the model is still."
        n = self.index.count(self._class())
        where = self.index.where
        note = "" if self.source == "train" else " (this data has no training images)"
        if self.stale:
            note += "; codes of earlier weights, rebuilt when training pauses"
        return f"Among {n:,} {where}{note}; search {self.last_ms:.0f} ms"

    def export_problem(self) -> str | None:
        if self.found is None:
            return "There are no nearest images to export yet: they appear once indexed."
        return None

    # -- actions ------------------------------------------------------------------------------
    def build(self) -> bool:
        """Encode the images to search with the current weights (in the background, once a
        build of earlier weights has ended); False if it cannot (the reason is in
        ``status``)."""
        self._build_timer.stop()
        if self.problem() is not None:
            self.changed.emit()
            return False
        if self.runner.running:
            if self.building and self._build_key == self.key():
                return True  # already building for these weights
            self._stop_worker()
            self._pending = True  # once the old build has ended
            self.building, self.fraction, self.text, self.error = True, 0.0, "starting", ""
            self.changed.emit()
            return True
        s = self.session
        self._build_key = self.key()
        try:
            model = copy.deepcopy(s.model)  # the GUI's own copy keeps decoding meanwhile
        except Exception as e:  # noqa: BLE001 - a user's model that cannot be copied
            self.error = f"Indexing needs a copy of the model, which failed: {describe_error(e)}"
            self.changed.emit()
            return False
        worker = NeighbourWorker(model, s.data, self._build_key)

        def connect(w):
            w.progressed.connect(self._progressed)
            w.built.connect(self._built)
            w.failed.connect(self._failed)

        self.building, self.fraction, self.text, self.error = True, 0.0, "starting", ""
        self.runner.start(worker, connect)
        self.changed.emit()
        return True

    def _stop_worker(self) -> None:
        w = self.runner.worker
        if w is not None:
            w.cancel()
        self.building = False

    def cancel(self) -> None:
        """Stop building (Cancel); the index is built again when the weights next settle."""
        self._pending = False
        was = self.building
        self._stop_worker()
        if was:
            self.building = False
            self.error = "Indexing cancelled."
            self.changed.emit()

    def set_k(self, k: int) -> None:
        k = int(min(K_MAX, max(1, k)))
        if k != self.k:
            self.k = k
            self.changed.emit()
            self.search()

    def search(self) -> None:
        """Search the current z now."""
        from trainer.neighbours import search

        self._query_timer.stop()
        s = self.session
        if self.index is None or s.model is None or self.problem() is not None:
            return
        cls = self._class()
        k = min(self.k, self.index.count(cls))
        if k < 1:
            self.found = None
            self.error = f"There are no {self.index.where} of this class to search."
            self.changed.emit()
            return
        t0 = time.perf_counter()
        try:
            self.found = search(s.model, self.index, s.z, k, cls)
        except (ValueError, RuntimeError) as e:  # a model of the user's that fails, say
            self.found, self.error = None, f"The search failed: {describe_error(e)}"
            self.changed.emit()
            self.searched.emit(None)
            return
        self.last_ms = (time.perf_counter() - t0) * 1e3
        self._last = time.perf_counter()
        self.searches += 1
        self.error = ""
        self.searched.emit(self.found)
        self.changed.emit()

    def jump(self, space: str, i: int) -> None:
        """Move z to the code of neighbour ``i`` of the row ``space`` ("latent" or "pixels"),
        encoded with the current weights."""
        if self.found is None:
            return
        nb = self.found.latent if space == "latent" else self.found.pixels
        row = int(nb.rows[i])
        s = self.session
        x = self.index.images[row : row + 1]
        labels = self.index.labels
        y = labels[row : row + 1] if labels is not None and s.conditional else None
        s.set_z(s.encode(x, y)[0])

    def export_png(self, path) -> None:
        from trainer.export import save_neighbours

        if self.found is None:
            raise ValueError(self.export_problem())
        save_neighbours(self.found, self.index, path)

    def shutdown(self, timeout_ms: int = 2000) -> bool:
        for t in (self._build_timer, self._query_timer, self._refresh_timer):
            t.stop()
        return self.runner.wait(timeout_ms)

    # -- a bookmark ---------------------------------------------------------------------------
    def bookmark(self) -> dict:
        return {"k": self.k}

    def restore(self, d: dict) -> None:
        k = d.get("k", K_DEFAULT)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= K_MAX:
            raise ValueError(f"neighbours.k must be a whole number from 1 to {K_MAX}, not {k!r}")
        self.set_k(k)

    # -- from the session and the worker ------------------------------------------------------
    def _class(self) -> int | None:
        return self.session.cls if self.session.conditional else None

    def _moved(self, *_args) -> None:
        if self.index is None or self._query_timer.isActive():
            return
        # a search takes a third of the time at most, however large the index
        gap = max(THROTTLE_MS, 3 * self.last_ms)
        wait = gap - (time.perf_counter() - self._last) * 1e3
        if wait <= 0:
            self.search()
        else:  # the last position is searched when the wait is over
            self._query_timer.start(int(np.ceil(wait)))

    def _weights_changed(self) -> None:
        if self.index is not None and self.index.key[0] != self.session.model_serial:
            self._drop()  # another model (of the same shape): its codes mean nothing here
            return
        if self.index is not None and self.index.key != self.key():
            self.stale = True
        if self.runner.running and self._build_key != self.key():
            self._stop_worker()  # it encodes with weights that are gone
        self._build_timer.start()  # (restarted by every change: waits for stillness)
        if self.index is not None and not self._refresh_timer.isActive():
            self._refresh_timer.start()  # the decoded image changed: search it now and then
        self.changed.emit()

    def _drop(self) -> None:
        """Another model's shape or other data: the index's rows and codes mean nothing."""
        if self.runner.running:
            self._stop_worker()
        self.index = self.found = None
        self.building, self.stale, self.error = False, False, ""
        self._build_timer.start()
        self.changed.emit()
        self.searched.emit(None)

    def _progressed(self, fraction: float, text: str) -> None:
        if self.building:
            self.fraction, self.text = fraction, text
            self.changed.emit()

    def _built(self, index, key: tuple) -> None:
        s = self.session
        if key[0] != s.model_serial or key[2] != id(s.data):
            return  # of another model or data
        self.index = index
        self.stale = key != self.key()
        self.building = False
        self.search()
        self.changed.emit()

    def _failed(self, message: str) -> None:
        self.building, self.error = False, f"Indexing failed: {message}"
        self.changed.emit()

    def _idle(self) -> None:
        if self.building:  # ended without a word
            self.building = False
            self.changed.emit()
        if self._pending:
            self._pending = False
            self.build()
