"""The Draw tab: a canvas at the model's input resolution. Every stroke is encoded at once:
z moves to the drawing's posterior mean (the map's cursor and the sliders follow) and its
reconstruction appears beside it; for a conditional model, the row below draws that z, the
drawing's style, as every class.

A picture dropped on the window or pasted lands on the canvas as the model sees it (fitted,
made grey or colour, inverted) and is encoded the same way, so the tab always shows the
input whose reconstruction it shows; strokes then draw on it."""

from __future__ import annotations

import time

import numpy as np
import torch
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QPushButton, QVBoxLayout, QWidget

from explorer import theme
from explorer.state import Session
from trainer.data.imaging import prepare_image

from .common import ImagePane, hint, titled
from .inputs import RangeSpinBox
from .views import ClassRowView


class Canvas(QWidget):
    """The drawing, ``array`` (H, W) in [0, 1] (or (H, W, 3) for a colour model), shown
    magnified; the mouse paints on it."""

    stroked = Signal()  # the drawing changed

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.array = np.zeros((28, 28), dtype=np.float32)
        self.ink = 1.0  # the value strokes leave (light on a dark ground, like MNIST)
        self.ground = 0.0
        self.width_px = 1.0  # pen radius, in the model's pixels (MNIST strokes: 2-3 px)
        self.eraser = False
        self.setMinimumSize(200, 200)
        self.setCursor(Qt.CrossCursor)
        self._last: QPointF | None = None

    def reset(self, shape: tuple[int, ...], ink: float, ground: float) -> None:
        """An empty canvas: ``shape`` (H, W) or (H, W, 3)."""
        self.array = np.full(shape, ground, dtype=np.float32)
        self.ink, self.ground = ink, ground
        self.update()

    def load(self, image_u8: np.ndarray) -> None:
        """Show a picture, (C, H, W) uint8 as the model takes it, to draw on."""
        a = image_u8.astype(np.float32) / 255.0
        self.array = a[0] if a.shape[0] == 1 else np.ascontiguousarray(a.transpose(1, 2, 0))
        self.update()

    def as_input(self, channels: int) -> torch.Tensor:
        """The canvas as one model input, (1, C, H, W) uint8."""
        a = self.array if self.array.ndim == 3 else np.repeat(self.array[..., None], channels, 2)
        u8 = np.clip(np.rint(a * 255), 0, 255).astype(np.uint8).transpose(2, 0, 1)
        return torch.from_numpy(np.ascontiguousarray(u8))[None]

    def clear(self) -> None:
        self.array[:] = self.ground
        self.update()
        self.stroked.emit()

    @property
    def blank(self) -> bool:
        """Nothing is drawn."""
        return bool(np.all(self.array == self.ground))

    def _to_pixels(self, pos: QPointF) -> tuple[float, float]:
        h, w = self.array.shape[:2]
        side = min(self.width(), self.height())
        x0, y0 = (self.width() - side) / 2, (self.height() - side) / 2
        return (pos.x() - x0) / side * w, (pos.y() - y0) / side * h

    def stroke(self, x0: float, y0: float, x1: float, y1: float) -> None:
        """Paint a line from (x0, y0) to (x1, y1), in the model's pixels (soft round pen)."""
        h, w = self.array.shape[:2]
        r = self.width_px
        yy, xx = np.mgrid[0:h, 0:w] + 0.5
        dx, dy = x1 - x0, y1 - y0
        t = np.clip(((xx - x0) * dx + (yy - y0) * dy) / max(dx * dx + dy * dy, 1e-9), 0, 1)
        d = np.hypot(xx - (x0 + t * dx), yy - (y0 + t * dy))
        cover = np.clip(r - d + 0.5, 0, 1)  # 1 inside the pen, a one-pixel soft edge
        value = self.ground if self.eraser else self.ink
        if self.array.ndim == 3:
            cover = cover[..., None]
        self.array = (self.array * (1 - cover) + value * cover).astype(np.float32)
        self.update()
        self.stroked.emit()

    def mousePressEvent(self, ev) -> None:
        if ev.button() == Qt.LeftButton:
            x, y = self._to_pixels(ev.position())
            self._last = QPointF(x, y)
            self.stroke(x, y, x, y)

    def mouseMoveEvent(self, ev) -> None:
        if self._last is not None:
            x, y = self._to_pixels(ev.position())
            self.stroke(self._last.x(), self._last.y(), x, y)
            self._last = QPointF(x, y)

    def mouseReleaseEvent(self, ev) -> None:
        self._last = None

    def paintEvent(self, ev) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(theme.PANEL))
        h, w = self.array.shape[:2]
        px = np.ascontiguousarray(np.clip(self.array * 255, 0, 255).astype(np.uint8))
        if px.ndim == 2:
            img = QImage(px.data, w, h, w, QImage.Format_Grayscale8)
        else:
            img = QImage(px.data, w, h, 3 * w, QImage.Format_RGB888)
        side = min(self.width(), self.height())
        x0, y0 = (self.width() - side) // 2, (self.height() - side) // 2
        p.drawImage(self.rect().adjusted(x0, y0, -x0, -y0), img)
        p.end()


class DrawingPad(QWidget):
    """The canvas, its tools and the reconstruction of what is drawn."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.canvas = Canvas()
        self.recon = ImagePane(min_size=200)
        self.width_box = RangeSpinBox(1, 6, 1, "Pen radius in the model's pixels", "Pen")
        self.width_box.setPrefix("pen ")
        self.width_box.valueChanged.connect(lambda v: setattr(self.canvas, "width_px", float(v)))
        self.eraser = QCheckBox("Eraser")
        self.eraser.toggled.connect(lambda on: setattr(self.canvas, "eraser", on))
        self.clear_btn = QPushButton("Clear")
        self.clear_btn.clicked.connect(self.canvas.clear)
        self.clear_btn.clicked.connect(lambda: self._hold_picture(False))
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        tools = QHBoxLayout()
        for w in (self.width_box, self.eraser, self.clear_btn):
            tools.addWidget(w)
        tools.addStretch(1)
        lay.addLayout(tools)
        row = QHBoxLayout()
        self.canvas_box = titled(self.DRAWN, self.canvas)
        row.addWidget(self.canvas_box, 1)
        row.addWidget(titled("Its reconstruction", self.recon), 1)
        lay.addLayout(row, 2)
        # a conditional model: the drawing's z (its style) under every class
        self.classes = ClassRowView(session)
        self.classes_box = titled("Its style as every class", self.classes)
        lay.addWidget(self.classes_box, 1)
        self.classes_box.setVisible(False)  # until a conditional model is here
        self.note = hint("")
        lay.addWidget(self.note)
        self.last_ms = 0.0
        self.encodes = 0
        self.picture = False  # the canvas holds a dropped or pasted picture
        self.canvas.stroked.connect(self.encode)
        session.structureChanged.connect(self.reset)
        session.dataChanged.connect(self.reset)
        session.weightsChanged.connect(self._show_recon)
        session.zChanged.connect(self._show_recon)
        session.classChanged.connect(self._class_changed)
        self.reset()

    DRAWN = "Your drawing"
    PICTURE = "Your picture, as the model sees it"

    def reset(self) -> None:
        """A canvas of the model's size, on the ground its data has (dark for MNIST)."""
        s = self.session
        if s.model is None:
            return
        c, h, w = s.model.config.image_shape
        self.classes_box.setVisible(s.conditional)
        dark = s.dark_ground
        self.canvas.reset(
            (h, w) if c == 1 else (h, w, c), 1.0 if dark else 0.0, 0.0 if dark else 1.0
        )
        self._hold_picture(False)
        self.note.setText(
            f"Draw with the mouse on the model's {w} x {h} pixels. Each stroke is encoded: "
            "the cursor on the map and the sliders move to it."
        )

    def encode(self) -> None:
        """Encode the drawing now (a stroke has changed it). A blank canvas (after Clear)
        is no drawing: z stays where it is (a picture is encoded even when blank)."""
        s = self.session
        if s.model is None:
            return
        if self.canvas.blank and not self.picture:
            self.recon.clear_image()
            return
        t0 = time.perf_counter()
        x = self.canvas.as_input(s.model.config.image_shape[0])
        y = torch.tensor([s.cls]) if s.conditional else None
        s.set_z(s.encode(x, y)[0])
        self.last_ms = (time.perf_counter() - t0) * 1e3
        self.encodes += 1

    def show_picture(self, source) -> str:
        """A dropped or pasted picture (a path or image bytes) made like the model's data,
        put on the canvas and encoded; returns the sentence saying what was done to it.
        Raises ImageError for a file that is no picture (nothing changes then)."""
        s = self.session
        ground = s.data_spec.background if s.data_spec is not None else "white"  # transparency's
        img, done = prepare_image(source, tuple(s.model.config.image_shape), s.dark_ground, ground)
        self.canvas.load(img[0])
        self._hold_picture(True)
        self.encode()
        return done

    def _hold_picture(self, on: bool) -> None:
        """The canvas holds a dropped or pasted picture (``on``) or a drawing."""
        self.picture = on
        self.canvas_box.heading.setText(self.PICTURE if on else self.DRAWN)

    def _class_changed(self, _c: int) -> None:
        """A conditional model encodes the drawing under the class chosen: encode it again."""
        if self.session.conditional:
            self.encode()
        self._show_recon()

    def _show_recon(self) -> None:
        s = self.session
        if s.model is None or not self.isVisible():
            return
        if self.canvas.blank and not self.picture:
            self.recon.clear_image()
            return
        img = s.decode_current()  # (C, H, W)
        self.recon.set_array(img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0))

    def showEvent(self, ev) -> None:
        super().showEvent(ev)
        self._show_recon()
