"""The Runs tab: every run kept in the project, side by side. Select runs to overlay their
test curves and see the settings that differ; open any run's model in the explorer."""

from __future__ import annotations

from collections.abc import Callable

import pyqtgraph as pg
from PySide6.QtCore import QBuffer, QIODevice, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from explorer import theme
from explorer.project import ProjectRuns
from trainer.runs import HEADERS, differing, table

from .common import hint


class RunsView(QWidget):
    exportRequested = Signal(str)  # a path: the window exports and says how it went

    def __init__(
        self,
        runs: ProjectRuns,
        opener: Callable[[str], object],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.runs, self.opener = runs, opener
        self.places = None  # where dialogs start (explorer.places.Places; the window sets it)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        top = QHBoxLayout()
        self.where = hint("")
        top.addWidget(self.where, 1)
        self.change_btn = QPushButton("Project folder…")
        self.change_btn.setToolTip("Keep and compare runs in another folder")
        self.change_btn.clicked.connect(self._choose_folder)
        self.add_btn = QPushButton("Add --out folder…")
        self.add_btn.setToolTip("Add a run written by latent-train train --out DIR")
        self.add_btn.clicked.connect(self._choose_run_folder)
        top.addWidget(self.change_btn)
        top.addWidget(self.add_btn)
        lay.addLayout(top)
        split = QSplitter(Qt.Vertical)
        self.table = QTableWidget(0, len(HEADERS))
        self.table.setHorizontalHeaderLabels(HEADERS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._selected)
        self.table.itemDoubleClicked.connect(lambda _item: self.open_selected())
        split.addWidget(self.table)
        bottom = QWidget()
        bl = QVBoxLayout(bottom)
        bl.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        self.diff = hint("Select runs (Ctrl or Shift + click) to compare their test curves.")
        row.addWidget(self.diff, 1)
        self.open_btn = QPushButton("Open in explorer")
        self.open_btn.setToolTip("Make this run's model the one the views show (double-click)")
        self.open_btn.clicked.connect(self.open_selected)
        self.remove_btn = QPushButton("Remove")
        self.remove_btn.setToolTip("Forget the selected runs (a run trained here takes its file)")
        self.remove_btn.clicked.connect(self.remove_selected)
        self.export_btn = QPushButton("Export PNG…")
        self.export_btn.setToolTip("Save the compared curves as a PNG")
        self.export_btn.clicked.connect(self._export_dialog)
        row.addWidget(self.open_btn)
        row.addWidget(self.remove_btn)
        row.addWidget(self.export_btn)
        bl.addLayout(row)
        self.plot = pg.PlotWidget()
        self.plot.setMinimumHeight(140)
        p = self.plot.getPlotItem()
        p.setLabel("bottom", "epoch")
        p.setLabel("left", "test −ELBO (nats)")
        p.showGrid(x=True, y=True, alpha=0.2)
        self.legend = p.addLegend(offset=(-10, 10))
        bl.addWidget(self.plot, 1)
        split.addWidget(bottom)
        split.setSizes([200, 260])
        lay.addWidget(split, 1)
        runs.changed.connect(self.render)
        self.render()

    # -- what it shows ------------------------------------------------------------------------
    def render(self) -> None:
        chosen = set(self.selected_ids())
        recs = self.runs.records
        self.where.setText(f"{len(recs)} run{'s' if len(recs) != 1 else ''} in {self.runs.folder}")
        self.table.blockSignals(True)
        self.table.setRowCount(len(recs))
        for r, (rec, cells) in enumerate(zip(recs, table(recs), strict=True)):
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.UserRole, rec.id)
                if c >= 3:
                    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                if rec.id == self.runs.current_id:
                    f = item.font()
                    f.setBold(True)
                    item.setFont(f)
                item.setToolTip(f"{rec.source}: {rec.checkpoint}")
                self.table.setItem(r, c, item)
        self.select(list(chosen))
        self.table.blockSignals(False)
        self._selected()

    def selected_ids(self) -> list[str]:
        rows = sorted({i.row() for i in self.table.selectedItems()})
        ids = []
        for r in rows:
            item = self.table.item(r, 0)
            if item is not None:
                ids.append(item.data(Qt.UserRole))
        return ids

    def select(self, ids: list[str]) -> None:
        self.table.clearSelection()
        mode = self.table.selectionMode()
        self.table.setSelectionMode(QAbstractItemView.MultiSelection)
        for r in range(self.table.rowCount()):
            if self.table.item(r, 0).data(Qt.UserRole) in ids:
                self.table.selectRow(r)
        self.table.setSelectionMode(mode)

    def _selected(self) -> None:
        recs = [self.runs.get(i) for i in self.selected_ids()]
        recs = [r for r in recs if r is not None]
        self.open_btn.setEnabled(len(recs) == 1)
        self.remove_btn.setEnabled(bool(recs))
        p = self.plot.getPlotItem()
        p.clear()
        self.legend.clear()
        self.curves = {}
        for k, rec in enumerate(recs):
            if rec.curve:
                xs = [e for e, _ in rec.curve]
                ys = [v for _, v in rec.curve]
                colour = theme.class_colour(k)
                self.curves[rec.id] = p.plot(
                    xs,
                    ys,
                    pen=pg.mkPen(colour, width=2),
                    name=rec.name,
                    symbol="o",
                    symbolSize=4,
                    symbolBrush=colour,
                )
        if len(recs) >= 2:
            diff = differing(recs)
            self.diff.setText(
                "Settings that differ: "
                + "; ".join(f"{k} " + " / ".join(map(str, v)) for k, v in diff.items())
                if diff
                else "The selected runs have the same settings."
            )
        elif recs:
            self.diff.setText(f"{recs[0].name}: select more runs to compare them.")
        else:
            self.diff.setText("Select runs (Ctrl or Shift + click) to compare their test curves.")

    # -- actions ------------------------------------------------------------------------------
    def open_selected(self) -> None:
        ids = self.selected_ids()
        rec = self.runs.get(ids[0]) if len(ids) == 1 else None
        if rec is not None:
            self.opener(rec.checkpoint)

    def remove_selected(self) -> None:
        for rid in self.selected_ids():
            self.runs.remove(rid)

    def export_png(self, path) -> None:
        """The compared test curves, as shown, to a PNG (at least 1200 px wide)."""
        from pathlib import Path

        from pyqtgraph.exporters import ImageExporter

        from trainer.export import ExportError, write_file

        if not self.curves:
            raise ValueError("select runs to compare first: there are no curves to export")
        path = Path(path)
        if path.suffix.lower() != ".png":
            raise ExportError(
                f"{path}: the curves are saved as .png, not {path.suffix or '(none)'!r}"
            )
        exporter = ImageExporter(self.plot.getPlotItem())
        exporter.parameters()["width"] = max(1200, int(self.plot.width()))
        buf = QBuffer()
        buf.open(QIODevice.WriteOnly)
        if not exporter.export(toBytes=True).save(buf, "PNG"):
            raise OSError(f"{path}: the picture could not be made")
        write_file(path, bytes(buf.data()))  # atomically, and never over a pipe or device

    def _export_dialog(self) -> None:
        name = self.places.suggest("exports", "runs.png") if self.places else "runs.png"
        path, _ = QFileDialog.getSaveFileName(self, "Export compared runs", name, "PNG (*.png)")
        if path:
            if self.places is not None:
                self.places.remember("exports", path)
            self.exportRequested.emit(path)

    def _choose_folder(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Project folder", str(self.runs.folder))
        if d:
            self.runs.set_folder(d)

    def _choose_run_folder(self) -> None:
        start = self.places.start("checkpoints") if self.places is not None else ""
        d = QFileDialog.getExistingDirectory(self, "A latent-train --out folder", start)
        if d:
            self.runs.add_folder(d)
