"""Live loss curves and the KL-per-dimension bar chart.

The curves draw the session's history, the bars its KL per dimension: the plots own no
numbers of their own. ``refresh()``, called from the window's repaint timer, appends the rows
the history gained since the last call (cheap, ten a second while training) and redraws;
a replaced history (another model, a run's final one) is drawn afresh.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from explorer import theme
from explorer.state import Session

ACTIVE_KL = 0.01  # nats: a latent dimension carrying less than this is "inactive"


SMOOTH_FRACTION = 0.05  # the smoothed curves average about the last 5% of the steps done
RAW_ALPHA = 70  # of 255: the raw per-snapshot values, drawn faintly under the smoothed line


HOVER_HINT = "Hover over a plot for exact values."


def smooth_steps(steps, values, fraction: float = SMOOTH_FRACTION) -> np.ndarray:
    """The smoothed curve of ``values`` recorded at ``steps`` (see :class:`_Smoother`)."""
    sm = _Smoother(fraction)
    sm.extend(steps, values)
    return np.asarray(sm.out)


class _Smoother:
    """A debiased exponential moving average, as TensorBoard smooths, over steps.

    Each history row is the mean loss of the steps since the one before, so it counts for
    as many steps as it covers: at the start a row covers one or two steps, later (or on a
    fast machine) dozens. Within the average, a value ``n`` steps older weighs ``exp(-n /
    tau)`` as much, ``tau`` being ``fraction`` of the steps done so far; dividing by the sum
    of the weights (the debiasing) keeps the first values from being pulled toward zero.
    So at step 47 the curve averages the last few steps and agrees with the Run box, and
    at step 20,000 it averages about a thousand. Incremental: a refresh costs O(new rows).
    """

    def __init__(self, fraction: float = SMOOTH_FRACTION) -> None:
        self.fraction = fraction
        self.reset()

    def reset(self) -> None:
        self.acc, self.w, self.out = 0.0, 0.0, []
        self.last_step: float | None = None

    def extend(self, steps, values) -> None:
        for s, v in zip(steps, values, strict=True):
            s = float(s)
            n = s - self.last_step if self.last_step is not None else max(s, 1.0)
            self.last_step = s if self.last_step is None else max(self.last_step, s)
            if not np.isfinite(v):  # a hole in the record: the curve holds its value
                self.out.append(self.out[-1] if self.out else np.nan)
                continue
            tau = max(1.0, self.fraction * s)
            keep = float(np.exp(-max(n, 1.0) / tau))  # how much of the past stays
            self.acc = keep * self.acc + (1 - keep) * v
            self.w = keep * self.w + (1 - keep)
            self.out.append(self.acc / self.w)


def _plot(title: str, left: str, bottom: str = "step") -> pg.PlotWidget:
    w = pg.PlotWidget()
    p = w.getPlotItem()
    p.setTitle(title, color=theme.TEXT, size="10pt")
    p.setLabel("left", left)
    p.setLabel("bottom", bottom)
    p.showGrid(x=True, y=True, alpha=0.15)
    p.setClipToView(True)
    p.setDownsampling(auto=True, mode="peak")
    p.setMenuEnabled(False)
    w.setMinimumHeight(150)
    # shown instead of meaningless 0-1 axes until there is something to plot
    w.empty_text = pg.TextItem("no data yet", color=theme.MUTED, anchor=(0.5, 0.5))
    w.addItem(w.empty_text, ignoreBounds=True)
    return w


def _show_empty(w: pg.PlotWidget, empty: bool, text: str = "no data yet") -> None:
    """An empty plot: a fixed 0-1 frame without tick values and a short note in it."""
    p = w.getPlotItem()
    w.empty_text.setText(text)
    w.empty_text.setVisible(empty)
    for ax in ("left", "bottom"):
        p.getAxis(ax).setStyle(showValues=not empty)
    if empty:
        p.disableAutoRange()
        p.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
        w.empty_text.setPos(0.5, 0.5)
    else:
        p.enableAutoRange()


class LossPlots(QWidget):
    """Three plots: −ELBO (train, smoothed, and test per epoch), KL per step, KL per dim."""

    KEYS = ("step", "nelbo", "recon", "kl")
    KL_LABEL_PX = 34  # room for one "z123" label under a bar

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        bar = QHBoxLayout()
        self.hover = QLabel(HOVER_HINT)
        self.hover.setObjectName("muted")
        self.hover.setTextFormat(Qt.RichText)
        self.log_box = QCheckBox("Log scale")
        self.log_box.setToolTip("Logarithmic y axis for the loss curves")
        self.smooth_box = QCheckBox("Smooth")
        self.smooth_box.setChecked(True)
        self.smooth_box.setToolTip(
            "Smooth the per-step curves (a debiased moving average of about the last 5% of "
            "the steps); the raw values stay drawn faintly beneath"
        )
        bar.addWidget(self.hover, 1)
        bar.addWidget(self.smooth_box)
        bar.addWidget(self.log_box)
        lay.addLayout(bar)

        split = QSplitter(Qt.Horizontal)
        self.loss_plot = _plot("Negative ELBO (nats / image)", "nats")
        self.kl_plot = _plot("Reconstruction and KL", "nats")
        self.dim_plot = _plot("KL per dimension", "nats", "dimension")
        self.dim_plot.getPlotItem().setDownsampling(False)
        # KL per dimension is read in nats: no "(x0.001)" SI-prefix rescaling of the axis
        self.dim_plot.getPlotItem().getAxis("left").enableAutoSIPrefix(False)
        for w in (self.loss_plot, self.kl_plot, self.dim_plot):
            split.addWidget(w)
        split.setSizes([400, 400, 300])
        lay.addWidget(split, 1)

        lp, kp = self.loss_plot.getPlotItem(), self.kl_plot.getPlotItem()
        lp.addLegend(offset=(-10, 10), labelTextColor=theme.TEXT)
        kp.addLegend(offset=(-10, 10), labelTextColor=theme.TEXT)
        pen = lambda c: pg.mkPen(c, width=1.6)  # noqa: E731
        self.curves = {
            "nelbo": lp.plot([], [], pen=pen(theme.CURVE["nelbo"]), name="train −ELBO"),
            "test": lp.plot(
                [],
                [],
                pen=pen(theme.CURVE["test"]),
                symbol="o",
                symbolSize=7,
                symbolBrush=theme.CURVE["test"],
                symbolPen=None,
                name="test −ELBO (epoch)",
            ),
            "recon": kp.plot([], [], pen=pen(theme.CURVE["recon"]), name="reconstruction"),
            "kl": kp.plot([], [], pen=pen(theme.CURVE["kl"]), name="KL"),
        }
        self.curves["test"].setDownsampling(False)
        # the raw values, faint under the smoothed lines (shown while Smooth is on)
        self.raw_curves = {}
        for key, plot in (("nelbo", lp), ("recon", kp), ("kl", kp)):
            colour = pg.mkColor(theme.CURVE[key])
            colour.setAlpha(RAW_ALPHA)
            self.raw_curves[key] = curve = plot.plot([], [], pen=pg.mkPen(colour, width=1))
            curve.setZValue(self.curves[key].zValue() - 1)
        self.curves["test"].setClipToView(False)
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.7, brush=theme.ACCENT)
        self.dim_plot.addItem(self.bars)
        self.active_line = pg.InfiniteLine(
            pos=ACTIVE_KL, angle=0, pen=pg.mkPen(theme.MUTED, style=Qt.DashLine)
        )
        self.dim_plot.addItem(self.active_line, ignoreBounds=True)
        self.cursors = []
        for w in (self.loss_plot, self.kl_plot):
            line = pg.InfiniteLine(angle=90, pen=pg.mkPen(theme.GRID, width=1))
            line.hide()
            w.addItem(line, ignoreBounds=True)
            self.cursors.append(line)
            w.scene().sigMouseMoved.connect(lambda pos, w=w: self._hovered(w, pos))
        self.dim_plot.scene().sigMouseMoved.connect(self._hovered_bars)

        self.log_box.toggled.connect(self._set_log)
        self.smooth_box.toggled.connect(self._resmooth)
        session.historyReset.connect(self._history_replaced)
        session.structureChanged.connect(self._name_loss)
        session.klChanged.connect(self._mark)
        self.dim_plot.getPlotItem().getViewBox().sigResized.connect(self._kl_resized)
        self._history_replaced()
        self._name_loss()

    def _name_loss(self) -> None:
        """The loss is the model's: an autoencoder's is its reconstruction loss, not a -ELBO
        (it has no KL term)."""
        name = self.session.loss_name
        title = "Negative ELBO" if name == "−ELBO" else name.capitalize()
        self.loss_plot.getPlotItem().setTitle(
            f"{title} (nats / image)", color=theme.TEXT, size="10pt"
        )
        legend = self.loss_plot.getPlotItem().legend
        for key, text in (("nelbo", f"train {name}"), ("test", f"test {name} (epoch)")):
            self.curves[key].opts["name"] = text
            label = legend.getLabel(self.curves[key])
            if label is not None:
                label.setText(text)

    # -- data in ------------------------------------------------------------------------------
    def _history_replaced(self) -> None:
        """Forget what was drawn; the next refresh draws the session's history from its start."""
        self.raw = {k: [] for k in self.KEYS}
        self.test_x: list[float] = []
        self.test_y: list[float] = []
        self._rows = self._epochs = 0  # history rows already taken
        self._drawn_kl = ()  # sentinel: draw the bars on the next refresh
        self.smooth = {k: _Smoother() for k in ("nelbo", "recon", "kl")}
        # the read-out and the hover line were of the history before (another model's)
        self.hover.setText(HOVER_HINT)
        for line in getattr(self, "cursors", []):
            line.hide()
        self.dirty = True
        self.refresh()

    def _mark(self) -> None:
        self.dirty = True

    def _take_new_rows(self) -> bool:
        h = self.session.history
        new_steps, new_epochs = h.steps[self._rows :], h.epochs[self._epochs :]
        for row in new_steps:
            for k in self.KEYS:
                self.raw[k].append(float(row.get(k, np.nan)))
        for e in new_epochs:
            self.test_x.append(float(e["step"]))
            self.test_y.append(float(e["test_nelbo"]))
        self._rows += len(new_steps)
        self._epochs += len(new_epochs)
        return bool(new_steps or new_epochs)

    @property
    def kl_dims(self) -> np.ndarray | None:
        return self.session.kl_per_dim

    def point_count(self) -> int:
        return len(self.raw["step"])

    # -- drawing ------------------------------------------------------------------------------
    def _series(self, key: str) -> np.ndarray:
        if self.smooth_box.isChecked():
            sm = self.smooth[key]
            n = len(sm.out)
            if n < len(self.raw[key]):
                sm.extend(self.raw["step"][n:], self.raw[key][n:])
            return np.asarray(sm.out)
        return np.asarray(self.raw[key])

    def _resmooth(self) -> None:
        for sm in self.smooth.values():
            sm.reset()
        self.dirty = True
        self.refresh()

    def _positive(self, y: np.ndarray) -> np.ndarray:
        return np.maximum(y, 1e-3) if self.log_box.isChecked() else y

    def refresh(self) -> bool:
        """Redraw if anything changed since the last call; True if it redrew."""
        if self._take_new_rows():
            self.dirty = True
        if not self.dirty:
            return False
        self.dirty = False
        x = np.asarray(self.raw["step"])
        empty = not len(x) and not self.test_x
        if empty or self.loss_plot.empty_text.isVisible():
            for w in (self.loss_plot, self.kl_plot):
                _show_empty(w, empty, "no training yet")
        smooth = self.smooth_box.isChecked()
        for key in ("nelbo", "recon", "kl"):
            self.curves[key].setData(x, self._positive(self._series(key)))
            raw = self.raw_curves[key]
            raw.setVisible(smooth)
            if smooth:
                raw.setData(x, self._positive(np.asarray(self.raw[key])))
        self.curves["test"].setData(
            np.asarray(self.test_x), self._positive(np.asarray(self.test_y))
        )
        kl = self.kl_dims
        if kl is self._drawn_kl:
            return True
        self._drawn_kl = kl
        if kl is not None and len(kl):
            brushes = [theme.ACCENT if v >= ACTIVE_KL else theme.GRID for v in kl]
            self.bars.setOpts(x=np.arange(len(kl)), height=kl, brushes=brushes, width=0.7)
            self._label_bars(len(kl))
            _show_empty(self.dim_plot, False)
            top = float(np.nanmax(kl)) if np.isfinite(kl).any() else 0.0
            self.dim_plot.getPlotItem().setRange(
                xRange=(-0.6, len(kl) - 0.4), yRange=(0, max(1.1 * top, 0.05)), padding=0
            )
            n_active = int((kl >= ACTIVE_KL).sum())
            self.dim_plot.getPlotItem().setTitle(
                f"KL per dim · {n_active}/{len(kl)} active",
                color=theme.TEXT,
                size="10pt",
            )
        else:
            self.bars.setOpts(x=[], height=[])
            m = self.session.model
            plain = m is not None and not m.is_variational
            _show_empty(
                self.dim_plot, True, "a plain autoencoder has no KL" if plain else "no data yet"
            )
            self.dim_plot.getPlotItem().setTitle("KL per dimension", color=theme.TEXT, size="10pt")
        return True

    def kl_label_step(self, n: int) -> int:
        """Label every k-th bar, k from 1, 2, 5, 10, 20, 50, …: as few as leave each label
        KL_LABEL_PX pixels (100 bars in a narrow plot get z0, z20, z40, …)."""
        width = max(1.0, self.dim_plot.getPlotItem().getViewBox().width())
        need = self.KL_LABEL_PX * n / width  # bars per label
        k = 1
        while k < need:
            for m in (2, 2.5, 2):  # 1, 2, 5, 10, 20, 50, ...
                k = int(k * m)
                if k >= need:
                    break
        return k

    def _label_bars(self, n: int) -> None:
        step = self.kl_label_step(n)
        self._label_step = (n, step)
        self.dim_plot.getPlotItem().getAxis("bottom").setTicks(
            [[(i, f"z{i}") for i in range(0, n, step)]]
        )

    def _kl_resized(self) -> None:
        kl = self.kl_dims
        if kl is not None and len(kl) and self.kl_label_step(len(kl)) != self._label_step[1]:
            self._label_bars(len(kl))

    _label_step = (0, 1)

    def _set_log(self, on: bool) -> None:
        for w in (self.loss_plot, self.kl_plot):
            w.getPlotItem().setLogMode(y=on)
        self.dirty = True
        self.refresh()

    def _hovered(self, w: pg.PlotWidget, pos) -> None:
        vb = w.getPlotItem().vb
        if not w.sceneBoundingRect().contains(pos) or not self.raw["step"]:
            return
        xv = vb.mapSceneToView(pos).x()
        steps = np.asarray(self.raw["step"])
        i = int(np.clip(np.searchsorted(steps, xv), 0, len(steps) - 1))
        if i > 0 and abs(steps[i - 1] - xv) < abs(steps[i] - xv):
            i -= 1
        for c in self.cursors:
            c.setPos(steps[i])
            c.show()
        self.hover.setText(self.describe(i))

    def describe(self, i: int) -> str:
        """Exact values at snapshot ``i`` (raw, not smoothed), for the hover read-out."""
        r = {k: self.raw[k][i] for k in self.KEYS}
        col = theme.CURVE
        text = (
            f"step <b>{int(r['step']):,}</b> &nbsp; "
            f"<span style='color:{col['nelbo']}'>{self.session.loss_name} {r['nelbo']:.3f}</span>"
            " &nbsp; "
            f"<span style='color:{col['recon']}'>recon {r['recon']:.3f}</span> &nbsp; "
            f"<span style='color:{col['kl']}'>KL {r['kl']:.3f}</span>"
        )
        if self.test_x:
            j = int(np.argmin(np.abs(np.asarray(self.test_x) - r["step"])))
            text += (
                f" &nbsp; <span style='color:{col['test']}'>test {self.session.loss_name} "
                f"{self.test_y[j]:.3f} "
                f"(epoch {j + 1})</span>"
            )
        return text

    def _hovered_bars(self, pos) -> None:
        kl = self.kl_dims
        if kl is None or not len(kl) or not self.dim_plot.sceneBoundingRect().contains(pos):
            return
        x = self.dim_plot.getPlotItem().vb.mapSceneToView(pos).x()
        i = int(round(x))
        if 0 <= i < len(kl):
            state = "active" if kl[i] >= ACTIVE_KL else "inactive"
            self.hover.setText(f"latent dimension <b>z{i}</b>: KL {kl[i]:.4f} nats ({state})")
