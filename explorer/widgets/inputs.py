"""Input widgets that say what they do with a value instead of doing it silently."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import QAbstractSpinBox, QDoubleSpinBox, QSpinBox, QWidget


class _SaysItsRange:
    """What a number box does with a typed value out of its range: the nearest allowed
    value, said through ``refused`` (a plain Qt box drops it or keeps the old one, both
    without a word). ``_parse`` reads a number, ``_show`` writes one."""

    what: str

    def _number(self, text: str) -> str:
        t = text
        if self.prefix() and t.startswith(self.prefix()):
            t = t[len(self.prefix()) :]
        if self.suffix() and t.endswith(self.suffix()):
            t = t[: -len(self.suffix())]
        return t.strip()

    def validate(self, text: str, pos: int):
        t = self._number(text)
        if t in ("", "-", "+", ".", "-.", "+."):
            return QValidator.State.Intermediate, text, pos
        try:
            v = self._parse(t)
        except ValueError:
            return QValidator.State.Invalid, text, pos
        ok = self.minimum() <= v <= self.maximum()
        return (QValidator.State.Acceptable if ok else QValidator.State.Intermediate), text, pos

    def fixup(self, text: str) -> str:
        t = self._number(text)
        lo, hi = self._show(self.minimum()), self._show(self.maximum())
        try:
            v = self._parse(t)
        except ValueError:
            self.refused.emit(
                f"{self.what} needs {self.KIND} from {lo} to {hi}; it stays "
                f"{self._show(self.value())}."
            )
            return f"{self.prefix()}{self._show(self.value())}{self.suffix()}"
        near = min(max(v, self.minimum()), self.maximum())
        if near != v:
            self.refused.emit(
                f"{self.what} must be {lo} to {hi}; {self._show(v)} was changed to "
                f"{self._show(near)}."
            )
        return f"{self.prefix()}{self._show(near)}{self.suffix()}"


class RangeSpinBox(_SaysItsRange, QSpinBox):
    """A whole-number box that takes any number typed and, when it is out of range, sets
    the nearest allowed value and says so through ``refused``.

    A plain QSpinBox drops the fourth digit of "1000" when its maximum is 256 and turns a
    typed 0 back into the previous value, both without a word.
    """

    refused = Signal(str)  # e.g. "Latent size must be 1 to 256; 1000 was changed to 256."
    KIND = "a whole number"

    def __init__(self, lo: int, hi: int, value: int, tip: str, what: str, step: int = 1):
        super().__init__()
        self.what = what
        self.setRange(lo, hi)
        self.setValue(value)
        self.setSingleStep(step)
        self.setToolTip(f"{tip} ({lo} to {hi})")
        self.setKeyboardTracking(False)
        self.setCorrectionMode(QAbstractSpinBox.CorrectToNearestValue)

    @staticmethod
    def _parse(t: str) -> int:
        return int(t)

    @staticmethod
    def _show(v) -> str:
        return str(int(v))


class RangeDoubleSpinBox(_SaysItsRange, QDoubleSpinBox):
    """The same for a number with decimals (a latent coordinate: z0 = 6 typed in a box of
    -4 to 4 was dropped without a word)."""

    refused = Signal(str)
    KIND = "a number"

    def __init__(self, lo: float, hi: float, decimals: int, what: str) -> None:
        super().__init__()
        self.what = what
        self.setDecimals(decimals)
        self.setRange(lo, hi)
        self.setKeyboardTracking(False)
        self.setCorrectionMode(QAbstractSpinBox.CorrectToNearestValue)

    def _parse(self, t: str) -> float:
        v = float(t.replace(self.locale().decimalPoint(), "."))
        if v != v or v in (float("inf"), float("-inf")):
            raise ValueError(t)
        return v

    def _show(self, v) -> str:
        return f"{float(v):.{self.decimals()}f}"

    def valueFromText(self, text: str) -> float:
        try:
            return self._parse(self._number(text))
        except ValueError:
            return self.value()


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
