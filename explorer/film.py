"""The session's training film: the one owner of whether runs are filmed, of the film's
memory budget, of the film itself and of its export.

The frames are taken on the training thread (:class:`trainer.film.Film`, handed to the run
through its job); this object only learns of new ones (:meth:`FilmRecorder.poll`, on each
of the run's snapshots) and tells its views. A film belongs to the model it shows: another
model (a new run, an opened file, an example) ends it, and continuing the same model carries
it on. A run's film is kept with the run in the project (:mod:`explorer.project`); opening
the run's model again (from the Runs tab, or its file) brings its film back, through
``kept``, only when the film is of that very model (its run, step and epochs).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from explorer.state import Session
from explorer.worker import FilmExportWorker, ThreadRunner
from trainer.config import FILM_MAX_MB, FILM_MEMORY_MB, FILM_MIN_MB
from trainer.film import Film, FilmError, check_film_path, ffmpeg


class FilmRecorder(QObject):
    changed = Signal()  # frames were added or dropped, or a setting changed
    exportChanged = Signal()  # an export started, progressed or ended
    exported = Signal(str, str)  # path, error ("" when it worked)

    def __init__(self, session: Session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.enabled = True  # film the runs
        self.budget_mb = FILM_MEMORY_MB
        self.film: Film | None = None
        self._serial = -1  # the model the film shows
        self._asked = -1  # the last model whose kept film was looked for
        # the film kept with a model's file, if it is the model at (step, epochs): the
        # project's runs answer (ProjectRuns.film_for)
        self.kept: Callable[[Path, int, int], Film | None] | None = None
        self._version = -1  # the film's version last announced
        self.runner = ThreadRunner(self)
        self.runner.idle.connect(self._export_idle)
        self.export_fraction: float | None = None  # None: no export running
        self.export_path = ""
        session.historyReset.connect(self._history_reset)

    # -- what the run asks ----------------------------------------------------------------------
    def for_run(self, resume: bool) -> tuple[Film | None, float | None, int]:
        """(film to carry on, budget for a new film, class to decode) for a run's job; a
        budget of None films nothing."""
        if not self.enabled:
            return None, None, 0
        s = self.session
        carry = resume and self.film is not None and self._serial == s.model_serial
        return (self.film if carry else None), self.budget_mb, s.cls

    def adopt(self, film: Film) -> None:
        """The run's film (its training thread fills it)."""
        self.film = film
        self._serial = self.session.model_serial
        self._version = -1
        self.poll()

    def poll(self) -> None:
        """Tell the views if frames were added since they last heard."""
        if self.film is not None and self.film.version != self._version:
            self._version = self.film.version
            self.changed.emit()

    def current(self) -> Film | None:
        """The film of the session's model (None if it has none)."""
        if self.film is not None and self._serial == self.session.model_serial:
            return self.film
        return None

    def _history_reset(self) -> None:
        s = self.session
        if s.model_serial in (self._serial, self._asked):
            return  # the same model (a run's final history)
        self._asked = s.model_serial
        had, self.film = self.film is not None, None  # another model: not its film
        kept = None
        if self.kept is not None and s.source is not None and s.model is not None:
            kept = self.kept(s.source, s.step, s.epochs_done)  # a run's, opened again
        if kept is not None:
            self.take_kept(kept)
        elif had:
            self.changed.emit()

    def take_kept(self, film: Film) -> None:
        """Show ``film``, the film kept with the session's model (its run's), and carry it
        on when the model trains further."""
        film.set_budget(self.budget_mb)  # thinned if it no longer fits
        self.film, self._serial, self._version = film, self.session.model_serial, -1
        self.poll()

    # -- settings -------------------------------------------------------------------------------
    def set_enabled(self, on: bool) -> None:
        if on != self.enabled:
            self.enabled = bool(on)
            self.changed.emit()

    def set_budget(self, mb: float) -> None:
        mb = float(min(max(mb, FILM_MIN_MB), FILM_MAX_MB))
        if mb == self.budget_mb:
            return
        self.budget_mb = mb
        if self.film is not None:
            self.film.set_budget(mb)  # thins now if the film no longer fits
        self.poll()
        self.changed.emit()

    # -- how it reads -----------------------------------------------------------------------------
    def describe(self) -> str:
        if self.film is None or not len(self.film):
            if not self.enabled:
                return "Films are not recorded: turn on Record to film the next run."
            return (
                "No film yet: runs started from now on are filmed (press Train or Continue): "
                "every epoch's end, and the first steps densely, kept here to replay."
            )
        return self.film.describe()

    # -- export -------------------------------------------------------------------------------
    @property
    def exporting(self) -> bool:
        return self.runner.running

    def export_problem(self) -> str | None:
        if self.film is None or not len(self.film):
            return "There is no film to export yet: train a model first."
        if self.exporting:
            return "A film is being exported."
        return None

    @staticmethod
    def formats() -> str:
        """The file dialog's filter: MP4 only where ffmpeg can write it."""
        return "Animated GIF (*.gif);;MP4 video (*.mp4)" if ffmpeg() else "Animated GIF (*.gif)"

    def export(self, path: str | Path, fps: float = 6.0) -> bool:
        """Write the film in the background (progress through ``exportChanged``; the result
        through ``exported``). False, with the reason through ``exported``, if it cannot."""
        problem = self.export_problem()
        if problem is None:
            try:
                check_film_path(path)
            except FilmError as e:
                problem = str(e)
        if problem is not None:
            self.exported.emit(str(path), problem)
            return False
        title = ""
        if self.session.model_config is not None:
            mc = self.session.model_config
            data = self.session.data.name if self.session.data is not None else ""
            title = f"{mc.model.upper()}, latent {mc.latent_dim}" + (f", {data}" if data else "")
        worker = FilmExportWorker(
            self.film, copy.deepcopy(self.session.history), Path(path), fps, title
        )

        def connect(w):
            w.progressed.connect(self._progressed)
            w.wrote.connect(self._finished)

        self.export_fraction, self.export_path = 0.0, str(path)
        self.runner.start(worker, connect)
        self.exportChanged.emit()
        return True

    def cancel_export(self) -> None:
        w = self.runner.worker
        if w is not None:
            w.cancel()

    def _progressed(self, fraction: float) -> None:
        if self.export_fraction is not None:
            self.export_fraction = fraction
            self.exportChanged.emit()

    def _finished(self, path: str, error: str) -> None:
        self.exported.emit(path, error)

    def _export_idle(self) -> None:
        self.export_fraction = None
        self.exportChanged.emit()

    def shutdown(self, timeout_ms: int = 2000) -> bool:
        self.cancel_export()
        return self.runner.wait(timeout_ms)
