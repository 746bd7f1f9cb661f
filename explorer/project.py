"""The window's runs: the one owner of the project folder and of which run the session's
model is. Every run trained in the window, every checkpoint opened and every
``latent-train --out`` folder added is kept as a run (:mod:`trainer.runs`), so runs can be
compared side by side, across sessions.

Which run the session's model is (``current_id``) is set when a run is kept or its file
opened, and forgotten when the session takes another model (the window clears it when the
session's ``model_serial`` changes: Train, Open, an example). A run ends kept with that run
when it continued the model (Continue, after a Stop or a finished run) and that run was
trained here: a stop and its continues are one run, its checkpoint, curve and film brought
up to date. Train makes a new run; so does continuing a file that is not the project's
(an example, a checkpoint of the user's): its file no longer holds the model.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from trainer.checkpoint import CheckpointError
from trainer.files import printable
from trainer.film import Film, FilmError
from trainer.runs import Project, RunRecord, RunsError, default_project


class ProjectRuns(QObject):
    changed = Signal()  # the list of runs (or the folder) changed
    problem = Signal(str)  # a run could not be kept: the message

    def __init__(self, folder: Path | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.project = Project(folder or default_project())
        self.records: list[RunRecord] = []
        self.current_id: str | None = None  # the run the session's model is
        self._said: set[str] = set()  # the skipped runs already said (each is said once)
        self.reload()

    @property
    def folder(self) -> Path:
        return self.project.folder

    def set_folder(self, folder: str | Path) -> None:
        self.project = Project(folder)
        self.current_id = None
        self._said = set()
        self.reload()

    def continue_run(self, project: Path, rid: str, steps: int) -> bool:
        """A model recovered after a kill continues run ``rid`` of ``project`` (noted when
        its training began): make it the current run again, if it is one of this project's
        trained runs and the model has all of its steps. True if it did."""
        try:
            same = Path(project).resolve() == self.folder.resolve()
        except (OSError, RuntimeError):
            return False
        rec = self.get(rid) if same else None
        if rec is None or not self.project.owns(rec) or rec.steps > steps:
            return False
        self.current_id = rid
        self.changed.emit()
        return True

    def reload(self) -> None:
        self.records = self.project.runs()
        self.changed.emit()
        new = [p for p in self.project.problems if p not in self._said]
        self._said.update(new)
        if new:  # a damaged run.json: the other runs are shown; it is said once
            self._say(new, "A run could not be read")

    def _say(self, lines: list[str], what: str) -> None:
        more = (
            f" (and {len(lines) - 1} more; latent-train runs --project {self.folder} lists them)"
            if len(lines) > 1
            else ""
        )
        # said once the start-up or the action it is part of has said its own
        QTimer.singleShot(0, self, lambda: self.problem.emit(f"{what}: {lines[0]}{more}"))

    def get(self, rid: str | None) -> RunRecord | None:
        return next((r for r in self.records if r.id == rid), None)

    def _keep(
        self, what: str, job: Callable[[], RunRecord], current: bool = True
    ) -> RunRecord | None:
        try:
            rec = job()
        except (OSError, CheckpointError, RunsError, ValueError) as e:
            self.problem.emit(f"The {what} could not be kept in the runs of {self.folder}: {e}")
            return None
        except Exception as e:  # noqa: BLE001 - keeping a record must never cost the model
            traceback.print_exc()
            self.problem.emit(f"The {what} could not be kept as a run (unexpected {e!r}).")
            return None
        if current:
            self.current_id = rec.id
        notes = self.project.notes
        self.reload()
        if notes:  # a metrics file beside it that could not be used
            self._say(notes, f"The {what} was kept as run “{printable(rec.name)}”")
        return rec

    def record_trained(
        self,
        save: Callable[[Path], Path],
        continued: bool = False,
        film: Film | None = None,
        data: str | None = None,
    ) -> RunRecord | None:
        """A run of the session's model has ended: keep it, with ``film`` (the model's
        film, if it has one). ``continued``: the run continued the model on screen, whose
        run (if trained here) it goes on with. ``data``: what the model was trained on."""
        cur = self.get(self.current_id) if continued else None
        if cur is not None and self.project.owns(cur):
            rec = self._keep("run", lambda: self.project.update_trained(cur.id, save, data))
        else:
            name = f"{cur.name}, continued"[:100] if cur is not None else None
            rec = self._keep("run", lambda: self.project.add_trained(save, name, data))
        if rec is not None and film is not None and len(film):
            try:
                rec = self.project.keep_film(rec.id, film) or rec
            except (FilmError, OSError) as e:
                self.problem.emit(f"The run “{rec.name}” was kept, but not its film: {e}")
            self.reload()
        return rec

    def film_for(self, path: str | Path, step: int, epochs: int) -> Film | None:
        """The film kept with the run whose model is the file ``path``, if that model is
        the one at ``step`` and ``epochs`` (the session's). None if there is none; a
        damaged or foreign film file is said (``problem``), never shown."""
        try:
            where = Path(path).resolve()
            rec = next(
                (
                    r
                    for r in self.records
                    if r.film and self.project.owns(r) and Path(r.checkpoint).resolve() == where
                ),
                None,
            )
        except (OSError, RuntimeError):
            return None
        if rec is None or rec.steps != step or rec.epochs != epochs:
            return None
        try:
            return self.project.film(rec)
        except FilmError as e:
            text = f"The film kept with run “{rec.name}” is not shown: {e}"
        except Exception as e:  # noqa: BLE001 - a film must never cost the model or the tab
            traceback.print_exc()
            text = f"The film kept with run “{rec.name}” is not shown (unexpected {e!r})."
        # said once the opening it is part of has said its own
        QTimer.singleShot(0, self, lambda: self.problem.emit(text))
        return None

    def record_own(
        self, model, spec, steps: int, history=None, continued: bool = False, training=None
    ) -> RunRecord | None:
        """The user's own model on screen kept as a run: its weights and where its code is
        (see :meth:`trainer.runs.Project.add_own`); ``history``: its curve, if it trained
        here. ``continued``: it went on training from the run it is, which is brought up to
        date (else it is a new run). ``training``: all of its training here, kept with it
        (trainer.checkpoint.training.Training)."""
        cur = self.get(self.current_id) if continued else None
        rid = cur.id if cur is not None and cur.own else None

        return self._keep(
            "model",
            lambda: self.project.add_own(
                model, spec, steps, rid=rid, history=history, training=training
            ),
        )

    def record_opened(self, path: str | Path) -> RunRecord | None:
        return self._keep("opened checkpoint", lambda: self.project.add_file(path))

    def add_folder(self, folder: str | Path) -> RunRecord | None:
        # kept beside the others: the session's model is still the run it was
        return self._keep("folder", lambda: self.project.add_folder(folder), current=False)

    def set_metrics(self, result: dict) -> None:
        if self.current_id is not None and self.project.set_metrics(self.current_id, result):
            self.reload()

    def remove(self, rid: str) -> None:
        self.project.remove(rid)
        if self.current_id == rid:
            self.current_id = None
        self.reload()
