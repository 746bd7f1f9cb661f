"""The "Nearest training images" panel under the current z's decoded image: the images
nearest to z by code (top row) and by the decoded image's pixels (bottom row), each with its
distance; a click on one moves z to its code. Its owner is
:class:`explorer.neighbours.NeighbourSearch`."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from explorer.neighbours import K_MAX, NeighbourSearch

from .common import hint
from .inputs import RangeSpinBox

ROWS = (("latent", "By code"), ("pixels", "By pixels"))


def pixmap(image: np.ndarray, side: int) -> QPixmap:
    """A (C, H, W) image in [0, 1] as a pixmap ``side`` pixels high (nearest neighbour)."""
    px = np.clip(np.rint(np.asarray(image) * 255), 0, 255).astype(np.uint8)
    if px.shape[0] == 1:
        a = np.ascontiguousarray(px[0])
        q = QImage(a.data, a.shape[1], a.shape[0], a.strides[0], QImage.Format_Grayscale8)
    else:
        a = np.ascontiguousarray(px.transpose(1, 2, 0))
        q = QImage(a.data, a.shape[1], a.shape[0], a.strides[0], QImage.Format_RGB888)
    return QPixmap.fromImage(q.copy()).scaledToHeight(side, Qt.FastTransformation)


class NeighbourPanel(QWidget):
    exportRequested = Signal()

    def __init__(self, search: NeighbourSearch, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.search = search
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(3)
        self.heading = QLabel("Nearest training images")
        self.heading.setObjectName("heading")
        self.heading.setWordWrap(True)
        lay.addWidget(self.heading)
        head = QHBoxLayout()
        self.k = RangeSpinBox(1, K_MAX, search.k, "Images in each row", "k")
        self.k.setPrefix("k = ")
        self.k.valueChanged.connect(search.set_k)
        head.addWidget(self.k)
        self.export = QPushButton("Export…")
        self.export.setToolTip("Save the query and its nearest images as a PNG")
        self.export.clicked.connect(self.exportRequested)
        head.addWidget(self.export)
        head.addStretch(1)
        lay.addLayout(head)
        self.status = hint("")
        lay.addWidget(self.status)
        bar = QHBoxLayout()
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.cancel = QPushButton("Cancel")
        self.cancel.setToolTip("Stop indexing the images")
        self.cancel.clicked.connect(search.cancel)
        bar.addWidget(self.progress, 1)
        bar.addWidget(self.cancel)
        lay.addLayout(bar)
        # one row of thumbnails per search; a row wider than the column scrolls across
        self.buttons: dict[str, list[QToolButton]] = {}
        self.rows: dict[str, QHBoxLayout] = {}
        self.scrolls: dict[str, QScrollArea] = {}
        for space, title in ROWS:
            label = QLabel(title)
            label.setObjectName("muted")
            lay.addWidget(label)
            inner = QWidget()
            row = QHBoxLayout(inner)
            row.setContentsMargins(0, 0, 0, 0)
            row.setSpacing(2)
            row.addStretch(1)
            scroll = QScrollArea()
            scroll.setWidget(inner)
            scroll.setWidgetResizable(True)
            scroll.setFrameShape(QScrollArea.NoFrame)
            scroll.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
            scroll.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Minimum)
            lay.addWidget(scroll)
            self.buttons[space], self.rows[space] = [], row
            self.scrolls[space] = scroll
        lay.addStretch(1)
        search.changed.connect(self.render)
        search.searched.connect(self.show_found)
        self.render()

    def under(self, top: QWidget) -> QWidget:
        """``top`` (the decoded image of z) over this panel, in one widget."""
        box = QWidget()
        lay = QVBoxLayout(box)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(6)
        lay.addWidget(top, 3)
        lay.addWidget(self, 2)
        return box

    def render(self) -> None:
        s = self.search
        if self.k.value() != s.k:  # (a bookmark restored)
            self.k.blockSignals(True)
            self.k.setValue(s.k)
            self.k.blockSignals(False)
        self.heading.setText(s.title())
        self.status.setText(s.status())
        self.progress.setVisible(s.building)
        self.cancel.setVisible(s.building)
        self.progress.setValue(round(1000 * s.fraction))
        problem = s.export_problem()
        self.export.setEnabled(problem is None)
        self.export.setToolTip(problem or "Save the query and its nearest images as a PNG")

    def _side(self, k: int) -> int:
        return int(max(28, min(72, (self.width() - 4) // max(1, k) - 16)))

    def show_found(self, found) -> None:
        """Show one search's two rows (None: clear them)."""
        s = self.search
        for space, _title in ROWS:
            nb = None if found is None else getattr(found, space)
            n = 0 if nb is None else len(nb.rows)
            row = self.buttons[space]
            while len(row) < n:
                b = QToolButton()
                b.setToolButtonStyle(Qt.ToolButtonTextUnderIcon)
                b.setAutoRaise(True)
                i = len(row)
                b.clicked.connect(lambda _=False, sp=space, i=i: s.jump(sp, i))
                self.rows[space].insertWidget(i, b)
                row.append(b)
            if nb is None:
                for b in row:
                    b.hide()
                continue
            side = self._side(n)
            thumbs = s.index.thumbnails(nb.rows).numpy()
            labels = s.index.labels
            names = s.session.class_names
            for i, b in enumerate(row):
                b.setVisible(i < n)
                if i >= n:
                    continue
                b.setIcon(QIcon(pixmap(thumbs[i], side)))
                b.setIconSize(QSize(side, side))
                b.setText(f"{nb.distances[i]:.2f}")
                row_id = int(nb.rows[i])
                name = ""
                if labels is not None and int(labels[row_id]) < len(names):
                    name = f", {names[int(labels[row_id])]}"
                b.setToolTip(
                    f"{s.index.where[:-1]} {row_id}{name}: distance {nb.distances[i]:.3f} "
                    f"({'latent' if space == 'latent' else 'pixels in [0, 1]'}); "
                    "click to move z to its code"
                )
            scroll = self.scrolls[space]
            room = scroll.horizontalScrollBar().sizeHint().height()
            scroll.setMinimumHeight(scroll.widget().sizeHint().height() + room)

    def resizeEvent(self, ev) -> None:
        super().resizeEvent(ev)
        if self.search.found is not None:
            self.show_found(self.search.found)
