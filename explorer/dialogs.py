"""The window's questions. Tests replace these functions (never a real modal dialog in CI)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QMessageBox, QWidget

from trainer.examples import is_example, title_for

SAVE, DISCARD, CANCEL = "save", "discard", "cancel"


def question(
    parent: QWidget | None,
    action: str,
    model: str,
    saved_to: Path | None = None,
    kept: Path | None = None,
) -> QMessageBox:
    """The Save / Discard / Cancel box (``saved_to``: the file that holds an earlier state
    of the model, if any, a bundled example's if it was opened from one; ``kept``: the
    project folder whose Runs keep a copy of it)."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Warning)
    box.setWindowTitle("Unsaved model")
    box.setText(f"Save the model before you {action}?")
    if saved_to is not None and is_example(saved_to):  # the user saved nothing: it came so
        what = f"has trained further since it was opened from the example “{title_for(saved_to)}”"
    elif saved_to is not None:
        what = f"has trained further since it was saved to {Path(saved_to).name}"
    else:
        what = "is not saved in any file"
    if kept is not None:
        box.setInformativeText(
            f"The {model} {what}. A copy of this training stays among the runs of "
            f"{kept}: the Runs tab opens it again."
        )
    else:
        box.setInformativeText(f"The {model} {what}. If you don't save it, that training is lost.")
    box.setStandardButtons(QMessageBox.Save | QMessageBox.Discard | QMessageBox.Cancel)
    box.setDefaultButton(QMessageBox.Save)
    box.setEscapeButton(QMessageBox.Cancel)
    return box


def ask_save(
    parent: QWidget,
    action: str,
    model: str,
    saved_to: Path | None = None,
    kept: Path | None = None,
) -> str:
    """Save / Discard / Cancel before ``action`` drops a model with unsaved training."""
    box = question(parent, action, model, saved_to, kept)
    box.exec()
    answer = box.standardButton(box.clickedButton())
    if answer == QMessageBox.Save:
        return SAVE
    return DISCARD if answer == QMessageBox.Discard else CANCEL


def ask_fine_tune(parent: QWidget, model: str, own: str, chosen: str) -> bool:
    """Before Continue trains the model on screen on other data than its own."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Question)
    box.setWindowTitle("Fine-tune on other data?")
    box.setText(f"Fine-tune the {model}, trained on {own}, on {chosen}?")
    box.setInformativeText(
        f"Continue trains the model on screen further, as it is: its weights learn {chosen} "
        f"from where {own} left them, and its test curve goes on measured on {chosen}. "
        "To train a new model on this data instead, press Train."
    )
    go = box.addButton("Fine-tune", QMessageBox.AcceptRole)
    box.addButton(QMessageBox.Cancel)
    box.setDefaultButton(go)
    box.exec()
    return box.clickedButton() is go
