"""The Posterior vs prior tab: the aggregate posterior of the test set as a density on the
map's plane against N(0, I) (its 1- and 2-sigma contours), the prior's regions it leaves
empty (holes, in red), and each dimension's posterior means against the standard normal.
Its CLI twin is ``latent-train posterior``."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import QRectF, Qt
from PySide6.QtWidgets import QHBoxLayout, QSplitter, QVBoxLayout, QWidget

from explorer import theme
from explorer.state import Session
from trainer.latent import kl_order
from trainer.posterior import PosteriorVsPrior, means_histogram, picture, posterior_vs_prior

from .common import CountingImageItem, hint
from .views import DecodedView

MAX_HISTOGRAMS = 12  # per-dimension histograms shown (the most informative first)


def describe(v: PosteriorVsPrior, plain: bool) -> str:
    what = "codes" if plain else f"{v.samples:,} samples of q(z)"
    text = (
        f"Holes (red): {v.hole_mass:.1%} of the prior's mass lies where the test set's "
        f"{what} leave it empty: prior samples there decode to images the decoder never "
        "learned."
    )
    if v.outside > 0.005:
        what = "codes" if plain else "samples of q(z)"
        text += f" {v.outside:.0%} of the {what} lie outside the frame (beyond ±{v.extent:g})."
    return text


class PosteriorView(DecodedView):
    title = "posterior vs prior"
    min_interval = 1.0

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(session, parent)
        self.result: PosteriorVsPrior | None = None
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.note = hint("")
        lay.addWidget(self.note)
        split = QSplitter(Qt.Horizontal)
        self.plot = pg.PlotWidget()
        p = self.plot.getPlotItem()
        p.setAspectLocked(True)
        p.setMouseEnabled(False, False)
        p.hideButtons()
        p.setMenuEnabled(False)
        self.item = CountingImageItem(axisOrder="row-major")
        p.addItem(self.item)
        self.plot.setMinimumSize(220, 220)
        self.plot.setToolTip(
            "The aggregate posterior q(z) (samples of q(z|x) for the test images) on the "
            "map's plane, log density; the prior N(0, I)'s 1- and 2-sigma contours in yellow; "
            "red: regions inside 2 sigma where q(z) has under a tenth of the prior's density"
        )
        split.addWidget(self.plot)
        self.hists = pg.GraphicsLayoutWidget()
        self.hists.setBackground(theme.BG)
        self.hists.setToolTip(
            "Each dimension's posterior means over the test images (bars) against the "
            "standard normal (line), most informative dimensions first"
        )
        split.addWidget(self.hists)
        split.setSizes([420, 420])
        row = QHBoxLayout()
        row.addWidget(split)
        lay.addLayout(row, 1)
        session.dimsChanged.connect(self.mark)
        session.testLatentsChanged.connect(self.mark)
        session.klChanged.connect(self.mark)

    def render(self) -> None:
        s = self.session
        if s.data is None or s.test_latents is None:
            self.note.setText("Waiting for the encoded test images…")
            return
        idx = torch.from_numpy(s.test_index)
        x = s.data.test_x[idx]
        y = None if s.data.test_y is None else s.data.test_y[idx]
        v = posterior_vs_prior(s.model, x, y if s.conditional else None, s.plane())
        self.result = v
        # picture() puts the top of the plane first (as files are read); the plot's y axis
        # points up, so its first row is drawn at the bottom: hand it bottom-first
        pic = np.ascontiguousarray(picture(v)[::-1])
        self.images = None
        self.item.setImage(pic, autoLevels=False, levels=(0.0, 1.0))
        e = v.extent
        self.item.setRect(QRectF(-e, -e, 2 * e, 2 * e))
        p = self.plot.getPlotItem()
        names = s.plane().names
        p.setLabel("bottom", names[0])
        p.setLabel("left", names[1])
        p.setRange(xRange=(-e, e), yRange=(-e, e), padding=0.02)
        self.note.setText(describe(v, not s.model.is_variational))
        self._histograms(v)

    hist_plots: list = []
    _hist_key: tuple | None = None
    _bars: list = []

    def _histograms(self, v: PosteriorVsPrior) -> None:
        s = self.session
        d = v.means.shape[1]
        kl = s.kl_per_dim
        dims = kl_order(kl) if kl is not None and len(kl) == d else list(range(d))
        dims = dims[:MAX_HISTOGRAMS]
        if (d, tuple(dims)) != self._hist_key:  # new plots only when the dimensions change:
            self._build_histograms(d, dims)  # making them costs far more than updating them
        for (dim, plt), bars in zip(self.hist_plots, self._bars, strict=True):
            _c, dens, out = means_histogram(v.means, dim)
            bars.setOpts(height=dens)
            plt.setTitle(
                f"z{dim}" + (f" · {out:.0%} outside" if out >= 0.01 else ""),
                color=theme.MUTED,
                size="8pt",
            )

    def _build_histograms(self, d: int, dims: list[int]) -> None:
        self.hists.clear()
        self._hist_key = (d, tuple(dims))
        cols = max(1, min(4, math.ceil(math.sqrt(len(dims)))))
        xs = np.linspace(-4, 4, 81)
        normal = np.exp(-0.5 * xs**2) / math.sqrt(2 * math.pi)
        c = means_histogram(np.zeros((1, 1)), 0)[0]
        self.hist_plots, self._bars = [], []
        for k, dim in enumerate(dims):
            plt = self.hists.addPlot(row=k // cols, col=k % cols)
            bars = pg.BarGraphItem(
                x=c, height=np.zeros_like(c), width=c[1] - c[0], brush=theme.ACCENT, pen=None
            )
            plt.addItem(bars)
            plt.plot(xs, normal, pen=pg.mkPen(theme.WARN, width=1.5))
            plt.hideAxis("left")
            plt.setMouseEnabled(False, False)
            plt.hideButtons()
            plt.setXRange(-4, 4, padding=0)
            plt.setYRange(0, 1.0, padding=0)
            self.hist_plots.append((dim, plt))
            self._bars.append(bars)
        if d > len(dims):
            self.hists.addLabel(
                f"the {len(dims)} most informative of {d} dimensions",
                row=math.ceil(len(dims) / cols),
                col=0,
                colspan=cols,
                color=theme.MUTED,
                size="8pt",
            )

    def export_png(self, path) -> None:
        if self.dirty or self.result is None:
            self.refresh(force=True)
        if self.result is None:
            raise ValueError("nothing to export from the posterior vs prior yet")
        from trainer.export import save_picture

        save_picture(picture(self.result), path, scale=6)
