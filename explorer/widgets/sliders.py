"""One slider and number box per latent dimension, in a scroll area (up to 256 of them)."""

from __future__ import annotations

import numpy as np
import torch
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from explorer.state import Z_RANGE, Session
from explorer.widgets.inputs import RangeDoubleSpinBox

TICKS = 100  # slider steps per unit of z


class LatentSliders(QWidget):
    refused = Signal(str)  # a value typed out of range was set to the nearest (it says so)

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(4)

        bar = QHBoxLayout()
        self.reset_btn = QPushButton("Zero")
        self.reset_btn.setToolTip("Set every dimension to 0, the prior's mean (Ctrl+R)")
        self.sample_btn = QPushButton("Sample")
        self.sample_btn.setToolTip("Draw z from the prior N(0, I) (Ctrl+P)")
        self.encode_btn = QPushButton("Encode test image")
        self.encode_btn.setToolTip("Set z to the posterior mean of the chosen test image")
        self.encode_index = QSpinBox()
        self.encode_index.setRange(0, 10**7)
        self.encode_index.setPrefix("#")
        self.encode_index.setToolTip("Index of the test image to encode")
        for w in (self.reset_btn, self.sample_btn):
            bar.addWidget(w)
        lay.addLayout(bar)
        bar2 = QHBoxLayout()
        bar2.addWidget(self.encode_btn)
        bar2.addWidget(self.encode_index, 1)
        lay.addLayout(bar2)
        self.order_box = QCheckBox("Order by KL")
        self.order_box.setToolTip(
            "Sort the dimensions by their KL on the test set, most informative first"
        )
        lay.addWidget(self.order_box)

        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        lay.addWidget(self.scroll, 1)
        self.rows: list[tuple[QLabel, QSlider, QDoubleSpinBox]] = []
        self._syncing = False
        self._rng = torch.Generator().manual_seed(1234)

        self.reset_btn.clicked.connect(self.reset)
        self.sample_btn.clicked.connect(self.sample)
        self.encode_btn.clicked.connect(self.encode)
        self.order_box.toggled.connect(self._reorder)
        session.structureChanged.connect(self._build)
        session.zChanged.connect(self._sync)
        session.klChanged.connect(self._kl_changed)
        session.dataChanged.connect(self._data_changed)
        self._build()

    # -- rows ---------------------------------------------------------------------------------
    def _build(self) -> None:
        d = self.session.latent_dim
        inner = QWidget()
        grid = QGridLayout(inner)
        grid.setContentsMargins(2, 2, 8, 2)
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(2)
        self.grid = grid
        self.rows = []
        for i in range(d):
            label = QLabel(f"z{i}")
            label.setMinimumWidth(34)
            slider = QSlider(Qt.Horizontal)
            slider.setRange(int(-Z_RANGE * TICKS), int(Z_RANGE * TICKS))
            slider.setToolTip(f"Latent dimension {i}")
            box = RangeDoubleSpinBox(-Z_RANGE, Z_RANGE, 2, f"z{i}")
            box.setSingleStep(0.1)
            box.setFixedWidth(72)
            box.setToolTip(f"Latent dimension {i}, from {-Z_RANGE:g} to {Z_RANGE:g}")
            box.refused.connect(self.refused)
            slider.valueChanged.connect(lambda v, i=i: self._slider_moved(i, v))
            box.valueChanged.connect(lambda v, i=i: self._box_changed(i, v))
            self.rows.append((label, slider, box))
        self._layout_rows()
        self.scroll.setWidget(inner)
        self.setEnabled(d > 0)
        m = self.session.model
        self.order_box.setEnabled(m is not None and m.is_variational)  # an AE has no KL
        self._kl_changed()
        self._sync()

    def order(self) -> list[int]:
        """Display order of the dimensions (by KL, largest first, when asked)."""
        kl = self.session.kl_per_dim
        d = len(self.rows)
        if self.order_box.isChecked() and kl is not None and len(kl) == d:
            return [int(i) for i in np.argsort(-kl, kind="stable")]
        return list(range(d))

    def _layout_rows(self) -> None:
        for r, i in enumerate(self.order()):
            for c, w in enumerate(self.rows[i]):
                self.grid.addWidget(w, r, c)  # re-adding moves the widget
        self.grid.setRowStretch(len(self.rows), 1)

    def _reorder(self) -> None:
        if self.rows:
            self._layout_rows()

    def _kl_changed(self) -> None:
        kl = self.session.kl_per_dim
        for i, (label, slider, _box) in enumerate(self.rows):
            if kl is not None and i < len(kl):
                tip = f"Latent dimension {i}: KL {kl[i]:.3f} nats on the test set"
                label.setToolTip(tip)
                slider.setToolTip(tip)
                label.setEnabled(bool(kl[i] >= 0.01))  # greyed label: an inactive unit
        if self.order_box.isChecked():
            self._reorder()

    def _data_changed(self) -> None:
        d = self.session.data
        if d is not None:
            self.encode_index.setMaximum(len(d.test_x) - 1)

    # -- z <-> widgets ------------------------------------------------------------------------
    def _slider_moved(self, i: int, v: int) -> None:
        if not self._syncing:
            self.session.set_z_values({i: v / TICKS})

    def _box_changed(self, i: int, v: float) -> None:
        if not self._syncing:
            self.session.set_z_values({i: v})

    def _sync(self) -> None:
        z = self.session.z
        if len(z) != len(self.rows):
            return
        self._syncing = True
        try:
            for (_l, slider, box), v in zip(self.rows, z.tolist()):
                slider.setValue(round(v * TICKS))
                box.setValue(v)
        finally:
            self._syncing = False

    def set_value(self, i: int, v: float) -> None:
        """Move dimension ``i``'s slider as a user would (tests, keyboard)."""
        self.rows[i][1].setValue(round(v * TICKS))

    # -- actions ------------------------------------------------------------------------------
    def reset(self) -> None:
        if self.session.latent_dim:
            self.session.set_z(torch.zeros(self.session.latent_dim))

    def sample(self) -> None:
        if self.session.latent_dim:
            z = torch.randn(self.session.latent_dim, generator=self._rng).clamp(-Z_RANGE, Z_RANGE)
            self.session.set_z(z)

    def encode(self) -> None:
        s = self.session
        if s.model is None or s.data is None:
            return
        i = self.encode_index.value()
        x, y = s.test_image(i)
        if s.conditional and y is not None:
            s.set_class(y)
        s.set_z(s.encode_test(i))
