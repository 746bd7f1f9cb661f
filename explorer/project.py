"""The window's runs: the one owner of the project folder and of which run the session's
model is. Every run trained in the window, every checkpoint opened and every
``latent-train --out`` folder added is kept as a run (:mod:`trainer.runs`), so runs can be
compared side by side, across sessions."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from trainer.checkpoint import CheckpointError
from trainer.runs import Project, RunRecord, RunsError, default_project


class ProjectRuns(QObject):
    changed = Signal()  # the list of runs (or the folder) changed
    problem = Signal(str)  # a run could not be kept: the message

    def __init__(self, folder: Path | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.project = Project(folder or default_project())
        self.records: list[RunRecord] = []
        self.current_id: str | None = None  # the run the session's model is
        self.reload()

    @property
    def folder(self) -> Path:
        return self.project.folder

    def set_folder(self, folder: str | Path) -> None:
        self.project = Project(folder)
        self.current_id = None
        self.reload()

    def reload(self) -> None:
        self.records = self.project.runs()
        self.changed.emit()

    def get(self, rid: str | None) -> RunRecord | None:
        return next((r for r in self.records if r.id == rid), None)

    def _keep(self, what: str, job: Callable[[], RunRecord]) -> RunRecord | None:
        try:
            rec = job()
        except (OSError, CheckpointError, RunsError, ValueError) as e:
            self.problem.emit(f"The {what} could not be kept in the runs of {self.folder}: {e}")
            return None
        except Exception as e:  # noqa: BLE001 - keeping a record must never cost the model
            traceback.print_exc()
            self.problem.emit(f"The {what} could not be kept as a run (unexpected {e!r}).")
            return None
        self.current_id = rec.id
        self.reload()
        return rec

    def record_trained(self, save: Callable[[Path], Path]) -> RunRecord | None:
        return self._keep("run", lambda: self.project.add_trained(save))

    def record_opened(self, path: str | Path) -> RunRecord | None:
        return self._keep("opened checkpoint", lambda: self.project.add_file(path))

    def add_folder(self, folder: str | Path) -> RunRecord | None:
        rec = self._keep("folder", lambda: self.project.add_folder(folder))
        return rec

    def set_metrics(self, result: dict) -> None:
        if self.current_id is not None and self.project.set_metrics(self.current_id, result):
            self.reload()

    def remove(self, rid: str) -> None:
        self.project.remove(rid)
        if self.current_id == rid:
            self.current_id = None
        self.reload()
