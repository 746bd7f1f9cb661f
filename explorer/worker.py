"""Background work in QThreads: loading data and training.

This is the one module where torch meets Qt threads. A worker object has no parent, is
moved to its QThread, and talks to the GUI only through queued signals carrying plain
values (ImageData, frozen Snapshots with detached CPU weights). Stop and pause go
through :class:`trainer.loop.TrainControl` (threading events the loop polls between
steps) because a queued slot call would never reach a worker busy inside ``fit``.
"""

from __future__ import annotations

import copy
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PySide6.QtCore import QCoreApplication, QDeadlineTimer, QObject, QThread, Signal, Slot

from trainer.checkpoint import CheckpointError, save_trainer
from trainer.config import MODEL_TITLES, ConfigError, ModelConfig, TrainConfig
from trainer.data import DataError, DataSpec, ImageData, load_data, model_data_problem
from trainer.film import Film
from trainer.loop import (
    FitResult,
    History,
    Snapshot,
    TrainControl,
    Trainer,
    TrainingDiverged,
    model_config_for,
    resolve_device,
    seed_everything,
)
from trainer.loop.threads import training_threads
from trainer.models import build_model


class Cancelled(Exception):
    """A job's work was called off (its window is closing, or the run was stopped before
    its first step); it ends without a result."""


USER_ERRORS = (DataError, ConfigError, TrainingDiverged, ValueError, OSError)
AUTOSAVE_S = 5.0  # a run autosaves at an epoch's end if this long has passed since the last


def message_for_window(e: BaseException) -> str:
    """An error's words for the window: the trainer's errors name command-line flags in
    ``str(e)`` and the window's own fields in ``e.gui`` when the two differ."""
    return getattr(e, "gui", None) or str(e)


def describe_error(e: BaseException) -> str:
    """A one-paragraph message for the window; user mistakes keep their own words."""
    if isinstance(e, USER_ERRORS):
        return message_for_window(e)
    if isinstance(e, MemoryError) or "out of memory" in str(e).lower():
        return f"out of memory ({e}); try a smaller batch size, latent or hidden size"
    return f"unexpected {type(e).__name__}: {e}"


def error_kind(e: BaseException) -> str:
    if isinstance(e, TrainingDiverged):
        return "diverged"
    if isinstance(e, DataError):
        return "data"
    if isinstance(e, ConfigError):
        return "config"
    return "other"


def cannot_continue(mc: ModelConfig, data: ImageData, spec: DataSpec) -> str | None:
    """One line when Continue cannot train the model of ``mc`` on ``data`` at all (its image
    shape or its classes), else None."""
    problem = model_data_problem(mc.image_shape, mc.num_classes, mc.conditional, data)
    if problem is None:
        return None
    return (
        f"Continue cannot train the {mc.latent_dim}-D {MODEL_TITLES[mc.model]} on screen on "
        f"{spec.describe()}: {problem}. Choose data like its own, or press Train for a new "
        "model of this data."
    )


@dataclass
class TrainJob:
    """Everything one training run needs; built on the GUI thread, read by the worker."""

    data_spec: DataSpec
    train_config: TrainConfig
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # ModelConfig minus data fields
    data: ImageData | None = None  # already loaded (skip loading)
    model_config: ModelConfig | None = None  # continue: the existing model's config
    model: torch.nn.Module | None = None  # continue: a model no config rebuilds (a user's own)
    weights: dict | None = None  # continue: start from these weights
    history: History | None = None
    optimizer_state: dict | None = None
    epochs_done: int = 0
    step: int | None = None  # continue: the model's optimiser steps so far
    position: dict | None = None  # continue: where inside an unfinished epoch it stopped
    epochs: int | None = None  # epochs to run in this call (default: the config's)
    threads: int | None = None  # torch intra-op threads for the training thread
    autosave: Path | None = None  # write the run here at epoch ends (the recovery file)
    autosave_every: float = AUTOSAVE_S
    film: Film | None = None  # continue: the model's film, carried on
    film_budget_mb: float | None = None  # film the run (a new film, if none is carried on)
    film_class: int = 0  # the class a conditional model's film decodes


@dataclass
class RunOutcome:
    """What a finished (or failed) run hands back to the GUI thread."""

    fit: FitResult | None = None
    weights: dict | None = None
    optimizer_state: dict | None = None
    history: History | None = None
    epochs_done: int = 0
    step: int = 0
    position: dict | None = None  # inside an unfinished epoch (Trainer.position)
    target_epochs: int = 0  # the epoch count the run was to reach
    error: str | None = None
    kind: str = ""  # "data", "config", "diverged", "other" (errors) or "cancelled"
    model_config: ModelConfig | None = None


def _cpu_copy(obj):
    if torch.is_tensor(obj):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_cpu_copy(v) for v in obj]
    return copy.deepcopy(obj)


class Worker(QObject):
    """A job for a :class:`ThreadRunner`'s thread; ``run`` ends with ``done()``.

    ``done`` hands the object back to the GUI thread before saying it has finished, so that
    it is destroyed there. Destroyed in its own thread, a Python-made QObject asks for the
    GIL from inside Qt's destructor while holding Qt's connection lock; a GUI thread that
    holds the GIL and waits for that lock (a label's setHtml did) then deadlocks with it:
    a clean-clone test run hung so, in a plot's axis-label update.
    """

    finished = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.cancelled = threading.Event()  # set from any thread: end as soon as possible
        self._said = 0.0  # when progress was last reported

    def _due(self) -> bool:
        """Whether to report progress now: at most ten times a second."""
        now = time.monotonic()
        if now - self._said < 0.1:
            return False
        self._said = now
        return True

    def _progress(self, fraction: float | None, text: str = "") -> None:
        """Called by the job now and then: end here (:class:`Cancelled`) if called off, else
        report through the subclass's ``progressed`` signal (at most ten times a second;
        a fraction of None: nothing to measure)."""
        if self.cancelled.is_set():
            raise Cancelled
        if self._due():
            self.progressed.emit(None if fraction is None else float(fraction), text)

    def cancel(self) -> None:
        """Ask the job to end at its next check (thread-safe; the window is going away)."""
        self.cancelled.set()

    def done(self) -> None:
        app = QCoreApplication.instance()
        if app is not None:
            self.moveToThread(app.thread())
        self.finished.emit()


class DataWorker(Worker):
    """Loads one dataset off the GUI thread."""

    loaded = Signal(object, object)  # ImageData, DataSpec
    failed = Signal(str, object)  # message, DataSpec
    progressed = Signal(object, str)  # fraction (0..1, or None: nothing to measure), text

    def __init__(self, spec: DataSpec) -> None:
        super().__init__()
        self.spec = spec

    @Slot()
    def run(self) -> None:
        try:
            data = load_data(self.spec, progress=self._progress)
            if not self.cancelled.is_set():
                self.loaded.emit(data, self.spec)
        except Cancelled:
            pass
        except Exception as e:  # noqa: BLE001 - every failure becomes a message
            self.failed.emit(describe_error(e), self.spec)
        finally:
            self.done()


class EvaluateWorker(Worker):
    """Evaluates a copy of the session's model on test images off the GUI thread
    (:func:`trainer.evaluate.evaluate_model`, as ``latent-train evaluate`` does)."""

    progressed = Signal(float, str)  # fraction 0..1, what is being done
    evaluated = Signal(object)  # the result dict
    failed = Signal(str)

    def __init__(self, model, x, y, iw_samples: int, prior_samples: int, seed: int) -> None:
        super().__init__()
        self.model, self.x, self.y = model, x, y
        self.iw_samples, self.prior_samples, self.seed = iw_samples, prior_samples, seed

    @Slot()
    def run(self) -> None:
        from trainer.evaluate import evaluate_model

        try:
            torch.set_num_threads(training_threads())
            res = evaluate_model(
                self.model,
                self.x,
                self.y,
                iw_samples=self.iw_samples,
                prior_samples=self.prior_samples,
                seed=self.seed,
                progress=self._progress,
            )
            if not self.cancelled.is_set():
                self.evaluated.emit(res)
        except Cancelled:
            pass
        except Exception as e:  # noqa: BLE001 - every failure becomes a message
            self.failed.emit(describe_error(e))
        finally:
            self.done()


class FilmExportWorker(Worker):
    """Writes a training film (GIF or MP4) off the GUI thread."""

    progressed = Signal(float)
    wrote = Signal(str, str)  # path, error ("" when it worked)

    def __init__(self, film: Film, history: History, path: Path, fps: float, title: str):
        super().__init__()
        self.film, self.history, self.path, self.fps, self.title = film, history, path, fps, title

    @Slot()
    def run(self) -> None:
        from trainer.film import FilmCancelled, FilmError, save_film

        try:
            save_film(
                self.film,
                self.history,
                self.path,
                fps=self.fps,
                title=self.title,
                progress=self._progress,
                cancelled=self.cancelled.is_set,
            )
            self.wrote.emit(str(self.path), "")
        except FilmCancelled:
            self.wrote.emit(str(self.path), "cancelled: nothing was written")
        except FilmError as e:
            self.wrote.emit(str(self.path), str(e))
        except Exception as e:  # noqa: BLE001 - every failure becomes a message
            traceback.print_exc()
            self.wrote.emit(str(self.path), describe_error(e))
        finally:
            self.done()

    def _progress(self, fraction: float) -> None:
        if self._due() or fraction >= 1.0:
            self.progressed.emit(float(fraction))


class TrainingWorker(Worker):
    """Loads data if needed, builds the model and runs ``Trainer.fit`` in its thread.

    It autosaves the run (``job.autosave``) at epoch ends, at most every
    ``job.autosave_every`` seconds, and at its last snapshot; saves asked for during the run
    (``save_now``, through ``TrainControl.call_soon``) happen between two steps.
    """

    phase = Signal(str)  # what the run is doing before its first step
    dataLoaded = Signal(object, object)  # ImageData, DataSpec
    modelBuilt = Signal(object, object)  # ModelConfig, initial weights (CPU state_dict)
    filmReady = Signal(object)  # the run's Film (its frames are added on this thread)
    snapshot = Signal(object)  # Snapshot
    saved = Signal(str, int, str)  # path, step, error ("" when it worked)
    outcome = Signal(object)  # RunOutcome, always emitted once

    def __init__(self, job: TrainJob, control: TrainControl) -> None:
        super().__init__()
        self.job = job
        self.control = control
        self.trainer: Trainer | None = None
        self._last_autosave = -float("inf")  # the first epoch's end always saves

    def cancel(self) -> None:
        super().cancel()
        self.control.stop()

    def _check(self) -> None:
        """Between the steps of setting up: end here if the run was stopped."""
        if self.control.stop_requested:
            raise Cancelled

    def _loading(self, fraction: float | None, text: str = "") -> None:
        self._check()
        if fraction is not None and self._due():
            self.phase.emit(f"Loading {self.job.data_spec.describe()}… {fraction:.0%}")

    @Slot()
    def run(self) -> None:
        job, out = self.job, RunOutcome()
        try:
            if job.threads:
                torch.set_num_threads(job.threads)
            data = job.data
            if data is None:
                self.phase.emit(f"Loading {job.data_spec.describe()}…")
                data = load_data(job.data_spec, progress=self._loading)
                if job.model_config is not None:  # continued: the model must take it
                    problem = cannot_continue(job.model_config, data, job.data_spec)
                    if problem is not None:  # said before the views are given the data
                        raise ConfigError(problem)
                self.dataLoaded.emit(data, job.data_spec)
            self._check()
            self.phase.emit("Building the model…")
            mc = job.model_config or model_config_for(data, **job.model_kwargs)
            out.model_config = mc
            seed_everything(job.train_config.seed)
            model = build_model(mc) if job.model is None else job.model
            if job.weights is not None:
                model.load_state_dict(job.weights)
            self._check()
            device = resolve_device(job.train_config.device)
            if job.model is not None:  # a user's model trains on the device it is on
                device = next(model.parameters()).device
            self.trainer = Trainer(
                model,
                data,
                job.train_config,
                device=device,
                history=copy.deepcopy(job.history) if job.history else None,
                optimizer_state=job.optimizer_state,
                epochs_done=job.epochs_done,
                step=job.step,
                position=job.position,
            )
            self.modelBuilt.emit(mc, _cpu_copy(model.state_dict()))
            film = job.film
            if film is None and job.film_budget_mb is not None:
                film = Film(
                    data.test_x,
                    data.test_y,
                    data.class_names,
                    budget_mb=job.film_budget_mb,
                    klass=job.film_class,
                )
            if film is not None:
                self.filmReady.emit(film)
            out.target_epochs = job.epochs_done + (job.epochs or job.train_config.epochs)
            self._check()
            self.phase.emit(f"First steps on {device}…")
            out.fit = self.trainer.fit(
                epochs=job.epochs, control=self.control, on_snapshot=self._on_snapshot, film=film
            )
        except Cancelled:  # stopped while setting up: nothing was trained
            out.kind = "cancelled"
        except Exception as e:  # noqa: BLE001 - the app must survive any failed run
            out.error = describe_error(e)
            out.kind = error_kind(e)
            if not isinstance(e, USER_ERRORS):
                traceback.print_exc()
        finally:
            trainer = self.trainer
            if trainer is not None:
                self.control.run_calls(trainer)  # saves asked for as the run ended
                out.weights = _cpu_copy(trainer.model.state_dict())
                out.optimizer_state = _cpu_copy(trainer.optimizer.state_dict())
                out.history = trainer.history
                out.epochs_done = trainer.epochs_done
                out.step = trainer.step
                out.position = _cpu_copy(trainer.position())
            self.outcome.emit(out)
            self.done()

    def _on_snapshot(self, snap: Snapshot) -> None:
        """On the training thread, between two steps."""
        self.snapshot.emit(snap)
        if self.cancelled.is_set():  # the window has closed: the user has chosen already
            return
        due = time.perf_counter() - self._last_autosave >= self.job.autosave_every
        if self.job.autosave is not None and (snap.final or (snap.test is not None and due)):
            self._last_autosave = time.perf_counter()
            try:
                self._save(self.trainer, self.job.autosave)
            except CheckpointError:
                traceback.print_exc()  # a failed autosave must not end the run

    def _save(self, trainer: Trainer, path: Path) -> Path:
        d = trainer.data
        return save_trainer(path, trainer, data_spec=self.job.data_spec, class_names=d.class_names)

    def save_now(self, trainer: Trainer, path: Path) -> None:
        """Save the run as it is (call on the training thread); reports through ``saved``."""
        try:
            self._save(trainer, path)
        except CheckpointError as e:
            self.saved.emit(str(path), trainer.step, str(e))
            return
        self.saved.emit(str(path), trainer.step, "")


class ThreadRunner(QObject):
    """Owns at most one worker thread at a time, with the standard QThread idiom.

    ``idle`` is emitted on the GUI thread once the thread has really ended, so a slot
    connected to it may start the next worker at once.
    """

    idle = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.thread: QThread | None = None
        self.worker: QObject | None = None
        self.closed = False  # after shutdown no new thread may start

    def start(self, worker: Worker, connect: Callable[[Worker], None] | None = None) -> None:
        if self.running:
            raise RuntimeError("a worker is already running")
        if self.closed:
            return
        thread = QThread()
        worker.moveToThread(thread)
        if connect is not None:
            connect(worker)
        thread.started.connect(worker.run)
        worker.finished.connect(thread.quit)
        worker.finished.connect(worker.deleteLater)
        thread.finished.connect(thread.deleteLater)
        thread.finished.connect(self._forget)
        self.thread, self.worker = thread, worker
        thread.start()

    @Slot()
    def _forget(self) -> None:
        self.thread = self.worker = None
        self.idle.emit()

    @property
    def running(self) -> bool:
        """True from ``start`` until ``idle`` has been emitted (the thread has ended and
        the GUI thread has heard of it)."""
        return self.thread is not None

    @property
    def alive(self) -> bool:
        """True while the thread itself is still executing."""
        try:
            return self.thread is not None and self.thread.isRunning()
        except RuntimeError:  # the C++ object is already gone
            return False

    def wait(self, ms: int) -> bool:
        """Call the worker off, quit the thread and wait up to ``ms``; True if it ended.

        Also closes the runner: nothing new starts after this (the window is going away).
        A thread still running after ``ms`` is kept alive (see :func:`leftover_threads`):
        Qt aborts the process if a running QThread is destroyed.
        """
        self.closed = True
        t, w = self.thread, self.worker
        if t is None:
            return True
        try:
            if isinstance(w, Worker):
                w.cancel()
            t.quit()
            ok = t.wait(QDeadlineTimer(max(0, ms)))
        except RuntimeError:  # the C++ thread is already gone
            ok = True
        if ok:
            self.thread = self.worker = None
        else:
            _keep_until_finished(t, w)
        return ok


# Threads that outlived their runner's wait: held here (with their workers) until they end,
# so that neither their runner nor Python's garbage collector destroys them while running.
_LEFTOVERS: dict[int, tuple[QThread, QObject | None]] = {}
_LEFTOVERS_LOCK = threading.Lock()


def _keep_until_finished(thread: QThread, worker: QObject | None) -> None:
    key = id(thread)
    with _LEFTOVERS_LOCK:
        _LEFTOVERS[key] = (thread, worker)

    def release() -> None:
        with _LEFTOVERS_LOCK:
            _LEFTOVERS.pop(key, None)

    thread.finished.connect(release)
    if thread.isFinished():  # it ended between the wait and the connection
        release()


_collector = None


def collect_garbage_on_gui_thread() -> None:
    """Run Python's cycle collector only on the GUI thread, from a timer (once a second, as
    its thresholds ask), from now on in this process.

    The collector runs in whichever thread happens to allocate when its thresholds are
    crossed, and it may find a Qt object there (a closed window's, caught in a reference
    cycle). Deleted on the training thread, that object's QObject destructor holds Qt's
    lock and waits for the GIL, while the GUI thread, holding the GIL, waits for that lock
    to delete a widget of its own: a suite run hung so, with the training thread
    autosaving. pyqtgraph's GarbageCollector disables the automatic collection and collects
    on a QTimer, in the GUI thread only."""
    global _collector
    if _collector is None:
        from pyqtgraph.util.garbage_collector import GarbageCollector

        _collector = GarbageCollector(interval=1.0)


def leftover_threads() -> int:
    """Worker threads still running after their window closed."""
    with _LEFTOVERS_LOCK:
        items = list(_LEFTOVERS.values())
    alive = 0
    for t, _ in items:
        try:
            alive += bool(t.isRunning())
        except RuntimeError:
            pass
    return alive


def wind_down(code: int, timeout_ms: int = 0) -> int:
    """End of the process: give leftover worker threads ``timeout_ms`` to end; if any is
    still running (stuck in one long library call, or in a download), end the process at
    once with ``code``. Python's normal teardown would destroy the running QThread, and Qt
    aborts on that ("QThread: Destroyed while thread is still running", exit 134).

    Whatever the user keeps is written before this is called: the window saves its settings
    and the user's checkpoint when it closes, and leftovers only ever load data or set a run
    up (a running run is stopped between two steps, and its recovery file is replaced
    atomically). Returns ``code`` when the normal teardown is safe.
    """
    deadline = time.monotonic() + timeout_ms / 1000
    while leftover_threads() and time.monotonic() < deadline:
        app = QCoreApplication.instance()
        if app is not None:
            app.processEvents()
        time.sleep(0.01)
    if leftover_threads():
        end_process(code)
    return code


def end_process(code: int) -> None:
    """End the process now, without the interpreter's teardown; for the app once its window
    has closed, when everything it keeps is written (settings synced, recovery file closed).

    The teardown adds nothing then and costs time: unloading torch alone takes 0.7 s on this
    project's machines, more on a busy one, and a leftover worker thread would abort it.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
