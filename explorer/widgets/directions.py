"""The Directions panel: make a direction (two classes, two attributes, two selections kept
from the map, the Arithmetic view's b → a), list them, move the current z along the ones
selected with a slider each, export a sweep along one, and offer two as the map's axes.

It takes its owner (:class:`explorer.directions.Directions`) and subscribes to it; the
window places it under the Arithmetic view (:func:`arithmetic_and_directions`).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QAbstractScrollArea,
    QComboBox,
    QDoubleSpinBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QScrollArea,
    QSlider,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from explorer.directions import Directions

from .common import hint

SLIDER_RANGE = 2.0  # a slider moves from -2 to +2 whole directions
SLIDER_TICKS = 200  # steps of the slider either way


class DirectionsPanel(QWidget):
    exportRequested = Signal()  # "Export sweep…": the window asks where (explorer.exports)

    def __init__(self, directions: Directions, arithmetic=None, parent=None) -> None:
        super().__init__(parent)
        self.directions = directions
        self.session = directions.session
        self.arithmetic = arithmetic
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 4, 0, 0)
        lay.setSpacing(4)

        make = QGridLayout()
        make.setHorizontalSpacing(6)
        self.class_a, self.class_b = QComboBox(), QComboBox()
        self.class_btn = QPushButton("Add")
        self.class_btn.setToolTip("The direction from the first class's mean code to the second's")
        self.class_btn.clicked.connect(self.add_classes)
        self._row(make, 0, "From class", [self.class_a, QLabel("to"), self.class_b, self.class_btn])
        self.attr_a, self.attr_b = QComboBox(), QComboBox()
        self.attr_btn = QPushButton("Add")
        self.attr_btn.setToolTip(
            "From the faces without the attribute (or with the other one) to those with it"
        )
        self.attr_btn.clicked.connect(self.add_attributes)
        self._row(
            make, 1, "Attribute", [self.attr_a, QLabel("against"), self.attr_b, self.attr_btn]
        )
        self.keep_a = QPushButton("Keep as A")
        self.keep_b = QPushButton("Keep as B")
        for b, g in ((self.keep_a, "A"), (self.keep_b, "B")):
            b.setToolTip(f"The test images selected on the map become group {g}")
            b.clicked.connect(lambda _=False, g=g: self.directions.keep_selection(g))
        self.kept_btn = QPushButton("Add A → B")
        self.kept_btn.setToolTip("The direction from group A's mean code to group B's")
        self.kept_btn.clicked.connect(self.directions.from_kept)
        self._row(make, 2, "Selection", [self.keep_a, self.keep_b, self.kept_btn])
        self.kept_label = hint("")
        make.addWidget(self.kept_label, 3, 1, 1, 4)
        lay.addLayout(make)

        self.list = QListWidget()
        self.list.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.list.setToolTip("Select directions to move z along them; two to use as map axes")
        self.list.itemSelectionChanged.connect(self._rebuild_sliders)
        # as tall as its directions (a few lines), so the sliders under it stay in sight
        self.list.setSizeAdjustPolicy(QAbstractScrollArea.AdjustToContents)
        self.list.setMinimumHeight(48)
        self.list.setMaximumHeight(140)
        lay.addWidget(self.list)
        self.sliders_box = QWidget()
        self.sliders_lay = QGridLayout(self.sliders_box)
        self.sliders_lay.setContentsMargins(0, 0, 0, 0)
        self.sliders: dict[int, tuple[QSlider, QLabel]] = {}
        lay.addWidget(self.sliders_box)

        tools = QHBoxLayout()
        self.steps = QSpinBox()
        self.steps.setRange(2, 60)
        self.steps.setValue(9)
        self.steps.setSuffix(" steps")
        self.steps.setToolTip("Images in an exported sweep")
        self.span = QDoubleSpinBox()
        self.span.setRange(0.1, 10.0)
        self.span.setSingleStep(0.25)
        self.span.setValue(1.0)
        self.span.setPrefix("0 to ")
        self.span.setSuffix(" ×")
        self.span.setToolTip(
            "How far a sweep goes, in whole directions (1: to the other group's mean)"
        )
        self.start = QComboBox()
        self.start.addItem("from the first mean", True)
        self.start.addItem("from the current z", False)
        self.start.setToolTip("Where a sweep starts: the first group's mean code, or the current z")
        self.export_btn = QPushButton("Export sweep…")
        self.export_btn.setToolTip("Save a sweep along the selected direction as PNG or GIF")
        self.export_btn.clicked.connect(self.exportRequested)
        self.axes_btn = QPushButton("Use as map axes")
        self.axes_btn.setToolTip("The map shows the codes on the plane of two selected directions")
        self.axes_btn.clicked.connect(lambda: self.directions.use_as_axes(self.selected()))
        self.remove_btn = QPushButton("Remove")
        self.remove_btn.clicked.connect(lambda: self.directions.remove(self.selected()))
        for w in (
            self.steps,
            self.span,
            self.start,
            self.export_btn,
            self.axes_btn,
            self.remove_btn,
        ):
            tools.addWidget(w)
        tools.addStretch(1)
        lay.addLayout(tools)
        self.status = hint("")
        lay.addWidget(self.status)
        lay.addStretch(1)

        if arithmetic is not None:
            self.keep_arithmetic = QPushButton("Keep b → a")
            self.keep_arithmetic.setToolTip(
                "Keep the difference z_a − z_b as a direction (from image b to image a)"
            )
            self.keep_arithmetic.clicked.connect(self.keep_arithmetic_difference)

        directions.changed.connect(self._rebuild_list)
        directions.amountsChanged.connect(self._show_amounts)
        directions.groupsChanged.connect(self._show_kept)
        directions.said.connect(self._say)
        self.session.dataChanged.connect(self._rebuild_choices)
        self.session.structureChanged.connect(self._rebuild_choices)
        self.session.selection.changed.connect(self._show_kept)
        self._rebuild_choices()
        self._rebuild_list()
        self._show_kept()

    @staticmethod
    def _row(grid: QGridLayout, r: int, title: str, widgets: list[QWidget]) -> None:
        grid.addWidget(QLabel(title), r, 0)
        for c, w in enumerate(widgets, 1):
            grid.addWidget(w, r, c)

    # -- making directions ------------------------------------------------------------------------
    def _rebuild_choices(self) -> None:
        s = self.session
        names = s.class_names if s.data is not None and s.data.test_y is not None else []
        for box, pick in ((self.class_a, 0), (self.class_b, 1)):
            box.blockSignals(True)
            box.clear()
            for k, n in enumerate(names):
                box.addItem(n, k)
            box.setCurrentIndex(min(pick, box.count() - 1))
            box.blockSignals(False)
        no_labels = "These test images have no labels" if not names else ""
        for w in (self.class_a, self.class_b, self.class_btn):
            w.setEnabled(bool(names))
            w.setToolTip(no_labels or w.toolTip())
        att = s.data.attributes if s.data is not None else None
        attrs = list(att.names) if att is not None else []
        self.attr_a.clear()
        self.attr_a.addItems(attrs)
        self.attr_b.clear()
        if attrs:
            self.attr_b.addItem("(its absence)", None)
            for n in attrs:
                self.attr_b.addItem(n, n)
        for w in (self.attr_a, self.attr_b, self.attr_btn):
            w.setEnabled(bool(attrs))
            if not attrs:
                w.setToolTip("Only CelebA's faces have attributes (Smiling, Eyeglasses, …)")

    def add_classes(self) -> None:
        if self.class_a.count():
            self.directions.from_classes(self.class_a.currentData(), self.class_b.currentData())

    def add_attributes(self) -> None:
        if self.attr_a.count():
            self.directions.from_attributes(self.attr_a.currentText(), self.attr_b.currentData())

    def keep_arithmetic_difference(self) -> None:
        """The Arithmetic view's z_a − z_b: the direction from image b to image a."""
        v = self.arithmetic
        n = len(self.session.data.test_x) if self.session.data is not None else 0
        if n == 0:
            self.directions.said.emit("There are no test images yet.", "warning")
            return
        a, b = (v.index[k].value() % n for k in (0, 1))
        self.directions.from_rows([b], [a], f"image #{b}", f"image #{a}")

    def _show_kept(self) -> None:
        kept = self.directions.kept
        parts = [
            f"{g}: {len(kept[g][0]):,} image{'s' * (len(kept[g][0]) != 1)}"
            if kept[g]
            else f"{g}: not kept"
            for g in ("A", "B")
        ]
        n = len(self.session.selection)
        self.kept_label.setText(" · ".join(parts) + f" · {n:,} selected on the map now")

    # -- the list and its sliders ---------------------------------------------------------------
    def selected(self) -> list[int]:
        return sorted(self.list.row(i) for i in self.list.selectedItems())

    def _rebuild_list(self) -> None:
        before = self.selected()
        self.list.blockSignals(True)
        self.list.clear()
        for d in self.directions.items:
            self.list.addItem(d.describe())
        count = self.list.count()
        # and those z was moved along (a view reopened shows their amounts)
        moved = [k for k, a in enumerate(self.directions.amounts[:count]) if a]
        keep = sorted({r for r in before if r < count} | set(moved)) or (
            [count - 1] if count else []
        )
        for r in keep:
            self.list.item(r).setSelected(True)
        self.list.blockSignals(False)
        self._rebuild_sliders()

    def _rebuild_sliders(self) -> None:
        lay = self.sliders_lay
        while lay.count():
            w = lay.takeAt(0).widget()
            if w is not None:
                w.deleteLater()
        self.sliders = {}
        for r, k in enumerate(self.selected()):
            d = self.directions.items[k]
            name = QLabel(d.name)
            slider = QSlider(Qt.Horizontal)
            slider.setRange(-SLIDER_TICKS, SLIDER_TICKS)
            slider.setToolTip(
                f"Move z along {d.name}: -{SLIDER_RANGE:g} to +{SLIDER_RANGE:g} times it "
                "(0: where z was put)"
            )
            value = QLabel()
            slider.valueChanged.connect(lambda t, k=k: self._slid(k, t))
            lay.addWidget(name, r, 0)
            lay.addWidget(slider, r, 1)
            lay.addWidget(value, r, 2)
            self.sliders[k] = (slider, value)
        has = bool(self.directions.items)
        one = len(self.selected()) >= 1
        self.export_btn.setEnabled(has and one)
        self.remove_btn.setEnabled(has and one)
        self.axes_btn.setEnabled(len(self.selected()) == 2)
        self._show_amounts()

    def _slid(self, k: int, ticks: int) -> None:
        self.directions.set_amount(k, ticks * SLIDER_RANGE / SLIDER_TICKS)

    def _show_amounts(self) -> None:
        for k, (slider, value) in self.sliders.items():
            if k >= len(self.directions.amounts):
                continue
            t = self.directions.amounts[k]
            slider.blockSignals(True)
            slider.setValue(
                int(round(np.clip(t, -SLIDER_RANGE, SLIDER_RANGE) / SLIDER_RANGE * SLIDER_TICKS))
            )
            slider.blockSignals(False)
            value.setText(f"{t:+.2f} ×")

    def _say(self, text: str, level: str) -> None:
        self.status.setText(text)
        self.status.setObjectName("muted" if level == "info" else "warning")
        self.status.style().unpolish(self.status)
        self.status.style().polish(self.status)

    # -- exports ---------------------------------------------------------------------------------
    def export_problem(self) -> str | None:
        if not self.directions.items:
            return "There is no direction to sweep yet: add one first."
        if len(self.selected()) != 1:
            return "Select one direction to export its sweep."
        return None

    def export_sweep(self, path) -> None:
        """Write the selected direction's sweep: a row of images (PNG, …) or a GIF."""
        from pathlib import Path

        import torch

        from trainer.export import save_gif, save_grid

        problem = self.export_problem()
        if problem is not None:
            raise ValueError(problem)
        k = self.selected()[0]
        images = torch.from_numpy(
            self.directions.sweep_images(
                k, self.steps.value(), (0.0, self.span.value()), bool(self.start.currentData())
            )
        )
        if Path(path).suffix.lower() == ".gif":
            save_gif(images, path, fps=6, scale=4)
        else:
            from .views import PAD, export_scale

            _n, _c, h, w = images.shape
            n = len(images)
            scale = export_scale(n * (w + PAD) + PAD, h + 2 * PAD)
            save_grid(images, path, nrow=n, padding=PAD, scale=scale)


def arithmetic_and_directions(arithmetic: QWidget, panel: DirectionsPanel) -> QWidget:
    """The Arithmetic tab's page: the a − b + c row over the Directions panel."""
    split = QSplitter(Qt.Vertical)
    split.addWidget(arithmetic)
    box = QWidget()
    lay = QVBoxLayout(box)
    lay.setContentsMargins(0, 0, 0, 0)
    title = QLabel("Directions: the difference of two groups' mean codes")
    title.setObjectName("heading")
    lay.addWidget(title)
    # scrolled: the panel never makes the window larger than it was without it
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.NoFrame)
    scroll.setWidget(panel)
    lay.addWidget(scroll, 1)
    split.addWidget(box)
    split.setStretchFactor(0, 2)
    split.setStretchFactor(1, 5)
    return split
