"""The window's questions. Tests replace these functions (never a real modal dialog in CI)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QMessageBox, QWidget

SAVE, DISCARD, CANCEL = "save", "discard", "cancel"


def ask_save(parent: QWidget, action: str, model: str, saved_to: Path | None = None) -> str:
    """Save / Discard / Cancel before ``action`` drops a model with unsaved training
    (``saved_to``: the file that holds an earlier state of it, if any)."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Warning)
    box.setWindowTitle("Unsaved model")
    box.setText(f"Save the model before you {action}?")
    box.setInformativeText(
        f"The {model} is not saved in any file. If you don't save it, it is lost."
    )
    box.setStandardButtons(QMessageBox.Save | QMessageBox.Discard | QMessageBox.Cancel)
    box.setDefaultButton(QMessageBox.Save)
    box.setEscapeButton(QMessageBox.Cancel)
    box.exec()
    answer = box.standardButton(box.clickedButton())
    if answer == QMessageBox.Save:
        return SAVE
    return DISCARD if answer == QMessageBox.Discard else CANCEL
