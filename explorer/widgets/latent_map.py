"""The latent map: the encoded test set on a plane or a non-linear map, with a cursor.

It renders its owner, :class:`explorer.map_state.MapState`: the method picker (axes,
principal plane, UMAP, t-SNE, custom), a progress bar and Cancel while a map computes, and
"trained since: Recompute" on a non-linear map that the model has outgrown.

On a plane, dragging the cursor sets z to the plane's point. On a map that is not a plane
(UMAP, t-SNE), a point stands for its own code only: clicking or hovering a point moves z to
that code (hovering is a preview: when the mouse leaves the map without a click, z goes back
to where it was; a click or a drag keeps it); the cursor dragged between points places z at
the codes of the nearest points, weighted by inverse distance, and says it is approximate.
Hovering shows the point's image beside the mouse; with "images" on, the points drawn when
zoomed in are their images.

Shift-click adds a point to the session's selection (or takes it out), a Ctrl-drag lassoes
the points inside, Esc clears it. All points are one ScatterPlotItem; picking goes through a
grid index (:mod:`explorer.map_index`), never through per-point objects.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QElapsedTimer, QEvent, QPoint, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QFontMetrics, QImage, QPixmap
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QGraphicsItem,
    QHBoxLayout,
    QLabel,
    QMenu,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from explorer import theme
from explorer.map_index import GridIndex
from explorer.map_state import METHOD_LABELS, MapState
from explorer.state import Z_RANGE, Session
from explorer.widgets.common import fix_axis_sizes

PICK_PX = 6  # a point is under the mouse within this many pixels
SPRITE_PX = 28  # a point's image, drawn when zoomed in, is this many pixels wide
SPRITE_MAX = 300  # at most this many images are drawn at once
THUMB_PX = 84  # the hover thumbnail
IDW_NEIGHBOURS = 8  # codes averaged for a cursor between the points of a non-linear map
CURSOR_TIP = "Drag to move z; the decoded image follows"
LASSO_TIP = "Ctrl-drag: lasso points into the selection · Shift-click: add or remove one · Esc"


class MapViewBox(pg.ViewBox):
    """A ViewBox whose Ctrl-drag draws a lasso (a plain drag pans, as everywhere)."""

    def __init__(self, owner: LatentMap) -> None:
        super().__init__()
        self.owner = owner

    def mouseDragEvent(self, ev, axis=None) -> None:
        if ev.button() == Qt.LeftButton and ev.modifiers() & Qt.ControlModifier:
            ev.accept()
            p = self.mapSceneToView(ev.scenePos())
            if ev.isStart():
                self.owner.lasso_begin(p.x(), p.y())
            else:
                self.owner.lasso_extend(p.x(), p.y())
            if ev.isFinish():
                self.owner.lasso_end()
            return
        super().mouseDragEvent(ev, axis)


class LatentMap(QWidget):
    exportAsked = Signal(str)  # "codes" or "projector": the window asks where (exports.py)

    def __init__(
        self, session: Session, map_state: MapState, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.session = session
        self.state = map_state
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(3)
        lay.addLayout(self._build_tools())
        self.plot = pg.PlotWidget(viewBox=MapViewBox(self))
        self.plot.setMinimumSize(200, 200)
        p = self.plot.getPlotItem()
        p.setAspectLocked(True)
        fix_axis_sizes(p)
        p.showGrid(x=True, y=True, alpha=0.12)
        p.setMenuEnabled(False)
        p.setRange(xRange=(-3.2, 3.2), yRange=(-3.2, 3.2), padding=0.02)
        self.vb = p.getViewBox()
        self.vb.setLimits(xMin=-500, xMax=500, yMin=-500, yMax=500)
        self.auto_fit = True  # follow the data until the user zooms or pans
        self.vb.sigRangeChangedManually.connect(self._user_zoomed)
        self.vb.sigRangeChanged.connect(self._range_changed)
        # every point, one item: colours by class, no per-point objects, no built-in hover
        self.scatter = pg.ScatterPlotItem(size=5, pen=None, pxMode=True, hoverable=False)
        # drawn once per change of points or view: a hover (the cursor, the thumbnail moving
        # over it) repaints from the cached picture, not 70,000 points again
        self.scatter.setCacheMode(QGraphicsItem.DeviceCoordinateCache)
        p.addItem(self.scatter)
        self.chosen = pg.ScatterPlotItem(
            size=9, pen=pg.mkPen("#ffffff", width=1.5), brush=pg.mkBrush(0, 0, 0, 0)
        )
        self.chosen.setZValue(5)
        p.addItem(self.chosen)
        self.lasso = pg.PlotCurveItem(pen=pg.mkPen(theme.ACCENT, width=1.5))
        self.lasso.setZValue(20)
        p.addItem(self.lasso)
        self._lasso: list[tuple[float, float]] = []
        self.sprites: list[pg.ImageItem] = []
        self._sprite_timer = QTimer(self)
        self._sprite_timer.setSingleShot(True)
        self._sprite_timer.setInterval(60)
        self._sprite_timer.timeout.connect(self.update_sprites)
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
        self.cursor.setToolTip(CURSOR_TIP)
        p.addItem(self.cursor)
        lay.addWidget(self.plot, 1)
        self.thumb = QLabel(self.plot)  # the hovered point's image, beside the mouse
        self.thumb.setStyleSheet("border: 1px solid #888; background: black;")
        self.thumb.setAttribute(Qt.WA_TransparentForMouseEvents)
        self.thumb.hide()
        # while a map computes with nothing on screen yet (a restored view's UMAP): its
        # progress, large, in the middle of the empty plot
        self.waiting = QLabel(self.plot)
        self.waiting.setAlignment(Qt.AlignCenter)
        self.waiting.setWordWrap(True)
        self.waiting.setAttribute(Qt.WA_TransparentForMouseEvents)
        f = self.waiting.font()
        f.setPointSizeF(f.pointSizeF() * 1.4)
        self.waiting.setFont(f)
        self.waiting.hide()
        self.note = QLabel("")  # approximate z, the manifold's plane
        self.note.setObjectName("muted")
        self.note.setWordWrap(True)
        lay.addWidget(self.note)
        self.legend = QLabel()
        self.legend.setWordWrap(True)
        self.legend.setTextFormat(Qt.RichText)
        self.legend.setToolTip("Colours of the classes in the latent map")
        lay.addWidget(self.legend)
        self.setToolTip(
            "Test images encoded to their posterior means, coloured by class. Drag the cross "
            "to move z; click a point to jump to that image's code. " + LASSO_TIP
        )
        self.index: GridIndex | None = None
        self.hovered = -1  # the point under the mouse
        self.approximate = False  # z was placed between the points of a non-linear map
        self._z_point = -1  # the point whose code z is (jumped to)
        self._syncing = False
        self._colours: list = []
        # before a hover moved z: (z, class, [(owner, its bookmark)]); None when not previewing
        self._preview: tuple | None = None
        self._kept: list = []  # owners whose state a hover preview must leave as it was
        self.cursor.sigPositionChanged.connect(self._cursor_moved)
        self.plot.scene().sigMouseMoved.connect(self._mouse_moved)
        self.plot.scene().sigMouseClicked.connect(self._mouse_clicked)
        session.zChanged.connect(self._sync_cursor)
        session.dataChanged.connect(self._data_changed)
        session.historyReset.connect(self._new_model)
        session.selection.changed.connect(self._selection_changed)
        map_state.pointsChanged.connect(self._points_changed)
        map_state.methodChanged.connect(self._method_changed)
        map_state.progressed.connect(self._progressed)
        map_state.busyChanged.connect(self._busy_changed)
        map_state.wholeChanged.connect(self._whole_changed)
        map_state.staleChanged.connect(self._notice)
        map_state.problemChanged.connect(self._notice)
        map_state.viewRangeAsked.connect(self.show_range)
        session.structureChanged.connect(self._method_changed)
        session.dimsChanged.connect(self._dims_changed)
        self._serial = session.model_serial
        self._data_changed()
        self._busy_changed(map_state.busy)

    def _build_tools(self) -> QVBoxLayout:
        tools = QVBoxLayout()
        tools.setSpacing(2)
        row = QHBoxLayout()
        self.method = QComboBox()
        for m, label in METHOD_LABELS.items():
            self.method.addItem(label, m)
        self.method.setToolTip(
            "How the codes are mapped: two latent axes or the principal plane (planes: the "
            "cursor lifts back to z exactly), UMAP or t-SNE (non-linear: every test image, "
            "computed in the background), or two directions (Custom)"
        )
        self.method.currentIndexChanged.connect(self._method_picked)
        self.whole = QCheckBox("all test images")
        self.whole.setToolTip(
            "Map every test image, not a sample of 2,000 (a non-linear map always does)"
        )
        self.whole.toggled.connect(self.state.set_whole)
        self.sprites_box = QCheckBox("images")
        self.sprites_box.setToolTip(
            f"Draw each point as its image when zoomed in (at most {SPRITE_MAX} at once)"
        )
        self.sprites_box.toggled.connect(lambda _on: self.update_sprites())
        # the selection's count and the images' "zoom in" note: the header's free space,
        # never its minimum width (the map and the window keep their widths as it changes)
        self.count = QLabel("")
        self.count.setObjectName("muted")
        self.count.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
        self.count.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.count.setToolTip(LASSO_TIP)
        self._count_parts = {"selection": "", "images": ""}
        # two rows, so that the map's header never sets the window's minimum width: the
        # method and the notes, then what the map draws and its export
        for w in (QLabel("Map:"), self.method):
            row.addWidget(w)
        row.addWidget(self.count, 1)
        tools.addLayout(row)
        row = QHBoxLayout()
        row.addWidget(self.whole)
        row.addWidget(self.sprites_box)
        row.addStretch(1)
        self.export = QToolButton()
        self.export.setText("Export")
        self.export.setPopupMode(QToolButton.InstantPopup)
        menu = QMenu(self.export)
        codes = menu.addAction("Codes, labels and places (.npz, .csv)…")
        codes.triggered.connect(lambda: self.exportAsked.emit("codes"))
        proj = menu.addAction("TensorBoard projector folder…")
        proj.triggered.connect(lambda: self.exportAsked.emit("projector"))
        self.export.setMenu(menu)
        row.addWidget(self.export)
        tools.addLayout(row)
        busy = QHBoxLayout()
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(True)
        self._elapsed = QElapsedTimer()  # since the map began computing
        self._tick = QTimer(self)  # while busy: the seconds go on even when no progress comes
        self._tick.setInterval(1000)
        self._tick.timeout.connect(self._show_progress)
        self.cancel = QPushButton("Cancel")
        self.cancel.setToolTip("Stop computing this map")
        self.cancel.clicked.connect(self.state.cancel)
        busy.addWidget(self.progress, 1)
        busy.addWidget(self.cancel)
        self.busy_row = QWidget()
        self.busy_row.setLayout(busy)
        busy.setContentsMargins(0, 0, 0, 0)
        tools.addWidget(self.busy_row)
        notice = QHBoxLayout()
        notice.setContentsMargins(0, 0, 0, 0)
        self.notice = QLabel("")
        self.notice.setWordWrap(True)
        self.recompute = QPushButton("Recompute")
        self.recompute.setToolTip("Compute the map again with the model's current weights")
        self.recompute.clicked.connect(self.state.recompute)
        notice.addWidget(self.notice, 1)
        notice.addWidget(self.recompute)
        self.notice_row = QWidget()
        self.notice_row.setLayout(notice)
        tools.addWidget(self.notice_row)
        return tools

    # -- the owner's state --------------------------------------------------------------------
    def _method_picked(self, _i: int) -> None:
        m = self.method.currentData()
        if m is not None and m != self.state.method:
            self.state.set_method(m)
            if self.state.method != m:  # refused (it said why): show what is on
                self._method_changed()

    def _method_changed(self, *_args) -> None:
        st = self.state
        self.auto_fit = True  # another map: fit its points
        self.method.blockSignals(True)
        self.method.setCurrentIndex(self.method.findData(st.method))
        self.method.model().item(self.method.findData("pca")).setEnabled(self.session.pca_available)
        self.method.blockSignals(False)
        self.whole.blockSignals(True)
        d = self.session.data
        self.whole.setText(f"all {len(d.test_x):,} test images" if d else "all test images")
        self.whole.setChecked(st.whole or st.nonlinear)
        self.whole.setEnabled(not st.nonlinear)
        self.whole.blockSignals(False)
        self._notice()

    def _whole_changed(self, *_args) -> None:
        """The box shows the owner's choice, whoever made it (a restored view too)."""
        self.whole.blockSignals(True)
        self.whole.setChecked(self.state.whole or self.state.nonlinear)
        self.whole.blockSignals(False)

    def _dims_changed(self, *_args) -> None:
        if self.session.pca:  # a new plane: fit its points
            self.auto_fit = True
            self.fit_view()
        self._note()  # the manifold's plane, beside a map that is not it

    def _busy_changed(self, busy: bool) -> None:
        self.busy_row.setVisible(bool(busy))
        if busy:
            self._elapsed.start()
            self._tick.start()
        else:
            self._tick.stop()
        self._progressed(self.state.fraction, self.state.text)

    def _progressed(self, fraction: float, text: str) -> None:
        self.progress.setValue(int(round(1000 * max(0.0, min(1.0, fraction)))))
        self._show_progress()

    def _show_progress(self) -> None:
        """ "UMAP: laying out 50% · 42 s": the method once, the seconds since it began (each
        second), cut in the middle when the bar is too narrow."""
        title, text = self.state.title(), self.state.text
        if text.startswith(f"{title}: "):  # the engine's stages name their method
            text = text[len(title) + 2 :]
        pct = self.progress.value() // 10
        line = f"{title}: {text} {pct}%" if text else f"{title} {pct}%"
        if self._elapsed.isValid() and self.state.busy:
            line += f" · {self._elapsed.elapsed() // 1000} s"
        room = max(40, self.progress.width() - 16)
        line = QFontMetrics(self.progress.font()).elidedText(line, Qt.ElideMiddle, room)
        self.progress.setFormat(line)  # its own percent: no %p placeholder in it
        self.progress.setToolTip(line)
        self._show_waiting()

    def _show_waiting(self) -> None:
        """The progress in the middle of the plot while it has no points to show."""
        on = self.state.busy and self.point_count() == 0
        if on:
            self.waiting.setText(f"Computing the {self.state.title()} map…\n{self.progress.text()}")
            self.waiting.setGeometry(self.plot.rect().adjusted(20, 20, -20, -20))
            self.waiting.raise_()
        self.waiting.setVisible(on)

    def _notice(self, *_args) -> None:
        st = self.state
        if st.problem:
            text, recompute = st.problem, st.computed
        elif st.stale:
            text, recompute = f"The model has trained since this {st.title()} map.", True
        else:
            text, recompute = "", False
        self.notice.setText(text)
        self.recompute.setVisible(recompute)
        self.notice_row.setVisible(bool(text))
        self._note()

    def _note(self) -> None:
        parts = []
        if self.approximate:
            parts.append("z is approximate: between the nearest points (their codes, weighted)")
        note = self.state.manifold_note()
        if note:
            parts.append(note)
        self.note.setText(" · ".join(parts))
        self.note.setVisible(bool(parts))

    # -- points -------------------------------------------------------------------------------
    def _data_changed(self) -> None:
        s = self.session
        names = s.class_names if s.data is not None and s.data.test_y is not None else []
        self._colours = []
        for k in range(max(1, len(names))):
            c = theme.class_colour(k) if names else pg.mkColor(theme.ACCENT)
            c.setAlpha(170)
            self._colours.append(pg.mkBrush(c))
        self.legend.setText(
            "&nbsp;&nbsp; ".join(
                f"<span style='color:{theme.class_colour(k).name()}'>●</span>&nbsp;{name}"
                for k, name in enumerate(names)
            )
        )
        self.legend.setVisible(bool(names))
        self._method_changed()  # the count of test images beside "all"

    def _new_model(self) -> None:
        """Another model (opened, or a new run): its codes lie elsewhere; fit them again,
        whatever the last one was panned or zoomed to."""
        if self.session.model_serial != self._serial:
            self._serial = self.session.model_serial
            self.auto_fit = True

    def _points_changed(self) -> None:
        problem = self.state.export_problem()
        self.export.setEnabled(problem is None)
        self.export.setToolTip(
            problem
            or "Save the map on screen: its codes, labels and places, or a folder "
            "for TensorBoard's projector (with the images)"
        )
        pts = self.state.points
        self.hovered = -1
        self.thumb.hide()
        if pts is None or len(pts) == 0:
            self.scatter.setData([], [])
            self.index = None
            self._show_waiting()
            self._selection_changed()
            self._label_axes()
            self.update_sprites()
            return
        xy = pts.xy
        brushes = np.empty(len(self._colours), dtype=object)
        brushes[:] = self._colours
        if pts.labels is not None and len(self._colours) > 1:
            b = brushes[np.clip(pts.labels, 0, len(brushes) - 1)]
        else:
            b = brushes[np.zeros(len(pts), dtype=np.int64)]
        self.scatter.setData(x=xy[:, 0], y=xy[:, 1], brush=b)
        self._show_waiting()
        self.index = GridIndex(xy)
        if self.state.pending_range is not None:  # a bookmark's, for this computed map
            vr, self.state.pending_range = self.state.pending_range, None
            self.show_range(vr)
        elif self.auto_fit:
            self.fit_view()
        self._label_axes()
        self._selection_changed()
        self._sync_cursor()
        self.update_sprites()

    @property
    def scatters(self) -> list[pg.ScatterPlotItem]:
        return [self.scatter]

    def point_count(self) -> int:
        return len(self.scatter.data)

    def _label_axes(self) -> None:
        p = self.plot.getPlotItem()
        pts = self.state.points
        if pts is None:
            p.setLabel("bottom", "")
            p.setLabel("left", "")
            return
        names = pts.projection.names
        s = self.session
        one = self.state.method == "axes" and s.dims[0] == s.dims[1]
        p.setLabel("bottom", names[0])
        p.setLabel("left", "" if one else names[1])

    def fit_view(self) -> None:
        """Show the bulk of the points (1st-99th percentile), and at least +-3 on a plane."""
        pts = self.state.points
        if pts is None or len(pts) == 0:
            return
        xy = pts.xy[np.isfinite(pts.xy).all(1)]
        if not len(xy):
            return
        if pts.projection.invertible:
            r = max(3.0, float(np.percentile(np.abs(xy), 99)) * 1.08)
            r = min(r, 40.0)
            self.vb.setRange(xRange=(-r, r), yRange=(-r, r), padding=0.0)
        else:  # a non-linear map has its own scale and centre
            lo, hi = np.percentile(xy, 0.5, axis=0), np.percentile(xy, 99.5, axis=0)
            m = 0.06 * float(max(hi - lo))
            self.vb.setRange(
                xRange=(lo[0] - m, hi[0] + m), yRange=(lo[1] - m, hi[1] + m), padding=0.0
            )

    def show_range(self, vr) -> None:
        """Show ((x0, x1), (y0, y1)) of the map, and keep it (a restored bookmark's view)."""
        (x0, x1), (y0, y1) = vr
        self.auto_fit = False
        self.vb.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0.0)

    def _user_zoomed(self, *_args) -> None:
        self.auto_fit = False

    def _range_changed(self, *_args) -> None:
        self.state.view_range = None if self.auto_fit else tuple(map(tuple, self.vb.viewRange()))
        if self.sprites_box.isChecked():
            self._sprite_timer.start()

    # -- picking ------------------------------------------------------------------------------
    def pick(self, x: float, y: float) -> int:
        """The map point under view position (x, y), or -1."""
        if self.index is None:
            return -1
        pw, ph = self.vb.viewPixelSize()
        return self.index.nearest(x, y, PICK_PX * max(pw, ph))

    def _mouse_moved(self, scene_pos) -> None:
        if self._lasso or QApplication.mouseButtons() != Qt.NoButton:
            return  # a lasso, a pan or the cursor being dragged: not a hover
        if self.index is None or not self.vb.sceneBoundingRect().contains(scene_pos):
            self.hover(-1)
            self.end_preview()  # off the map (onto its axes): z as before the hover
            return
        p = self.vb.mapSceneToView(scene_pos)
        self.hover(self.pick(p.x(), p.y()), self.plot.mapFromScene(scene_pos))

    def hover(self, i: int, at: QPoint | None = None) -> None:
        """Point ``i`` is under the mouse (-1: none): its image beside the mouse, and on a
        map that is not a plane, z moves to its code."""
        if i == self.hovered:
            if i >= 0 and at is not None:
                self._place_thumb(at)
            return
        self.hovered = i
        if i < 0:
            self.thumb.hide()
            self.cursor.setToolTip(CURSOR_TIP)
            return
        # no tooltip over the thumbnail (the cursor sits on the hovered point of a UMAP)
        self.cursor.setToolTip("")
        QToolTip.hideText()
        pts = self.state.points
        self.thumb.setPixmap(self._pixmap(int(pts.rows[i]), THUMB_PX))
        self.thumb.adjustSize()
        self._place_thumb(at)
        self.thumb.show()
        self.thumb.raise_()
        if not pts.projection.invertible and self.session.model is not None:
            self._begin_preview()
            self.jump_to_point(i)

    def keep_during_preview(self, owner) -> None:
        """``owner`` (with ``bookmark()`` / ``restore(d)``, like the directions and their
        amounts) gets its state back when a hover preview ends without a click."""
        self._kept.append(owner)

    def _begin_preview(self) -> None:
        if self._preview is None:
            s = self.session
            self._preview = (s.z.clone(), s.cls, [(o, o.bookmark()) for o in self._kept])

    def end_preview(self) -> None:
        """The mouse left the map without a click: z (and the kept owners) as before."""
        if self._preview is None:
            return
        (z, cls, kept), self._preview = self._preview, None
        if self.session.model is None or z.numel() != self.session.z.numel():
            return  # another model meanwhile: nothing to go back to
        self.session.set_class(cls)
        self.session.set_z(z)
        for owner, d in kept:
            owner.restore(d)

    def _place_thumb(self, at: QPoint | None) -> None:
        if at is None:
            return
        x, y = at.x() + 14, at.y() + 14
        w, h = self.thumb.width(), self.thumb.height()
        if x + w > self.plot.width():
            x = at.x() - 14 - w
        if y + h > self.plot.height():
            y = at.y() - 14 - h
        self.thumb.move(max(0, x), max(0, y))

    def _image(self, row: int) -> np.ndarray:
        """Test image ``row`` as an (H, W) or (H, W, 3) uint8 array."""
        x = self.session.data.test_x[row].numpy()  # (C, H, W)
        return x[0] if x.shape[0] == 1 else np.ascontiguousarray(x.transpose(1, 2, 0))

    def _pixmap(self, row: int, px: int) -> QPixmap:
        a = np.ascontiguousarray(self._image(row))
        h, w = a.shape[:2]
        if a.ndim == 2:
            img = QImage(a.data, w, h, w, QImage.Format_Grayscale8)
        else:
            img = QImage(a.data, w, h, 3 * w, QImage.Format_RGB888)
        return QPixmap.fromImage(img.copy()).scaled(
            px, px, Qt.KeepAspectRatio, Qt.FastTransformation
        )

    def _mouse_clicked(self, ev) -> None:
        if ev.button() != Qt.LeftButton or ev.double():
            return
        if not self.vb.sceneBoundingRect().contains(ev.scenePos()):
            return
        p = self.vb.mapSceneToView(ev.scenePos())
        i = self.pick(p.x(), p.y())
        if i < 0:
            return
        ev.accept()
        if ev.modifiers() & Qt.ShiftModifier:
            self.toggle_point(i)
        elif self.session.model is not None:
            self._preview = None  # a click keeps the point's code
            self.jump_to_point(i)

    def jump_to_point(self, i: int) -> None:
        """Move z to the code of map point ``i`` (and its class, for a CVAE)."""
        s, pts = self.session, self.state.points
        if pts is None or not 0 <= i < len(pts):
            return
        if s.conditional and pts.labels is not None:
            s.set_class(int(pts.labels[i]))
        self._z_point = i
        self.approximate = False
        self._note()
        s.set_z(pts.codes[i])
        self._sync_cursor()

    # -- selection ----------------------------------------------------------------------------
    def toggle_point(self, i: int) -> None:
        self.session.selection.toggle(int(self.state.points.rows[i]))

    def lasso_begin(self, x: float, y: float) -> None:
        self._lasso = [(x, y)]
        self.lasso.setData([x], [y])

    def lasso_extend(self, x: float, y: float) -> None:
        self._lasso.append((x, y))
        a = np.array(self._lasso + self._lasso[:1])
        self.lasso.setData(a[:, 0], a[:, 1])

    def lasso_end(self) -> None:
        poly, self._lasso = np.array(self._lasso), []
        self.lasso.setData([], [])
        self.select_polygon(poly)

    def select_polygon(self, poly: np.ndarray) -> None:
        """Add the points inside ``poly`` (M, 2), in map coordinates, to the selection."""
        if self.index is None or len(poly) < 3:
            return
        inside = self.index.in_polygon(poly)
        if len(inside):
            self.session.selection.add(self.state.points.rows[inside])

    def _selection_changed(self) -> None:
        sel = self.session.selection
        pts = self.state.points
        n = len(sel)
        if pts is None or n == 0:
            self.chosen.setData([], [])
        else:
            mask = np.isin(pts.rows, sel.rows)
            self.chosen.setData(x=pts.xy[mask, 0], y=pts.xy[mask, 1])
        self._say_count("selection", f"{n:,} selected · Esc clears" if n else "")

    def _say_count(self, part: str, text: str) -> None:
        self._count_parts[part] = text
        shown = " · ".join(
            t for t in (self._count_parts["images"], self._count_parts["selection"]) if t
        )
        self.count.setText(shown)
        self.count.setToolTip(f"{shown}\n{LASSO_TIP}" if shown else LASSO_TIP)

    # -- sprites ------------------------------------------------------------------------------
    def update_sprites(self) -> None:
        """With "images" on: each point in view drawn as its image, if few enough are."""
        pts = self.state.points
        show = []
        if self.sprites_box.isChecked() and pts is not None and self.index is not None:
            (x0, x1), (y0, y1) = self.vb.viewRange()
            show = self.index.in_box(x0, y0, x1, y1)
            if len(show) > SPRITE_MAX:
                self._say_count("images", f"images: zoom in ({len(show):,} in view)")
                show = []
            else:
                self._say_count("images", "")
        else:
            self._say_count("images", "")
        p = self.plot.getPlotItem()
        while len(self.sprites) < len(show):
            item = pg.ImageItem(axisOrder="row-major")
            item.setZValue(3)
            p.addItem(item)
            self.sprites.append(item)
        pw, ph = self.vb.viewPixelSize()
        w, h = SPRITE_PX * pw, SPRITE_PX * ph
        for item, i in zip(self.sprites, show):
            x, y = pts.xy[i]
            item.setImage(self._image(int(pts.rows[i]))[::-1], autoLevels=False, levels=(0, 255))
            item.setRect(QRectF(float(x) - w / 2, float(y) - h / 2, w, h))
            item.show()
        for item in self.sprites[len(show) :]:
            item.hide()

    def sprite_count(self) -> int:
        return sum(1 for s in self.sprites if s.isVisible())

    # -- cursor <-> z -------------------------------------------------------------------------
    def _cursor_moved(self) -> None:
        if self._syncing or self.session.model is None:
            return
        self._preview = None  # the cursor dragged (or moved by the keys): z is put there
        pos = self.cursor.pos()
        pts = self.state.points
        if pts is not None and not pts.projection.invertible:
            self._place_between(pos.x(), pos.y())
            return
        x = float(np.clip(pos.x(), -Z_RANGE, Z_RANGE))
        y = float(np.clip(pos.y(), -Z_RANGE, Z_RANGE))
        if pts is not None and self._own_plane(pts):
            import torch

            self.session.set_z(pts.projection.plane.lift(torch.tensor([[x, y]]))[0])
            return
        self.session.move_on_plane(x, y)

    def _own_plane(self, pts) -> bool:
        """The map is a plane of its own, not the session's (the manifold's): two custom
        directions, or the principal plane of the whole test set (not of the sample)."""
        m = pts.projection.method
        return m == "custom" or (m == "pca" and len(pts.rows) != len(self.session.test_index))

    def _place_between(self, x: float, y: float) -> None:
        """On a map that is not a plane: z at the point under the cursor, or between the
        nearest points (approximate)."""
        i = self.pick(x, y)
        if i >= 0:
            self._z_point, self.approximate = i, False
            z = self.state.points.codes[i]
        else:
            self._z_point, self.approximate = -1, True
            z = self.state.approximate_code(x, y, IDW_NEIGHBOURS)
        self._note()
        self._syncing = True  # the cursor stays where it was put
        try:
            self.session.set_z(z)
        finally:
            self._syncing = False

    def move_cursor(self, x: float, y: float) -> None:
        """Programmatic drag (tests, keyboard): same path as a mouse drag."""
        self.cursor.setPos(pg.Point(x, y))

    def _sync_cursor(self) -> None:
        s, pts = self.session, self.state.points
        if s.model is None or self._syncing:
            return
        if pts is None:
            return
        if pts.projection.invertible:
            self.approximate = False
            if self._own_plane(pts):
                x, y = pts.projection.plane.project(s.z.reshape(1, -1))[0].tolist()
            else:
                x, y = s.plane_xy()
                dx, dy = s.dims
                y = y if (dy != dx or s.pca) else 0.0
        else:
            i = self._z_point
            if not (0 <= i < len(pts) and np.allclose(pts.codes[i], s.z.numpy(), atol=1e-6)):
                # z came from elsewhere: shown at the point whose code is nearest it
                i = self.state.nearest_point(s.z.numpy())
                self._z_point = -1
                self.approximate = False
            x, y = (float(v) for v in pts.xy[i])
        self._syncing = True
        try:
            self.cursor.setPos(pg.Point(x, y))
        finally:
            self._syncing = False
        if pts.projection.invertible:
            self._keep_in_view(x, y)
        self._note()

    def _keep_in_view(self, x: float, y: float) -> None:
        """A z moved off the map (a slider at 4, a picture encoded far out) takes the map
        with it: the view widens to show the cursor (it left the map past 3.5)."""
        if not (np.isfinite(x) and np.isfinite(y)):
            return
        (x0, x1), (y0, y1) = self.vb.viewRange()
        m = 0.06 * max(x1 - x0, y1 - y0)
        if x0 + m <= x <= x1 - m and y0 + m <= y <= y1 - m:
            return
        self.vb.setRange(
            xRange=(min(x0, x - 2 * m), max(x1, x + 2 * m)),
            yRange=(min(y0, y - 2 * m), max(y1, y + 2 * m)),
            padding=0.0,
        )

    def escape(self) -> bool:
        """The window's Esc: clears the selection when the map (or its plot) has the keyboard
        focus and something is selected; False otherwise (the window hides its message)."""
        f = QApplication.focusWidget()
        if f is None or not (f is self or self.isAncestorOf(f)) or not len(self.session.selection):
            return False
        self.session.selection.clear()
        return True

    def event(self, ev) -> bool:
        if ev.type() == QEvent.ToolTip and self.thumb.isVisible():
            QToolTip.hideText()  # the hover thumbnail is the help: nothing over it
            return True
        return super().event(ev)

    def leaveEvent(self, ev) -> None:  # the mouse left the map: no point is under it
        self.hover(-1)
        self.end_preview()
        super().leaveEvent(ev)

    def keyPressEvent(self, ev) -> None:  # arrow keys nudge the cursor; Esc clears
        if ev.key() == Qt.Key_Escape and len(self.session.selection):
            self.session.selection.clear()
            return
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
