"""The Traversals tab: one row per latent dimension, swept over inverse-CDF spaced values
while the others stay at the current z (and class). Rows are ordered by KL, most
informative first; collapsed dimensions are greyed and say so. Its CLI twin is
``latent-train traverse``."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QVBoxLayout, QWidget

from explorer import theme
from explorer.state import Session
from trainer.config import TRAVERSAL_COLUMNS
from trainer.data.imaging import cell_centres, tile
from trainer.latent import Traversal, cdf_cell, traversal

from .common import CountingImageItem, fix_axis_sizes
from .views import PAD, DecodedView, export_scale

GREY = 0.5  # collapsed rows are drawn faded towards this grey ...
FADE = 0.3  # ... keeping this share of their contrast


def row_labels(t: Traversal) -> list[str]:
    """ "z13 · 2.49 nats" (its KL) per row; collapsed rows say so."""
    out = []
    for r, dim in enumerate(t.dims):
        text = f"z{dim}"
        if t.kl is not None:
            text += f" · {t.kl[r]:.2f} nats"
        if t.collapsed[r]:
            text += " · collapsed"
        out.append(text)
    return out


def faded(images: np.ndarray, t: Traversal) -> np.ndarray:
    """The images as shown: collapsed rows faded towards grey."""
    out = images.copy()
    c = t.columns
    for r, flag in enumerate(t.collapsed):
        if flag:
            out[r * c : (r + 1) * c] = GREY + FADE * (out[r * c : (r + 1) * c] - GREY)
    return out


class TraversalView(DecodedView):
    title = "traversals"
    min_interval = 0.3

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(session, parent)
        self.columns = 11
        self.traversal: Traversal | None = None
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.plot = pg.PlotWidget()
        self.plot.setMinimumSize(200, 200)
        p = self.plot.getPlotItem()
        p.invertY(True)
        p.setAspectLocked(True)
        fix_axis_sizes(p, left=118)
        p.setMouseEnabled(False, False)
        p.hideButtons()
        p.setMenuEnabled(False)
        p.getAxis("bottom").setStyle(tickFont=theme.small_font(-1.5), hideOverlappingLabels=False)
        # each row's label is a text item beside it (an axis drops labels where it finds them
        # crowded; every row needs its own); collapsed rows' labels are greyed
        p.hideAxis("left")
        self.labels: list[pg.TextItem] = []
        self.item = CountingImageItem(axisOrder="row-major", autoDownsample=True)
        self.plot.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        p.addItem(self.item)
        self.markers: list[pg.QtWidgets.QGraphicsRectItem] = []  # the current z, per row
        lay.addWidget(self.plot)
        self.plot.scene().sigMouseClicked.connect(self._clicked)
        self.setToolTip(
            "Each row sweeps one latent dimension over values spaced evenly in prior "
            "probability (the Figure 4 spacing); the others stay at the current z. Rows are "
            "ordered by KL (nats, most informative first); collapsed dimensions are greyed. "
            "Click a cell to move z there."
        )
        session.zChanged.connect(self._z_changed)
        session.klChanged.connect(self.mark)

    def set_columns(self, n: int) -> None:
        lo, hi = TRAVERSAL_COLUMNS
        if not lo <= n <= hi:
            raise ValueError(f"columns must be {lo} to {hi}, not {n}")
        if n != self.columns:
            self.columns = n
            self.dirty = True

    def _z_changed(self) -> None:
        self.dirty = True  # every row keeps the other dimensions at the current z

    def render(self) -> None:
        s = self.session
        kl = s.kl_per_dim
        if kl is not None and len(kl) != s.latent_dim:  # a new model's KL is not in yet
            kl = None
        t = traversal(s.model, s.z, s.label(), self.columns, kl)
        images = t.images.numpy()
        self.traversal, self.images, self.ncol = t, images, t.columns
        arr = tile(faded(images, t), t.columns, PAD)
        self.item.setImage(arr, autoLevels=False, levels=(0.0, 1.0))
        self.item.setRect(QRectF(0, 0, arr.shape[1], arr.shape[0]))
        h, w = images.shape[-2:]
        p = self.plot.getPlotItem()
        xs, ys = cell_centres(t.columns, w, PAD), cell_centres(len(t.dims), h, PAD)
        values = t.values.tolist()
        k = min(t.columns, 5)  # 5 labels, symmetric, so that they never overlap
        keep = sorted({int(math.floor(x + 0.5)) for x in np.linspace(0, t.columns - 1, k)})
        p.getAxis("bottom").setTicks([[(xs[i], f"{values[i]:.2f}") for i in keep]])
        self._label_rows(t, ys)
        p.setLabel("bottom", "value of the row's dimension")
        # room on the left for the labels (about 5 cells)
        p.setRange(xRange=(-5 * (w + PAD), arr.shape[1]), yRange=(0, arr.shape[0]), padding=0.01)
        self._place_markers()

    def _label_rows(self, t: Traversal, ys) -> None:
        view = self.plot.getPlotItem()
        texts = row_labels(t)
        while len(self.labels) > len(texts):
            view.removeItem(self.labels.pop())
        while len(self.labels) < len(texts):
            item = pg.TextItem(anchor=(1.0, 0.5))
            item.setFont(theme.small_font(-1.5))
            view.addItem(item)
            self.labels.append(item)
        for item, text, y, collapsed in zip(self.labels, texts, ys, t.collapsed, strict=True):
            item.setText(text, color=theme.MUTED if collapsed else theme.TEXT)
            item.setPos(-4.0, float(y))

    def _place_markers(self) -> None:
        t, view = self.traversal, self.plot.getPlotItem()
        rows = 0 if t is None or self.images is None else len(t.dims)
        while len(self.markers) > rows:
            view.removeItem(self.markers.pop())
        while len(self.markers) < rows:
            m = pg.QtWidgets.QGraphicsRectItem()
            m.setPen(pg.mkPen(theme.ACCENT, width=1.5))
            m.setZValue(5)
            view.addItem(m)
            self.markers.append(m)
        if not rows:
            return
        h, w = self.images.shape[-2:]
        z = self.session.z
        for r, dim in enumerate(t.dims):
            col = cdf_cell(float(z[dim]), self.columns)
            self.markers[r].setRect(
                QRectF(col * (w + PAD) + PAD / 2, r * (h + PAD) + PAD / 2, w + PAD, h + PAD)
            )

    def cell_at(self, x: float, y: float) -> tuple[int, int] | None:
        """(row, column) of the cell at image coordinates (x, y), or None outside."""
        if self.images is None or self.traversal is None:
            return None
        h, w = self.images.shape[-2:]
        col, row = int(x // (w + PAD)), int(y // (h + PAD))
        if 0 <= row < len(self.traversal.dims) and 0 <= col < self.traversal.columns:
            return row, col
        return None

    def click_cell(self, row: int, col: int) -> None:
        """Move z to the cell's value of its row's dimension (as a click does)."""
        t = self.traversal
        self.session.set_z_values({t.dims[row]: float(t.values[col])})

    def _clicked(self, ev) -> None:
        if ev.button() != Qt.LeftButton:
            return
        pt = self.plot.getPlotItem().vb.mapSceneToView(ev.scenePos())
        cell = self.cell_at(pt.x(), pt.y())
        if cell is not None:
            self.click_cell(*cell)

    def export_png(self, path) -> None:
        if self.dirty or self.images is None:
            self.refresh(force=True)
        if self.images is None or self.traversal is None:
            raise ValueError("nothing to export from the traversals yet")
        from trainer.export import save_labelled_rows

        t = self.traversal
        n, _c, h, w = self.images.shape
        rows = len(t.dims)
        scale = export_scale(t.columns * (w + PAD) + PAD, rows * (h + PAD) + PAD)
        save_labelled_rows(
            torch.from_numpy(self.images),
            path,
            t.columns,
            row_labels(t),
            t.collapsed,
            padding=PAD,
            scale=scale,
        )

    def export_gif(self, path) -> None:
        """Every dimension at once, frame by frame along its values (and back)."""
        if self.dirty or self.images is None:
            self.refresh(force=True)
        if self.images is None or self.traversal is None:
            raise ValueError("nothing to export from the traversals yet")
        from trainer.export import grid_image, save_gif

        t = self.traversal
        d = len(t.dims)
        frames = torch.from_numpy(self.images).reshape(d, t.columns, *self.images.shape[1:])
        side = max(1, math.ceil(math.sqrt(d)))
        save_gif(
            torch.stack([grid_image(f, nrow=side) for f in frames.transpose(0, 1)]),
            path,
            fps=6,
            scale=3,
        )
