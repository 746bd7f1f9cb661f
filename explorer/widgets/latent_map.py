"""The latent map: the encoded test set on two latent dimensions, with a draggable cursor.

Dragging the cursor sets those two coordinates of the session's z, so the decoded
preview follows the cursor, during training too. Clicking a test point moves the whole z
to that image's posterior mean.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from explorer import theme
from explorer.state import Z_RANGE, Session
from explorer.widgets.common import fix_axis_sizes


class LatentMap(QWidget):
    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.plot = pg.PlotWidget()
        self.plot.setMinimumSize(200, 200)
        p = self.plot.getPlotItem()
        p.setAspectLocked(True)
        fix_axis_sizes(p)
        p.showGrid(x=True, y=True, alpha=0.12)
        p.setMenuEnabled(False)
        p.setRange(xRange=(-3.2, 3.2), yRange=(-3.2, 3.2), padding=0.02)
        p.getViewBox().setLimits(xMin=-50, xMax=50, yMin=-50, yMax=50)
        self.auto_fit = True  # follow the data until the user zooms or pans
        p.getViewBox().sigRangeChangedManually.connect(self._user_zoomed)
        self.scatters: list[pg.ScatterPlotItem] = []
        self.cursor = pg.TargetItem(
            pos=(0.0, 0.0),
            size=18,
            symbol="crosshair",
            movable=True,
            pen=pg.mkPen("#ffffff", width=2),
            brush=pg.mkBrush(255, 255, 255, 60),
            hoverPen=pg.mkPen(theme.ACCENT, width=2.5),
        )
        self.cursor.setZValue(10)
        self.cursor.setToolTip("Drag to move z; the decoded image follows")
        p.addItem(self.cursor)
        lay.addWidget(self.plot, 1)
        self.legend = QLabel()
        self.legend.setWordWrap(True)
        self.legend.setTextFormat(Qt.RichText)
        self.legend.setToolTip("Colours of the classes in the latent map")
        lay.addWidget(self.legend)
        self.setToolTip(
            "Test images encoded to their posterior means, coloured by class. "
            "Drag the cross to move z; click a point to jump to that image's code."
        )
        self._syncing = False
        self.cursor.sigPositionChanged.connect(self._cursor_moved)
        session.zChanged.connect(self._sync_cursor)
        session.dimsChanged.connect(self._dims_changed)
        session.structureChanged.connect(self._dims_changed)
        session.dataChanged.connect(self._rebuild_scatters)
        session.testLatentsChanged.connect(self._update_points)
        session.historyReset.connect(self._new_model)
        self._serial = session.model_serial
        self._rebuild_scatters()

    def _new_model(self) -> None:
        """Another model (opened, or a new run): its codes lie elsewhere; fit them again,
        whatever the last one was panned or zoomed to."""
        if self.session.model_serial != self._serial:
            self._serial = self.session.model_serial
            self.auto_fit = True

    # -- scatter ------------------------------------------------------------------------------
    def _rebuild_scatters(self) -> None:
        p = self.plot.getPlotItem()
        for sc in self.scatters:
            p.removeItem(sc)
        self.scatters = []
        s = self.session
        names = s.class_names if s.test_labels is not None else ["test images"]
        for k, name in enumerate(names):
            colour = (
                theme.class_colour(k) if s.test_labels is not None else pg.mkColor(theme.ACCENT)
            )
            colour.setAlpha(170)
            sc = pg.ScatterPlotItem(
                size=5,
                pen=None,
                brush=pg.mkBrush(colour),
                hoverable=True,
                hoverSize=9,
                hoverPen=pg.mkPen("w"),
                name=name,
                tip=None,
            )
            sc.sigClicked.connect(self._point_clicked)
            p.addItem(sc)
            self.scatters.append(sc)
        self.legend.setText(
            "&nbsp;&nbsp; ".join(
                f"<span style='color:{theme.class_colour(k).name()}'>●</span>&nbsp;{name}"
                for k, name in enumerate(names)
            )
            if s.test_labels is not None
            else ""
        )
        self.legend.setVisible(s.test_labels is not None)
        self._update_points()

    def _update_points(self) -> None:
        s = self.session
        lat = s.test_latents
        if lat is None or not self.scatters:
            for sc in self.scatters:
                sc.setData([], [])
            self._label_axes()
            return
        xy = self._coords(lat)
        rows = np.arange(len(lat))
        if s.test_labels is None:
            groups = [rows]
        else:
            groups = [rows[s.test_labels == k] for k in range(len(self.scatters))]
        for sc, g in zip(self.scatters, groups):
            sc.setData(x=xy[g, 0], y=xy[g, 1], data=g)
        if self.auto_fit:
            self.fit_view()
        self._label_axes()
        if s.pca:  # the plane moved with the codes: so did the cursor's place on it
            self._sync_cursor()

    def _label_axes(self) -> None:
        s = self.session
        dx, dy = s.dims
        p = self.plot.getPlotItem()
        if s.pca:
            names = s.plane().names
            p.setLabel("bottom", names[0])
            p.setLabel("left", names[1])
        else:
            p.setLabel("bottom", f"z{dx}")
            p.setLabel("left", f"z{dy}" if dy != dx else "")

    def _coords(self, lat: np.ndarray) -> np.ndarray:
        """(N, 2) positions on the map of codes (N, D): their coordinates on the plane."""
        s = self.session
        dx, dy = s.dims
        if not s.pca:
            return np.stack([lat[:, dx], lat[:, dy] if dy != dx else np.zeros(len(lat))], 1)
        import torch

        return s.plane().project(torch.from_numpy(np.ascontiguousarray(lat))).numpy()

    def fit_view(self) -> None:
        """Show the bulk of the points (1st-99th percentile), and at least +-3."""
        lat = self.session.test_latents
        r = 3.0
        if lat is not None and len(lat):
            cols = self._coords(lat)
            cols = cols[np.isfinite(cols).all(1)]
            if len(cols):
                r = max(r, float(np.percentile(np.abs(cols), 99)) * 1.08)
        r = min(r, 40.0)
        self.plot.getPlotItem().setRange(xRange=(-r, r), yRange=(-r, r), padding=0.0)

    def _user_zoomed(self, *_args) -> None:
        self.auto_fit = False

    def point_count(self) -> int:
        return sum(len(sc.data) for sc in self.scatters)

    def _point_clicked(self, _scatter, points, _ev=None) -> None:
        if not len(points) or self.session.test_latents is None:
            return
        self.jump_to_point(int(points[0].data()))

    def jump_to_point(self, row: int) -> None:
        """Move z to the posterior mean of map point ``row`` (and its class, for a CVAE)."""
        s = self.session
        if s.conditional and s.test_labels is not None:
            s.set_class(int(s.test_labels[row]))
        s.set_z(s.test_latents[row])

    # -- cursor <-> z -------------------------------------------------------------------------
    def _cursor_moved(self) -> None:
        if self._syncing or self.session.model is None:
            return
        pos = self.cursor.pos()
        x = float(np.clip(pos.x(), -Z_RANGE, Z_RANGE))
        y = float(np.clip(pos.y(), -Z_RANGE, Z_RANGE))
        self.session.move_on_plane(x, y)

    def move_cursor(self, x: float, y: float) -> None:
        """Programmatic drag (tests, keyboard): same path as a mouse drag."""
        self.cursor.setPos(pg.Point(x, y))

    def _sync_cursor(self) -> None:
        s = self.session
        if s.model is None:
            return
        dx, dy = s.dims
        x, y = s.plane_xy()
        y = y if (dy != dx or s.pca) else 0.0
        self._syncing = True
        try:
            self.cursor.setPos(pg.Point(x, y))
        finally:
            self._syncing = False
        self._keep_in_view(x, y)

    def _keep_in_view(self, x: float, y: float) -> None:
        """A z moved off the map (a slider at 4, a picture encoded far out) takes the map
        with it: the view widens to show the cursor (it left the map past 3.5)."""
        if not (np.isfinite(x) and np.isfinite(y)):
            return
        (x0, x1), (y0, y1) = self.plot.getPlotItem().getViewBox().viewRange()
        m = 0.06 * max(x1 - x0, y1 - y0)
        if x0 + m <= x <= x1 - m and y0 + m <= y <= y1 - m:
            return
        self.plot.getPlotItem().setRange(
            xRange=(min(x0, x - 2 * m), max(x1, x + 2 * m)),
            yRange=(min(y0, y - 2 * m), max(y1, y + 2 * m)),
            padding=0.0,
        )

    def _dims_changed(self, *_args) -> None:
        if self.session.pca:
            self.auto_fit = True
        self._update_points()
        self._sync_cursor()

    def keyPressEvent(self, ev) -> None:  # arrow keys nudge the cursor
        step = 0.25 if ev.modifiers() & Qt.ShiftModifier else 0.05
        d = {
            Qt.Key_Left: (-step, 0),
            Qt.Key_Right: (step, 0),
            Qt.Key_Up: (0, step),
            Qt.Key_Down: (0, -step),
        }.get(ev.key())
        if d is None:
            super().keyPressEvent(ev)
            return
        pos = self.cursor.pos()
        self.move_cursor(pos.x() + d[0], pos.y() + d[1])
