"""File dialogs start where the user's files are: labels beside the chosen images, exports
in the last export folder, checkpoints where the last one was saved or opened, and never
inside a folder of the application's own (the Runs project, the examples, recovery)."""

from __future__ import annotations

from pathlib import Path

import pytest
from explorer_helpers import train
from PySide6.QtWidgets import QFileDialog

from trainer import examples as ex


class Dialogs:
    """Stands in for QFileDialog: records where each dialog starts, answers ``answer``."""

    def __init__(self, monkeypatch) -> None:
        self.starts: list[str] = []
        self.answer = ""
        for name in ("getSaveFileName", "getOpenFileName"):
            monkeypatch.setattr(QFileDialog, name, staticmethod(self._file))
        monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(self._dir))

    def _file(self, parent, title, start="", *a, **k):
        self.starts.append(start)
        return self.answer, ""

    def _dir(self, parent, title, start="", *a, **k):
        self.starts.append(start)
        return self.answer


@pytest.fixture
def dialogs(monkeypatch):
    return Dialogs(monkeypatch)


def test_labels_are_looked_for_beside_the_chosen_images(window, dialogs, tmp_path):
    p = window.panel
    (tmp_path / "digits").mkdir()
    images = tmp_path / "digits" / "train-images-idx3-ubyte.gz"
    images.write_bytes(b"")
    p.images.setText(str(images))
    p._browse_labels()
    assert dialogs.starts[-1] == str(tmp_path / "digits")
    # and the next images where the last data was chosen
    dialogs.answer = str(images)
    p.images.setText("")
    p._browse_images()
    p.images.setText("")
    p._browse_images()
    assert dialogs.starts[-1] == str(tmp_path / "digits")


def test_exports_start_in_the_last_export_folder(qtbot, window, dialogs, tmp_path):
    train(qtbot, window, 1)
    mine = tmp_path / "report"
    mine.mkdir()
    dialogs.answer = str(mine / "grid.png")
    window.export_view_dialog("samples")
    assert (mine / "grid.png").is_file()
    saves = tmp_path / "models"
    saves.mkdir()
    window.save_checkpoint(saves / "m.safetensors")
    dialogs.answer = ""
    window.export_view_dialog("samples")
    assert Path(dialogs.starts[-1]).parent == mine  # not where the checkpoint went
    window.export_csv_dialog()
    assert Path(dialogs.starts[-1]).parent == mine
    window.save_checkpoint_dialog()
    assert Path(dialogs.starts[-1]).parent == saves


def test_a_run_opened_from_the_project_never_sends_dialogs_into_it(
    qtbot, window, dialogs, tmp_path
):
    """A run opened from the Runs tab made the next Save start in the hidden project."""
    train(qtbot, window, 1)  # kept as a run of the project
    qtbot.waitUntil(lambda: len(window.projects.records) > 0, timeout=10000)
    path = next(Path(window.projects.folder).rglob("*.safetensors"))
    assert window.open_checkpoint(path)
    qtbot.waitUntil(lambda: not window.busy, timeout=20000)
    window.save_checkpoint_dialog()
    start = Path(dialogs.starts[-1]).parent.resolve()
    project = Path(window.projects.folder).resolve()
    assert start != project and not start.is_relative_to(project)
    assert start == Path.home().resolve()
    # nor an example's folder
    assert window.open_checkpoint(ex.example_path("mnist-vae-2d"))
    qtbot.waitUntil(lambda: not window.busy, timeout=20000)
    window.open_checkpoint_dialog()
    assert not Path(dialogs.starts[-1]).resolve().is_relative_to(ex.examples_dir().resolve())
