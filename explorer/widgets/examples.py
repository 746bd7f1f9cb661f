"""File ▸ Examples: the bundled example models, each with a thumbnail and one line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from trainer.examples import ExampleInfo, list_examples

THUMB = 148  # pixels: the gallery's pictures


def _summary(ex: ExampleInfo) -> str:
    m = ex.metrics
    parts = []
    if isinstance(m.get("test_nelbo"), float):
        what = "reconstruction error" if "test_nll_iw" not in m else "test −ELBO"
        parts.append(f"{what} {m['test_nelbo']:.1f} nats")
    if isinstance(m.get("test_nll_iw"), float):
        parts.append(f"−log p(x) {m['test_nll_iw']:.1f}")
    return ", ".join(parts)


class ExamplesDialog(QDialog):
    """A grid of the bundled examples; double-click (or Open) opens one through ``opener``."""

    def __init__(
        self,
        opener: Callable[[Path], object],
        parent: QWidget | None = None,
        root: Path | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Example models")
        self.opener = opener
        self.examples = list_examples(root)
        lay = QVBoxLayout(self)
        intro = QLabel(
            "Trained models to explore at once, with no dataset and no network: each comes "
            "with its training curves and up to 2,000 held-out test images. They open read-only "
            "(Save writes a copy elsewhere)."
        )
        intro.setWordWrap(True)
        lay.addWidget(intro)
        self.list = QListWidget()
        self.list.setViewMode(QListWidget.IconMode)
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.setGridSize(QSize(THUMB + 96, THUMB + 92))
        self.list.setResizeMode(QListWidget.Adjust)
        self.list.setMovement(QListWidget.Static)
        self.list.setWordWrap(True)
        self.list.setSpacing(6)
        for ex in self.examples:
            item = QListWidgetItem(ex.title)
            if ex.thumbnail is not None:
                pm = QPixmap(str(ex.thumbnail))
                if not pm.isNull():
                    item.setIcon(
                        QIcon(pm.scaled(THUMB, THUMB, Qt.KeepAspectRatio, Qt.SmoothTransformation))
                    )
            numbers = _summary(ex)
            item.setToolTip("\n".join(t for t in (ex.line, numbers, ex.command) if t))
            item.setData(Qt.UserRole, ex.name)
            self.list.addItem(item)
        if not self.examples:
            empty = QLabel(
                "No example models were found. Run latent-train examples --rebuild to make them."
            )
            empty.setWordWrap(True)
            lay.addWidget(empty)
        lay.addWidget(self.list, 1)
        self.line = QLabel(" ")  # the chosen example's line
        self.line.setWordWrap(True)
        lay.addWidget(self.line)
        buttons = QDialogButtonBox(QDialogButtonBox.Open | QDialogButtonBox.Close)
        self.open_btn = buttons.button(QDialogButtonBox.Open)
        self.open_btn.setEnabled(False)
        buttons.accepted.connect(self._open_current)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.list.currentItemChanged.connect(self._chosen)
        self.list.itemActivated.connect(lambda _item: self._open_current())
        if self.examples:
            self.list.setCurrentRow(0)
        self.resize(4 * (THUMB + 102) + 40, 2 * (THUMB + 92) + 190)

    def _chosen(self, item: QListWidgetItem | None) -> None:
        ex = self._example(item)
        self.open_btn.setEnabled(ex is not None)
        if ex is not None:
            numbers = _summary(ex)
            self.line.setText(
                f"<b>{ex.title}</b>: {ex.line}" + (f" ({numbers})" if numbers else "")
            )

    def _example(self, item: QListWidgetItem | None) -> ExampleInfo | None:
        if item is None:
            return None
        name = item.data(Qt.UserRole)
        return next((e for e in self.examples if e.name == name), None)

    def open_example(self, name: str) -> bool:
        """Open the example ``name`` (as a double-click would); False if it is not listed."""
        ex = next((e for e in self.examples if e.name == name), None)
        if ex is None:
            return False
        self.accept()
        self.opener(ex.path)
        return True

    def _open_current(self) -> None:
        ex = self._example(self.list.currentItem())
        if ex is not None:
            self.open_example(ex.name)
