"""The Explore tab's plane picker: what the latent map and the manifold show.

Two latent dimensions (the others taken from the current z), or, for a latent larger than
2, the principal plane of the encoded test set, on which such a model opens (two of its
dimensions alone show little of it). The axis pickers say what the axes are: ``z3`` or the
principal components with their spread.
"""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QWidget

from explorer.state import Session


class PlanePicker(QWidget):
    """``mode`` (two dimensions / principal plane), the ``dim_x`` / ``dim_y`` pickers and,
    on the principal plane, what its axes are (``axes``)."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.mode = QComboBox()
        self.mode.addItem("two dimensions", False)
        self.mode.addItem("principal plane", True)
        self.mode.setToolTip(
            "What the map and the manifold show: two latent dimensions (the others from the "
            "current z), or, for a latent larger than 2, the plane of the first two principal "
            "components of the encoded test set (centred at its mean, in standard deviations)"
        )
        self.dim_x, self.dim_y = QComboBox(), QComboBox()
        self.dim_x.setToolTip("Latent dimension on the horizontal axis of the map and the grid")
        self.dim_y.setToolTip("Latent dimension on the vertical axis of the map and the grid")
        self.axes = QLabel("")  # the principal plane's axes, in place of the pickers
        self.axes.setObjectName("muted")
        self.axes.setToolTip(
            "The principal plane's axes: the first two principal components of the encoded "
            "test set, each in units of its standard deviation σ (in latent units)"
        )
        self._x, self._y = QLabel("x"), QLabel("y")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        for w in (QLabel("Plane:"), self.mode, self._x, self.dim_x, self._y, self.dim_y, self.axes):
            lay.addWidget(w)
        self.mode.currentIndexChanged.connect(
            lambda _i: session.set_pca(bool(self.mode.currentData()))
        )
        self.dim_x.currentIndexChanged.connect(self._picked)
        self.dim_y.currentIndexChanged.connect(self._picked)
        session.structureChanged.connect(self._structure_changed)
        session.dimsChanged.connect(self._sync)
        session.testLatentsChanged.connect(self._name_axes)
        self._structure_changed()

    def _structure_changed(self) -> None:
        d = self.session.latent_dim
        for combo in (self.dim_x, self.dim_y):
            combo.blockSignals(True)
            combo.clear()
            for i in range(d):
                combo.addItem(f"z{i}", i)
            combo.blockSignals(False)
        self._sync(*self.session.dims)

    def _sync(self, dx: int, dy: int) -> None:
        s = self.session
        for combo, v in ((self.dim_x, dx), (self.dim_y, dy)):
            combo.blockSignals(True)
            combo.setCurrentIndex(v)
            combo.setEnabled(not s.pca)
            combo.setVisible(not s.pca)
            combo.blockSignals(False)
        self._x.setVisible(not s.pca)
        self._y.setVisible(not s.pca)
        self.mode.blockSignals(True)
        self.mode.setCurrentIndex(1 if s.pca else 0)
        item = self.mode.model().item(1)  # offered for a latent larger than 2
        item.setEnabled(s.pca_available)
        self.mode.blockSignals(False)
        self._name_axes()

    def _name_axes(self) -> None:
        s = self.session
        self.axes.setVisible(s.pca)
        if not s.pca:
            return
        if s.test_latents is None:
            self.axes.setText("x PC1 · y PC2 (encoding the test set…)")
            return
        names = s.plane().names  # "PC1 (σ = 1.42)"
        self.axes.setText(f"x {names[0]} · y {names[1]} of the encoded test set")

    def _picked(self) -> None:
        dx, dy = self.dim_x.currentIndex(), self.dim_y.currentIndex()
        if dx < 0 or dy < 0:
            return
        s = self.session
        if dx == dy and s.latent_dim > 1:
            # keep the two axes different: swap instead
            ox, oy = s.dims
            dx, dy = (oy, dy) if self.sender() is self.dim_y else (dx, ox)
            if dx == dy:
                dy = (dx + 1) % s.latent_dim
            self._sync(dx, dy)
        s.set_dims(dx, dy)
