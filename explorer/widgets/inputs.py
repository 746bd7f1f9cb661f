"""Input widgets that say what they do with a value instead of doing it silently."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import QAbstractSpinBox, QSpinBox, QWidget


class RangeSpinBox(QSpinBox):
    """A whole-number box that takes any number typed and, when it is out of range, sets
    the nearest allowed value and says so through ``refused``.

    A plain QSpinBox drops the fourth digit of "1000" when its maximum is 256 and turns a
    typed 0 back into the previous value, both without a word.
    """

    refused = Signal(str)  # e.g. "Latent size must be 1 to 256; 1000 was changed to 256."

    def __init__(self, lo: int, hi: int, value: int, tip: str, what: str, step: int = 1):
        super().__init__()
        self.what = what
        self.setRange(lo, hi)
        self.setValue(value)
        self.setSingleStep(step)
        self.setToolTip(f"{tip} ({lo} to {hi})")
        self.setKeyboardTracking(False)
        self.setCorrectionMode(QAbstractSpinBox.CorrectToNearestValue)

    def _number(self, text: str) -> str:
        t = text
        if self.prefix() and t.startswith(self.prefix()):
            t = t[len(self.prefix()) :]
        if self.suffix() and t.endswith(self.suffix()):
            t = t[: -len(self.suffix())]
        return t.strip()

    def validate(self, text: str, pos: int):
        t = self._number(text)
        if t in ("", "-", "+"):
            return QValidator.State.Intermediate, text, pos
        try:
            v = int(t)
        except ValueError:
            return QValidator.State.Invalid, text, pos
        ok = self.minimum() <= v <= self.maximum()
        return (QValidator.State.Acceptable if ok else QValidator.State.Intermediate), text, pos

    def fixup(self, text: str) -> str:
        t = self._number(text)
        try:
            v = int(t)
        except ValueError:
            self.refused.emit(
                f"{self.what} needs a whole number from {self.minimum()} to {self.maximum()}; "
                f"it stays {self.value()}."
            )
            return f"{self.prefix()}{self.value()}{self.suffix()}"
        near = min(max(v, self.minimum()), self.maximum())
        if near != v:
            self.refused.emit(
                f"{self.what} must be {self.minimum()} to {self.maximum()}; "
                f"{v} was changed to {near}."
            )
        return f"{self.prefix()}{near}{self.suffix()}"


class _SpaceGoesToWindow(QObject):
    """Lets the window's Space shortcut (start / pause) fire while a number field has the
    focus: a space is never part of a number, so the field has no use for it."""

    def eventFilter(self, obj: QObject, ev: QEvent) -> bool:
        if (
            ev.type() == QEvent.ShortcutOverride
            and ev.key() == Qt.Key_Space
            and not ev.modifiers() & ~Qt.KeypadModifier
        ):
            ev.ignore()  # not the field's: the shortcut map gets it
            return True
        return False


_space_filter = _SpaceGoesToWindow()


def space_goes_to_window(*widgets: QWidget) -> None:
    for w in widgets:
        w.installEventFilter(_space_filter)
