"""Small building blocks shared by the views: an image pane, a message bar, helpers."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from explorer import theme


class CountingImageItem(pg.ImageItem):
    """An ImageItem that counts its paints, so tests and benchmarks can see a repaint."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.paints = 0

    def paint(self, p, *args) -> None:
        super().paint(p, *args)
        self.paints += 1


class ImagePane(pg.GraphicsLayoutWidget):
    """One image (a single picture or a whole grid), aspect-locked, no mouse panning.

    The displayed array is kept in ``self.array`` (row-major, (H, W) grey or (H, W, 3)).
    """

    def __init__(self, parent: QWidget | None = None, min_size: int = 120) -> None:
        super().__init__(parent)
        self.setBackground(theme.BG)
        self.ci.setContentsMargins(2, 2, 2, 2)
        self.view = self.addViewBox(lockAspect=True, invertY=True, enableMouse=False)
        self.view.setMenuEnabled(False)
        self.view.setDefaultPadding(0.0)
        self.item = CountingImageItem(axisOrder="row-major")
        self.view.addItem(self.item)
        self.array: np.ndarray | None = None
        self.setMinimumSize(min_size, min_size)

    def set_array(self, arr: np.ndarray, below: float = 0.0) -> None:
        """Show ``arr``; ``below``: room under it, in image pixels (for captions)."""
        reshape = self.array is None or self.array.shape[:2] != arr.shape[:2]
        self.array = arr
        self.item.setImage(arr, autoLevels=False, levels=(0.0, 1.0))
        if reshape or below != self._below:
            self._below = below
            self.view.setRange(
                xRange=(0, arr.shape[1]), yRange=(0, arr.shape[0] + below), padding=0
            )

    _below = 0.0

    def clear_image(self) -> None:
        """Show nothing. (Not ``clear``: pyqtgraph binds ``self.clear`` to the layout's clear in
        ``GraphicsLayoutWidget.__init__``, which would take the view box out of the scene.)"""
        self.array = None
        self.item.clear()


class MessageBar(QFrame):
    """A non-modal banner over the views: info, warning or error, dismissable, with
    optional action buttons.

    It floats over the bottom of its host (:meth:`float_over`) instead of taking room in a
    layout: showing or hiding a message never moves a widget under the pointer (when it
    pushed the views down, a message hiding mid-stroke made the stroke on the Draw canvas
    land 33 px lower).

    A message may carry a ``topic`` ("data", "settings", …): ``resolve(topic)`` hides it
    once the problem it names is gone, so no stale error outlives its cause. Every message
    also stays in ``history`` so tests and the status bar can read it.
    """

    COLOURS = {
        "info": ("#1d3a5f", "#9cc7ff"),
        "warning": ("#4a3b12", theme.WARN),
        "error": ("#4d1f24", "#ffb3b3"),
    }
    shown = Signal(str, str)  # level, text

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(10, 6, 6, 6)
        self.icon = QLabel()
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.label.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Preferred)
        close = QPushButton("Dismiss")
        close.setToolTip("Hide this message (Esc)")
        close.clicked.connect(self.hide)
        lay.addWidget(self.icon)
        lay.addWidget(self.label, 1)
        self._actions = QHBoxLayout()
        lay.addLayout(self._actions)
        lay.addWidget(close)
        self.action_buttons: list[QPushButton] = []
        self.history: list[tuple[str, str]] = []
        self.level = "info"
        self.topic = ""
        self._auto_hide = QTimer(self, singleShot=True, timeout=self.hide)
        self._host: QWidget | None = None
        self._margin = 8
        self.hide()

    def float_over(self, host: QWidget, margin: int = 8) -> None:
        """Float over the bottom of ``host``, ``margin`` pixels in from its edges, as wide
        as it and as tall as the message needs."""
        self.setParent(host)
        self._host, self._margin = host, margin
        host.installEventFilter(self)
        self._place()

    def eventFilter(self, obj: QObject, ev: QEvent) -> bool:
        if obj is self._host and ev.type() == QEvent.Resize:
            self._place()
        return False

    def _place(self) -> None:
        host = self._host
        if host is None:
            return
        m = self._margin
        w = max(1, host.width() - 2 * m)
        lay = self.layout()
        h = lay.heightForWidth(w) if lay.hasHeightForWidth() else -1
        h = max(h, self.minimumSizeHint().height())
        self.setGeometry(m, max(0, host.height() - h - m), w, h)
        self.raise_()

    def show_message(
        self, text: str, level: str = "info", timeout_ms: int = 0, topic: str = "", actions=()
    ) -> None:
        """``actions``: (button text, callable) pairs shown beside the message."""
        bg, fg = self.COLOURS.get(level, self.COLOURS["info"])
        self.level, self.topic = level, topic
        for b in self.action_buttons:
            b.deleteLater()
        self.action_buttons = []
        for label, slot in actions:
            b = QPushButton(label)
            b.clicked.connect(slot)
            self._actions.addWidget(b)
            self.action_buttons.append(b)
        self.setStyleSheet(
            f"QFrame#banner {{ background: {bg}; border: 1px solid {fg}; }}"
            f" QLabel {{ color: {fg}; }}"
        )
        self.icon.setText({"info": "ℹ", "warning": "⚠", "error": "✖"}.get(level, ""))
        # messages from the trainer start in lower case; one starting with a file name
        # ("pipe.png: ...") or an option keeps it as it is
        first = text.split(" ", 1)[0].rstrip(",;:")
        if first.isalpha() and first.islower():
            text = text[:1].upper() + text[1:]
        self.label.setText(text)
        self.history.append((level, text))
        self._place()
        self.show()
        self._auto_hide.stop()
        if timeout_ms:
            self._auto_hide.start(timeout_ms)
        self.shown.emit(level, text)

    def resolve(self, topic: str) -> None:
        """The problem ``topic`` named is gone: hide its message if it is still showing."""
        if topic and self.topic == topic and self.isVisible():
            self.hide()

    @property
    def text(self) -> str:
        return self.label.text() if self.isVisible() else ""


def titled(title: str, widget: QWidget, tools: list[QWidget] | None = None) -> QWidget:
    """``widget`` under a one-line heading with optional tool widgets on the right."""
    box = QWidget()
    lay = QVBoxLayout(box)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.setSpacing(4)
    head = QHBoxLayout()
    label = QLabel(title)
    label.setObjectName("heading")
    box.heading = label  # a view may retitle itself
    head.addWidget(label)
    head.addStretch(1)
    for t in tools or []:
        head.addWidget(t)
    lay.addLayout(head)
    lay.addWidget(widget, 1)
    return box


def hint(text: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName("muted")
    label.setWordWrap(True)
    return label


def fix_axis_sizes(plot_item, left: int = 46, bottom: int = 38) -> None:
    """Give an aspect-locked plot's axes fixed sizes.

    With the aspect ratio locked, a tick label that changes width resizes the view box,
    which changes the range and so the labels again: a layout loop that can keep the event
    loop busy. Fixed axis sizes break it.
    """
    plot_item.getAxis("left").setWidth(left)
    plot_item.getAxis("bottom").setHeight(bottom)
