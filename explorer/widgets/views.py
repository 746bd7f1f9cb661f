"""Views that decode with the session's model: manifold grid, samples, reconstructions,
interpolation, class row and the current-z preview.

Each view decodes in ONE batch and shows the result as ONE ImageItem. Views mark
themselves ``dirty`` when the session changes; the window's repaint timer calls
``refresh()``, and a view may hold a redraw back (``min_interval``) while training so that
a 30x30 grid is not re-decoded ten times a second.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from explorer import theme
from explorer.state import Session
from trainer.data.imaging import cell_centres, tile
from trainer.latent import cdf_cell, class_rows, lerp, slerp, traversal_values

from .common import CountingImageItem, ImagePane, fix_axis_sizes, hint

PAD = 2  # pixels between cells, on screen and in exported PNGs
EXPORT_MIN_SIDE = 600  # exported PNGs are magnified (by a whole number) to at least this
EXPORT_MAX_SCALE = 8


def export_scale(width: int, height: int) -> int:
    """The whole-number magnification for an exported grid of ``width`` x ``height`` pixels.

    The smallest factor that makes the longer side at least EXPORT_MIN_SIDE pixels (at most
    EXPORT_MAX_SCALE; 1 if the grid is already that big): a 5-image class row of 28-pixel
    images (152 x 32) is saved at 4x (608 x 128), a 30 x 30 manifold (902 x 902) at 1x.
    Whole numbers keep every pixel a sharp square.
    """
    longer = max(1, width, height)
    return int(max(1, min(EXPORT_MAX_SCALE, math.ceil(EXPORT_MIN_SIDE / longer))))


def _spin(lo: int, hi: int, value: int, tip: str) -> QSpinBox:
    s = QSpinBox()
    s.setRange(lo, hi)
    s.setValue(value)
    s.setToolTip(tip)
    return s


class DecodedView(QWidget):
    """Base: keeps the last decoded batch for export, redraws only when dirty."""

    title = "view"
    min_interval = 0.0  # seconds between redraws while training (0: every tick)

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.images: np.ndarray | None = None  # (N, C, H, W) last decoded batch
        self.ncol = 1
        self.dirty = True
        self.training = False
        self._last = 0.0
        self.last_ms = 0.0
        self.renders = 0
        session.weightsChanged.connect(self.mark)
        session.structureChanged.connect(self.mark)
        session.classChanged.connect(self.mark)
        session.dataChanged.connect(self.mark)

    def mark(self, *_args) -> None:
        self.dirty = True

    def refresh(self, force: bool = False) -> bool:
        """Re-decode and repaint if dirty (and not throttled); True if it redrew."""
        if not (self.dirty or force) or self.session.model is None:
            return False
        now = time.perf_counter()
        if not force and self.training and now - self._last < self.min_interval:
            return False
        self.dirty = False
        self._last = now
        try:
            self.render()
        except (ValueError, RuntimeError) as e:  # e.g. data and model shapes disagree
            self.show_problem(str(e))
            return False
        self.last_ms = (time.perf_counter() - now) * 1e3
        self.renders += 1
        return True

    def render(self) -> None:
        raise NotImplementedError

    def show_problem(self, text: str) -> None:
        pass

    def export_problem(self) -> str | None:
        """Why there is nothing to export now (None: an export can go ahead)."""
        return None if self.session.model is not None else f"There is no {self.title} yet."

    def export_png(self, path) -> None:
        if self.dirty or self.images is None:
            self.refresh(force=True)
        if self.images is None:
            raise ValueError(f"nothing to export from the {self.title} yet")
        from trainer.export import save_grid  # torchvision: imported on first export only

        n, _c, h, w = self.images.shape
        ncol = max(1, min(self.ncol, n))
        nrow = -(-n // ncol)
        scale = export_scale(ncol * (w + PAD) + PAD, nrow * (h + PAD) + PAD)
        save_grid(torch.from_numpy(self.images), path, nrow=ncol, padding=PAD, scale=scale)


class ImageGridView(DecodedView):
    """A DecodedView drawn in a plain ImagePane (no axes)."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(session, parent)
        self.pane = ImagePane()

    def display(self, images: np.ndarray, ncol: int) -> None:
        self.images, self.ncol = images, ncol
        self.pane.set_array(tile(images, ncol, PAD))


# -- manifold ---------------------------------------------------------------------------------
class ManifoldView(DecodedView):
    """Kingma & Welling Figure 4: an N x N inverse-CDF grid over two latent dimensions."""

    title = "manifold grid"
    min_interval = 0.3

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(session, parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.plot = pg.PlotWidget()
        self.plot.setMinimumSize(200, 200)
        p = self.plot.getPlotItem()
        p.invertY(True)
        p.setAspectLocked(True)
        fix_axis_sizes(p)
        p.setMouseEnabled(False, False)
        p.hideButtons()
        p.setMenuEnabled(False)
        for ax in ("left", "bottom"):
            # labels may run past the end of the axis: the outermost cells keep theirs
            p.getAxis(ax).setStyle(tickFont=theme.small_font(-1.5), hideOverlappingLabels=False)
        # Shown smaller than its pixels, the grid is box-averaged (autoDownsample) and then
        # scaled smoothly: nearest-neighbour scaling by a fraction made cells uneven widths.
        self.item = CountingImageItem(axisOrder="row-major", autoDownsample=True)
        self.plot.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        p.addItem(self.item)
        self.marker = pg.QtWidgets.QGraphicsRectItem()
        self.marker.setPen(pg.mkPen(theme.ACCENT, width=2))
        self.marker.setZValue(5)
        p.addItem(self.marker)
        lay.addWidget(self.plot)
        self.n = 20
        self.values = np.zeros(0)
        self._base_key: tuple | None = None
        self.plot.scene().sigMouseClicked.connect(self._clicked)
        self.setToolTip(
            "Decoded images on an evenly-spaced-in-probability grid over two latent "
            "dimensions (the others come from the current z). Click a cell to move z there."
        )
        session.zChanged.connect(self._z_changed)
        session.dimsChanged.connect(self.mark)
        session.testLatentsChanged.connect(self._latents_changed)

    def _latents_changed(self) -> None:
        if self.session.pca:  # the principal plane is the encoded test set's
            self.dirty = True

    def set_n(self, n: int) -> None:
        if not 2 <= n <= 30:
            raise ValueError(f"grid size must be 2 to 30, not {n}")
        if n != self.n:
            self.n = n
            self.dirty = True

    def _z_changed(self) -> None:
        # the grid only depends on the dimensions it does not sweep
        if self._key() != self._base_key:
            self.dirty = True
        self._place_marker()

    def _key(self) -> tuple:
        return self.session.plane_key()

    def render(self) -> None:
        s, n = self.session, self.n
        plane = s.plane()
        z = plane.grid(n)  # (n*n, D), display order
        images = s.decode(z)  # (n*n, C, H, W)
        self.images, self.ncol = images, n
        arr = tile(images, n, PAD)
        self.item.setImage(arr, autoLevels=False, levels=(0.0, 1.0))
        self.item.setRect(QRectF(0, 0, arr.shape[1], arr.shape[0]))
        self._base_key = self._key()
        self._names = plane.names
        self.values = traversal_values(n).numpy()  # plane coordinates, increasing, per column
        self._set_ticks(images.shape[-1], images.shape[-2], arr.shape)
        self._place_marker()

    def _set_ticks(self, w: int, h: int, shape) -> None:
        n, v = self.n, self.values
        # about 6-7 labels, placed symmetrically so that +z and -z read alike
        k = min(n, 6 if n % 2 == 0 else 7)
        keep = sorted({int(math.floor(x + 0.5)) for x in np.linspace(0, n - 1, k)})
        xs, ys = cell_centres(n, w, PAD), cell_centres(n, h, PAD)
        p = self.plot.getPlotItem()
        p.getAxis("bottom").setTicks([[(xs[i], f"{v[i]:.2f}") for i in keep]])
        p.getAxis("left").setTicks([[(ys[i], f"{v[n - 1 - i]:.2f}") for i in keep]])
        p.setLabel("bottom", self._names[0])
        p.setLabel("left", self._names[1])
        p.setRange(xRange=(0, shape[1]), yRange=(0, shape[0]), padding=0.01)

    def _place_marker(self) -> None:
        if self.images is None or self.session.model is None:
            self.marker.hide()
            return
        h, w = self.images.shape[-2:]
        x, y = self.session.plane_xy()
        col = cdf_cell(x, self.n)
        row = self.n - 1 - cdf_cell(y, self.n)
        self.marker.setRect(
            QRectF(col * (w + PAD) + PAD / 2, row * (h + PAD) + PAD / 2, w + PAD, h + PAD)
        )
        self.marker.show()

    def cell_size(self) -> tuple[int, int]:
        """(height, width) in pixels of one grid cell, padding excluded."""
        return tuple(self.images.shape[-2:]) if self.images is not None else (0, 0)

    def _clicked(self, ev) -> None:
        if self.images is None or ev.button() != Qt.LeftButton:
            return
        pt = self.plot.getPlotItem().vb.mapSceneToView(ev.scenePos())
        h, w = self.images.shape[-2:]
        col, row = int(pt.x() // (w + PAD)), int(pt.y() // (h + PAD))
        if 0 <= col < self.n and 0 <= row < self.n:
            self.session.move_on_plane(
                float(self.values[col]), float(self.values[self.n - 1 - row])
            )


# -- prior samples ----------------------------------------------------------------------------
class SamplesView(ImageGridView):
    """A grid of decoded prior samples z ~ N(0, I); the same z's until 'New samples'."""

    title = "prior samples"
    min_interval = 0.5

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(session, parent)
        self.side = 8
        self.seed = 0
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.pane, 1)

    def resample(self) -> None:
        self.seed += 1
        self.refresh(force=True)

    def render(self) -> None:
        s = self.session
        g = torch.Generator().manual_seed(self.seed)
        z = torch.randn(self.side * self.side, s.latent_dim, generator=g)
        self.display(s.decode(z), self.side)


class ReconView(ImageGridView):
    """Test inputs (left) beside their reconstructions (right)."""

    title = "reconstructions"
    min_interval = 0.5

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(session, parent)
        self.side = 6
        self.offset = 0
        self.inputs = ImagePane()
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        for title, pane in (("Test inputs", self.inputs), ("Reconstructions", self.pane)):
            col = QVBoxLayout()
            lab = QLabel(title)
            lab.setObjectName("muted")
            lab.setAlignment(Qt.AlignCenter)
            col.addWidget(lab)
            col.addWidget(pane, 1)
            lay.addLayout(col, 1)

    def next_batch(self) -> None:
        self.offset += self.side * self.side
        self.refresh(force=True)

    def render(self) -> None:
        s = self.session
        if s.data is None:
            return
        n = self.side * self.side
        idx = (torch.arange(n) + self.offset) % len(s.data.test_x)
        x = s.data.test_x[idx]
        y = None if s.data.test_y is None else s.data.test_y[idx]
        rec = s.reconstruct(x, y)  # (n, C, H, W)
        inp = x.float().numpy() / 255.0
        self.inputs.set_array(tile(inp, self.side, PAD))
        self.pane.set_array(tile(rec, self.side, PAD))
        # exported as pairs: a row of inputs, then the same row reconstructed
        c, h, w = rec.shape[1:]
        pairs = np.stack(
            [
                inp.reshape(self.side, self.side, c, h, w),
                rec.reshape(self.side, self.side, c, h, w),
            ],
            axis=1,
        )
        self.images, self.ncol = pairs.reshape(-1, c, h, w), self.side


# -- class row --------------------------------------------------------------------------------
NEEDS_CVAE = (
    "The class row needs a conditional VAE: open one under File ▸ Examples (MNIST digits or "
    "Fashion-MNIST), or choose Type ▸ Conditional VAE and train."
)


class ClassRowView(ImageGridView):
    """The current z decoded once per class: what the conditioning alone changes."""

    title = "class row"

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(session, parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.names = hint("")
        self.names.setAlignment(Qt.AlignCenter)
        lay.addWidget(self.pane, 1)
        lay.addWidget(self.names)
        self.captions: list[pg.TextItem] = []  # each class's name under its image
        self.current = pg.QtWidgets.QGraphicsRectItem()  # frames the class now chosen
        self.current.setPen(pg.mkPen(theme.ACCENT, width=2))
        self.current.setZValue(5)
        self.current.hide()
        self.pane.view.addItem(self.current)
        session.zChanged.connect(self.mark)

    def export_problem(self) -> str | None:
        if self.session.model is not None and not self.session.conditional:
            return NEEDS_CVAE
        return super().export_problem()

    def render(self) -> None:
        s = self.session
        if not s.conditional:
            self.images = None
            self.pane.clear_image()
            self._caption([])
            self.names.setText(NEEDS_CVAE)
            return
        k = s.model.num_classes
        images = s.decode(*class_rows(s.z, k))
        h, w = images.shape[-2:]
        self.images, self.ncol = images, k
        self.pane.set_array(tile(images, k, PAD), below=0.5 * h)
        self._caption(s.class_names[:k], w, h)
        self.names.setText("")

    def _caption(self, names: list[str], w: int = 0, h: int = 0) -> None:
        view = self.pane.view
        while len(self.captions) > len(names):
            view.removeItem(self.captions.pop())
        while len(self.captions) < len(names):
            item = pg.TextItem(color=theme.MUTED, anchor=(0.5, 0.0))
            view.addItem(item)
            self.captions.append(item)
        xs = cell_centres(len(names), w, PAD)
        for item, name, x in zip(self.captions, names, xs):
            item.setText(name)
            item.setPos(float(x), h + PAD + 1)
        cls = self.session.cls
        if names and 0 <= cls < len(names):
            self.current.setRect(QRectF(cls * (w + PAD) + PAD / 2, PAD / 2, w + PAD, h + PAD))
            self.current.show()
        else:
            self.current.hide()


# -- interpolation ----------------------------------------------------------------------------
class InterpolationView(ImageGridView):
    """Between two test images (their posterior means) or two chosen points."""

    title = "interpolation"
    min_interval = 0.3

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(session, parent)
        self.ends: list[tuple[str, object]] = [("test", 0), ("test", 1)]
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        bar = QHBoxLayout()
        self.a_index = _spin(0, 10**7, 0, "Test image for the start")
        self.b_index = _spin(0, 10**7, 1, "Test image for the end")
        self.a_here = QPushButton("or current z")
        self.a_here.setToolTip("Start from the current point (sliders / map cursor)")
        self.b_here = QPushButton("or current z")
        self.b_here.setToolTip("End at the current point (sliders / map cursor)")
        self.mode = QComboBox()
        self.mode.addItem("Linear", "lerp")
        self.mode.addItem("Spherical", "slerp")
        self.mode.setToolTip("Linear, or spherical (slerp: keeps the norm typical of the prior)")
        self.steps = _spin(2, 30, 10, "Number of images, endpoints included")
        for w in (
            QLabel("From test image"),
            self.a_index,
            self.a_here,
            QLabel("  Path"),
            self.mode,
        ):
            bar.addWidget(w)
        bar.addStretch(1)
        lay.addLayout(bar)
        bar2 = QHBoxLayout()
        for w in (
            QLabel("To test image   "),
            self.b_index,
            self.b_here,
            QLabel("  Steps"),
            self.steps,
        ):
            bar2.addWidget(w)
        bar2.addStretch(1)
        lay.addLayout(bar2)
        self.ends_label = hint("")
        lay.addWidget(self.pane, 1)
        lay.addWidget(self.ends_label)
        self.a_index.valueChanged.connect(lambda v: self.set_end(0, ("test", v)))
        self.b_index.valueChanged.connect(lambda v: self.set_end(1, ("test", v)))
        self.a_here.clicked.connect(lambda: self.set_end(0, ("point", session.z.clone())))
        self.b_here.clicked.connect(lambda: self.set_end(1, ("point", session.z.clone())))
        self.mode.currentIndexChanged.connect(self.mark)
        self.steps.valueChanged.connect(self.mark)

    def set_end(self, which: int, end: tuple[str, object]) -> None:
        self.ends[which] = end
        self.dirty = True

    def _z(self, end) -> torch.Tensor:
        kind, v = end
        if kind == "point":
            return torch.as_tensor(v, dtype=torch.float32).reshape(-1)
        return torch.from_numpy(self.session.encode_test(int(v)))

    def latents(self) -> torch.Tensor:
        za, zb = self._z(self.ends[0]), self._z(self.ends[1])
        f = slerp if self.mode.currentData() == "slerp" else lerp
        return f(za, zb, self.steps.value())

    def render(self) -> None:
        s = self.session
        if s.data is None or s.model is None:
            return
        z = self.latents()
        self.display(s.decode(z), len(z))
        desc = [f"test image #{v}" if k == "test" else "a chosen point" for k, v in self.ends]
        self.ends_label.setText(
            f"{self.mode.currentText()} interpolation from {desc[0]} to {desc[1]}, "
            f"{len(z)} steps" + (f", class “{s.class_names[s.cls]}”" if s.conditional else "")
        )

    def export_gif(self, path, fps: float = 8.0) -> None:
        if self.dirty or self.images is None:
            self.refresh(force=True)
        if self.images is None:
            raise ValueError("nothing to export from the interpolation yet")
        from trainer.export import save_gif

        save_gif(torch.from_numpy(self.images), path, fps=fps, scale=4)


# -- the current point ------------------------------------------------------------------------
class PreviewPane(QWidget):
    """The decoded image of the current z, with the class picker for conditional models.

    Decoding one image is well under a millisecond, so this view redraws at once on every
    change (slider, cursor, class), not on the timer.
    """

    classPicked = Signal(int)

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(4)
        self.pane = ImagePane(min_size=150)
        self.pane.setToolTip("The decoder's image for the current z (and class)")
        lay.addWidget(self.pane, 1)
        row = QHBoxLayout()
        self.class_label = QLabel("Class")
        self.classes = QComboBox()
        self.classes.setToolTip(
            "Conditional VAE: the class the decoder is told to draw, in every view (C)"
        )
        row.addWidget(self.class_label)
        row.addWidget(self.classes, 1)
        lay.addLayout(row)
        self.z_label = hint("")
        self.z_label.setWordWrap(False)
        lay.addWidget(self.z_label)
        self.array: np.ndarray | None = None
        self.renders = 0
        self.classes.currentIndexChanged.connect(self._picked)
        session.zChanged.connect(self.refresh)
        session.classChanged.connect(self._class_changed)
        session.weightsChanged.connect(self.refresh)
        session.structureChanged.connect(self._rebuild_classes)
        session.dataChanged.connect(self._rebuild_classes)
        self._rebuild_classes()

    def _rebuild_classes(self) -> None:
        s = self.session
        self.classes.blockSignals(True)
        self.classes.clear()
        names = s.class_names
        for k, name in enumerate(names):
            self.classes.addItem(name if name == str(k) else f"{k}: {name}", k)
        self.classes.setCurrentIndex(min(s.cls, max(0, len(names) - 1)))
        self.classes.blockSignals(False)
        # only a conditional model takes a class: otherwise no picker at all (a disabled
        # "Class: 0: circle" reads as if the model were told to draw circles)
        on = s.conditional
        self.classes.setVisible(on)
        self.class_label.setVisible(on)

    def _picked(self, i: int) -> None:
        if i >= 0:
            self.session.set_class(i)

    def _class_changed(self, c: int) -> None:
        if self.classes.currentIndex() != c:
            self.classes.blockSignals(True)
            self.classes.setCurrentIndex(c)
            self.classes.blockSignals(False)
        self.refresh()

    def refresh(self) -> None:
        s = self.session
        if s.model is None:
            return
        img = s.decode_current()  # (C, H, W)
        self.array = img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)
        self.pane.set_array(self.array)
        self.renders += 1
        z = s.z.tolist()
        shown = ", ".join(f"{v:+.2f}" for v in z[:4]) + (", …" if len(z) > 4 else "")
        self.z_label.setText(f"z = ({shown})")


__all__ = [
    "ManifoldView",
    "SamplesView",
    "ReconView",
    "ClassRowView",
    "InterpolationView",
    "PreviewPane",
]


# -- latent arithmetic ------------------------------------------------------------------------
class ArithmeticView(ImageGridView):
    """Three test images a, b, c and the decoded z_a - z_b + z_c, in a row."""

    title = "arithmetic"
    min_interval = 0.3
    CAPTIONS = ("a", "− b", "+ c", "= a − b + c")

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(session, parent)
        self.result_z: torch.Tensor | None = None
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        bar = QHBoxLayout()
        self.index = []
        for name, v in zip("abc", (0, 1, 2), strict=True):
            box = _spin(0, 10**7, v, f"Test image {name}")
            box.valueChanged.connect(self.mark)
            self.index.append(box)
            bar.addWidget(QLabel(f"  {name}"))
            bar.addWidget(box)
        self.random_btn = QPushButton("Random")
        self.random_btn.setToolTip("Three other test images")
        self.random_btn.clicked.connect(self.shuffle)
        self.use_btn = QPushButton("Use as z")
        self.use_btn.setToolTip("Move the current z to the result (the sliders follow)")
        self.use_btn.clicked.connect(self.use_result)
        bar.addStretch(1)  # the two buttons go in the page's heading (the window puts them)
        lay.addLayout(bar)
        lay.addWidget(self.pane, 1)
        self.caption = hint("")
        lay.addWidget(self.caption)
        self.captions: list[pg.TextItem] = []
        self._seed = 0

    def shuffle(self) -> None:
        n = len(self.session.data.test_x) if self.session.data is not None else 3
        self._seed += 1
        rows = np.random.default_rng(self._seed).choice(n, size=min(3, n), replace=False)
        for box, r in zip(self.index, rows, strict=False):
            box.blockSignals(True)
            box.setValue(int(r))
            box.blockSignals(False)
        self.refresh(force=True)

    def use_result(self) -> None:
        if self.dirty or self.result_z is None:
            self.refresh(force=True)
        if self.result_z is not None:
            self.session.set_z(self.result_z)

    def render(self) -> None:
        from trainer.latent import arithmetic

        s = self.session
        if s.data is None or s.model is None or len(s.data.test_x) == 0:
            return
        n = len(s.data.test_x)
        idx = torch.tensor([box.value() % n for box in self.index])
        y = s.data.test_y[idx] if s.conditional and s.data.test_y is not None else None
        row, z = arithmetic(s.model, s.data.test_x[idx], y)
        self.result_z = z
        images = row.numpy()
        h, w = images.shape[-2:]
        self.images, self.ncol = images, 4
        self.pane.set_array(tile(images, 4, PAD), below=0.6 * h)
        view = self.pane.view
        while len(self.captions) < 4:
            item = pg.TextItem(color=theme.MUTED, anchor=(0.5, 0.0))
            view.addItem(item)
            self.captions.append(item)
        for item, text, x in zip(
            self.captions, self.CAPTIONS, cell_centres(4, w, PAD), strict=True
        ):
            item.setText(text)
            item.setPos(float(x), h + PAD + 1)
        labels = [f"#{int(i)}" for i in idx]
        names = ""
        if s.data.test_y is not None and s.class_names:
            names = " (" + ", ".join(s.class_names[int(s.data.test_y[i])] for i in idx) + ")"
        self.caption.setText(
            f"Test images {', '.join(labels)}{names}: their posterior means combined as "
            "z = z_a − z_b + z_c and decoded" + (" under c's class" if s.conditional else "")
        )
