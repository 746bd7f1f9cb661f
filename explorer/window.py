"""The Latent Explorer main window.

Data flows one way: dataset -> worker thread (training loop) -> Snapshot signal -> the
latest snapshot kept here -> Session (the GUI's own model copy) -> views. A 30 Hz timer
applies the latest weights and repaints only what changed; cheap single-image views (the
preview under the sliders) redraw at once on user input.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch
from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QIcon, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from explorer import __version__
from explorer.state import Session
from explorer.widgets.common import MessageBar, hint, titled
from explorer.widgets.latent_map import LatentMap
from explorer.widgets.plots import LossPlots
from explorer.widgets.sliders import LatentSliders
from explorer.widgets.train_panel import TrainPanel, fmt_seconds
from explorer.widgets.views import (
    ClassRowView,
    InterpolationView,
    ManifoldView,
    PreviewPane,
    ReconView,
    SamplesView,
)
from explorer.worker import DataWorker, RunOutcome, ThreadRunner, TrainingWorker, TrainJob
from trainer.checkpoint import SUFFIX, CheckpointError, load_checkpoint, save_checkpoint
from trainer.config import ConfigError, TrainConfig
from trainer.data import DataError, DataSpec, debian_fashion_available, is_cached
from trainer.evaluate import elbo_stats
from trainer.loop import Snapshot, TrainControl, model_config_for

APP_NAME = "Latent Explorer"
ORG = "latent-explorer"
REPAINT_HZ = 30
MAP_REFRESH_S = 1.0  # re-encode the map's test points at most this often while training
GIL_SWITCH_S = 0.0005  # see MainWindow.__init__
PLOTS_INTERVAL_S = 0.25  # redraw the loss curves at most 4 times a second while training
MAP_CHUNK = 400  # test images encoded per tick while training
ICON = Path(__file__).resolve().parent / "icon.png"
SOURCE_NAMES = {
    "mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "kmnist": "Kuzushiji-MNIST",
    "shapes": "the built-in shapes", "idx": "IDX files", "folder": "an image folder",
}  # fmt: skip


def gui_data_message(msg: str) -> str:
    """The loader's download message speaks of CLI flags; say it in terms of this window."""
    if "could not download" in msg and "offline alternatives" in msg:
        head = msg.split("; offline alternatives")[0]
        alt = "Fashion-MNIST (installed on this computer), " if debian_fashion_available() else ""
        return (
            f"{head}. Without internet, choose {alt}Shapes (built in), IDX files or an image "
            "folder under Data."
        )
    return msg


def default_settings() -> QSettings:
    return QSettings(QSettings.IniFormat, QSettings.UserScope, ORG, "latent-explorer")


class MainWindow(QMainWindow):
    def __init__(
        self, settings: QSettings | None = None, restore: bool = True, load: bool = True
    ) -> None:
        """``load=False``: do not load the remembered data (the caller picks data first)."""
        super().__init__()
        self.settings = settings if settings is not None else default_settings()
        self.setWindowTitle(APP_NAME)
        if ICON.exists():
            self.setWindowIcon(QIcon(str(ICON)))
        # torch's thread count is per thread: the GUI decodes small batches with one
        # thread, leaving the other cores to the training thread (see training_threads)
        torch.set_num_threads(1)
        # Qt calls back into Python many times per repaint; each call must win the GIL
        # from the training thread, which keeps it up to the switch interval (5 ms by
        # default). A short interval keeps a repaint from waiting behind it.
        sys.setswitchinterval(GIL_SWITCH_S)
        self.session = Session(self)
        self.control: TrainControl | None = None
        self.trainer_runner = ThreadRunner(self)
        self.data_runner = ThreadRunner(self)
        self.data_runner.idle.connect(self._data_done)
        self.state = "idle"  # idle | loading | running | paused
        self.latest: Snapshot | None = None
        self.snapshots = 0
        self._pending_weights: dict | None = None
        self._pending_kl = None
        self._last_map = 0.0
        self._train_config: TrainConfig | None = None
        self._pending_data_spec: DataSpec | None = None
        self._after_data = None  # callable run once the data in flight has arrived
        self._when_loaded: list = []  # callables run once no data load is in flight
        self.data_error: str | None = None  # why the last data load failed (None: it did not)
        self.outcomes: list[RunOutcome] = []
        self._build_ui()
        self._build_menus()
        self.timer = QTimer(self)
        self.timer.setInterval(round(1000 / REPAINT_HZ))
        self.timer.timeout.connect(self.tick)
        self.timer.start()
        self.resize(1480, 920)
        if restore:
            self.load_settings()
        if load:
            self._first_launch_data()

    # -- layout -------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        s = self.session
        self.panel = TrainPanel()
        scroll = QScrollArea()
        scroll.setWidget(self.panel)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        scroll.setFrameShape(QScrollArea.NoFrame)
        self.left_scroll = scroll
        # the Run box (buttons, progress, status) stays in view below the settings, which
        # scroll when the window (or a message banner above it) leaves too little height
        self.panel.layout().removeWidget(self.panel.run_box)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.setSpacing(4)
        ll.addWidget(scroll, 1)
        run = QHBoxLayout()
        run.setContentsMargins(6, 0, 6, 4)  # in line with the groups above it
        run.addWidget(self.panel.run_box)
        ll.addLayout(run)
        left.setMinimumWidth(300)
        left.setMaximumWidth(420)

        # explore tab: latent map | manifold grid, one shared tool row
        self.map = LatentMap(s)
        self.manifold = ManifoldView(s)
        self.dim_x, self.dim_y = QComboBox(), QComboBox()
        self.dim_x.setToolTip("Latent dimension on the horizontal axis of the map and the grid")
        self.dim_y.setToolTip("Latent dimension on the vertical axis of the map and the grid")
        self.grid_n = QSpinBox()
        self.grid_n.setRange(5, 30)
        self.grid_n.setValue(20)
        self.grid_n.setToolTip("Manifold grid size N (N x N decoded images)")
        self.grid_n.setPrefix("grid ")
        explore = QWidget()
        ev = QVBoxLayout(explore)
        ev.setContentsMargins(6, 6, 6, 6)
        bar = QHBoxLayout()
        for w in (QLabel("Plane:  x"), self.dim_x, QLabel("y"), self.dim_y, QLabel("   "),
                  self.grid_n):  # fmt: skip
            bar.addWidget(w)
        bar.addStretch(1)
        bar.addWidget(hint("Drag the cross · click a point or a cell"))
        ev.addLayout(bar)
        split = QSplitter(Qt.Horizontal)
        split.addWidget(titled("Latent map — encoded test set", self.map))
        split.addWidget(titled("Manifold — decoded inverse-CDF grid", self.manifold))
        split.setSizes([500, 500])
        self.explore_split = split
        ev.addWidget(split, 1)

        self.samples = SamplesView(s)
        self.recon = ReconView(s)
        self.interp = InterpolationView(s)
        self.class_row = ClassRowView(s)
        new_samples = QPushButton("New samples")
        new_samples.setToolTip("Draw new z ~ N(0, I)")
        new_samples.clicked.connect(self.samples.resample)
        next_batch = QPushButton("Next images")
        next_batch.setToolTip("Show the next test images")
        next_batch.clicked.connect(self.recon.next_batch)
        gif = QPushButton("Export GIF…")
        gif.setToolTip("Save the interpolation as a looping animated GIF")
        gif.clicked.connect(self.export_gif_dialog)

        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(False)
        self.tabs.addTab(explore, "Explore")
        self.tabs.addTab(self._page(self.samples, "Prior samples z ~ N(0, I)", [new_samples]),
                         "Samples")  # fmt: skip
        self.tabs.addTab(self._page(self.recon, "Test images and their reconstructions",
                                    [next_batch]), "Reconstructions")  # fmt: skip
        self.tabs.addTab(self._page(self.interp, "Interpolation in latent space", [gif]),
                         "Interpolation")  # fmt: skip
        self.tabs.addTab(self._page(self.class_row, "The current z drawn as every class", []),
                         "Class row")  # fmt: skip
        self.views = {
            "manifold": self.manifold, "samples": self.samples, "reconstructions": self.recon,
            "interpolation": self.interp, "class row": self.class_row,
        }  # fmt: skip
        self._tab_views = [[self.manifold], [self.samples], [self.recon], [self.interp],
                           [self.class_row]]  # fmt: skip
        for i in range(self.tabs.count()):
            self.tabs.setTabToolTip(i, f"Ctrl+{i + 1}")

        self.plots = LossPlots()
        csv_btn = QPushButton("Export CSV…")
        csv_btn.setToolTip("Save the loss history as CSV")
        csv_btn.clicked.connect(self.export_csv_dialog)
        plots_box = titled("Training curves", self.plots, [csv_btn])

        centre = QSplitter(Qt.Vertical)
        centre.addWidget(self.tabs)
        centre.addWidget(plots_box)
        centre.setStretchFactor(0, 3)
        centre.setStretchFactor(1, 1)
        centre.setSizes([600, 260])
        self.centre_split = centre

        # right: the current point
        self.preview = _preview = PreviewPane(s)
        self.sliders = LatentSliders(s)
        right = QSplitter(Qt.Vertical)
        right.addWidget(titled("Current z — decoded", _preview))
        right.addWidget(titled("Latent sliders", self.sliders))
        right.setSizes([330, 500])
        right.setMinimumWidth(250)
        self.right_split = right

        main = QSplitter(Qt.Horizontal)
        main.addWidget(left)
        main.addWidget(centre)
        main.addWidget(right)
        main.setStretchFactor(1, 1)
        main.setSizes([330, 850, 300])
        main.setChildrenCollapsible(False)
        self.main_split = main

        self.banner = MessageBar()
        root = QWidget()
        rl = QVBoxLayout(root)
        rl.setContentsMargins(6, 6, 6, 4)
        rl.setSpacing(6)
        rl.addWidget(self.banner)
        rl.addWidget(main, 1)
        self.setCentralWidget(root)
        self.status = self.statusBar()
        self.status_model = QLabel("")
        self.status_model.setObjectName("muted")
        self.status.addPermanentWidget(self.status_model)
        self.banner.shown.connect(lambda lvl, text: self.status.showMessage(text, 8000))

        # wiring
        p = self.panel
        p.startRequested.connect(self.start_training)
        p.continueRequested.connect(lambda: self.start_training(resume=True))
        p.pauseRequested.connect(self.toggle_pause)
        p.stopRequested.connect(self.stop_training)
        p.dataSpecChanged.connect(self._data_choice_changed)
        p.lrEdited.connect(self._live_lr)
        p.betaEdited.connect(self._live_beta)
        p.invalid.connect(lambda m: self.show_message(m, "error"))
        self.dim_x.currentIndexChanged.connect(self._dims_picked)
        self.dim_y.currentIndexChanged.connect(self._dims_picked)
        self.grid_n.valueChanged.connect(self.manifold.set_n)
        self.tabs.currentChanged.connect(lambda _i: self.tick())
        s.structureChanged.connect(self._structure_changed)
        s.dimsChanged.connect(self._sync_dims)
        s.weightsChanged.connect(self._weights_changed)

    def _page(self, view: QWidget, title: str, tools: list[QWidget]) -> QWidget:
        export = QPushButton("Export PNG…")
        export.setToolTip("Save this grid as a PNG (Ctrl+E)")
        export.clicked.connect(self.export_current_dialog)
        page = titled(title, view, [*tools, export])
        page.layout().setContentsMargins(6, 6, 6, 6)
        return page

    def _build_menus(self) -> None:
        mb = self.menuBar()
        f = mb.addMenu("&File")
        self._action(f, "&Open checkpoint…", QKeySequence.Open, self.open_checkpoint_dialog)
        self._action(f, "&Save checkpoint…", QKeySequence.Save, self.save_checkpoint_dialog)
        f.addSeparator()
        ex = f.addMenu("&Export")
        self._action(ex, "Current grid as PNG…", "Ctrl+E", self.export_current_dialog)
        for name in self.views:
            self._action(ex, f"{name.capitalize()} as PNG…", None,
                         lambda _checked=False, n=name: self.export_view_dialog(n))  # fmt: skip
        self._action(ex, "Interpolation as GIF…", "Ctrl+G", self.export_gif_dialog)
        self._action(ex, "Loss history as CSV…", "Ctrl+Shift+E", self.export_csv_dialog)
        f.addSeparator()
        self._action(f, "&Quit", QKeySequence.Quit, self.close)
        t = mb.addMenu("&Train")
        self.act_start = self._action(t, "Start / pause", "Ctrl+T", self.start_or_pause)
        self._action(t, "Continue training", "Ctrl+Shift+T",
                     lambda: self.start_training(resume=True))  # fmt: skip
        self._action(t, "Stop", "Ctrl+.", self.stop_training)
        v = mb.addMenu("&View")
        for i in range(self.tabs.count()):
            self._action(v, self.tabs.tabText(i), f"Ctrl+{i + 1}",
                         lambda _checked=False, i=i: self.tabs.setCurrentIndex(i))  # fmt: skip
        v.addSeparator()
        self._action(v, "Reset z to zero", "Ctrl+R", self.sliders.reset)
        self._action(v, "Sample z from the prior", "Ctrl+P", self.sliders.sample)
        self._action(v, "Log-scale loss plots", "Ctrl+L", self.plots.log_box.toggle)
        h = mb.addMenu("&Help")
        self._action(h, "Keyboard shortcuts", "F1", self.show_shortcuts)
        self._action(h, "About", None, lambda: self.show_message(
            f"{APP_NAME} {__version__}: train a VAE and explore its latent space while it "
            "learns. PyTorch + PySide6 + pyqtgraph.", "info"))  # fmt: skip
        space = QShortcut(QKeySequence(Qt.Key_Space), self)
        space.activated.connect(self.start_or_pause)
        esc = QShortcut(QKeySequence(Qt.Key_Escape), self)
        esc.activated.connect(self.banner.hide)

    def _action(self, menu, text, shortcut, slot) -> QAction:
        a = QAction(text, self)
        if shortcut is not None:
            a.setShortcut(QKeySequence(shortcut))
        a.triggered.connect(slot)
        menu.addAction(a)
        return a

    def show_shortcuts(self) -> None:
        self.show_message(
            "Space / Ctrl+T start or pause · Ctrl+. stop · Ctrl+Shift+T continue · "
            "Ctrl+O open · Ctrl+S save · Ctrl+E export grid · Ctrl+G export GIF · "
            "Ctrl+Shift+E export CSV · Ctrl+1…5 tabs · Ctrl+R zero z · Ctrl+P sample z · "
            "Ctrl+L log scale · arrows move the map cursor (Shift: faster)",
            "info",
        )

    # -- messages -----------------------------------------------------------------------------
    def show_message(self, text: str, level: str = "info", timeout_ms: int = 0) -> None:
        """Non-modal: the banner at the top; the app keeps running."""
        self.banner.show_message(text, level, timeout_ms)

    # -- the repaint timer --------------------------------------------------------------------
    def tick(self) -> None:
        """Apply the latest snapshot and repaint what changed (runs at ~30 Hz).

        While training, at most one expensive view (loss plots, the visible grid, the
        latent map) is redrawn per tick, so their paints land in different event-loop
        passes and no single pass blocks the window for long.
        """
        s = self.session
        training = self.state in ("running", "paused")
        if self._pending_weights is not None:
            w, self._pending_weights = self._pending_weights, None
            try:
                s.load_weights(w)
            except RuntimeError as e:  # mismatched weights: never kill the window
                self.show_message(f"could not show the new weights: {e}", "error")
        if self._pending_kl is not None:
            s.set_kl(self._pending_kl)
            self.plots.set_kl_dims(self._pending_kl)
            self._pending_kl = None
        if self.latest is not None and self._progress_dirty:
            self.panel.show_snapshot(self.latest)
            self._progress_dirty = False
        for v in self.views.values():
            v.training = training
        now = time.perf_counter()
        jobs = [self._refresh_plots, self._refresh_views, self._refresh_map]
        if not training:
            for job in jobs:
                job(now, training)
            return
        for k in range(len(jobs)):  # round robin, one heavy redraw per tick
            job = jobs[(self._next_job + k) % len(jobs)]
            if job(now, training):
                self._next_job = (self._next_job + k + 1) % len(jobs)
                return

    _next_job = 0
    _last_plots = 0.0

    def _refresh_plots(self, now: float, training: bool) -> bool:
        if training and now - self._last_plots < PLOTS_INTERVAL_S:
            return False
        if self.plots.refresh():
            self._last_plots = now
            return True
        return False

    def _refresh_views(self, now: float, training: bool) -> bool:
        done = False
        for v in self._tab_views[self.tabs.currentIndex()]:
            done = v.refresh() or done
        return done

    def _refresh_map(self, now: float, training: bool) -> bool:
        s = self.session
        if s.model is None:
            return False
        if not training:
            return s.refresh_test_latents()
        if s._enc is None and now - self._last_map < MAP_REFRESH_S:
            return False
        if s.refresh_test_latents(chunk=MAP_CHUNK):
            if s._enc is None:
                self._last_map = now
            return True
        return False

    _progress_dirty = False

    def _weights_changed(self) -> None:
        pass  # views mark themselves dirty; the preview redraws itself

    # -- data ---------------------------------------------------------------------------------
    def _first_launch_data(self) -> None:
        """Start with data that is here: MNIST only if cached, else what needs no network."""
        try:
            spec = self.panel.data_spec()
        except DataError:
            spec = DataSpec(source="shapes")
            self.panel.source.setCurrentIndex(self.panel.source.findData("shapes"))
        if spec.source in ("mnist", "kmnist", "fashion-mnist") and not is_cached(spec.source):
            fallback = "fashion-mnist" if debian_fashion_available() else "shapes"
            self.panel.source.blockSignals(True)
            self.panel.source.setCurrentIndex(self.panel.source.findData(fallback))
            self.panel.source.blockSignals(False)
            self.panel._source_changed()
            self.show_message(
                f"{SOURCE_NAMES[spec.source]} is not downloaded on this computer yet, so "
                f"Latent Explorer starts with {SOURCE_NAMES[fallback]}, which needs no "
                f"internet. To use {SOURCE_NAMES[spec.source]}, pick it under Data while "
                "online. Press Train to start.",
                "info",
            )
        self.load_data()

    def _data_choice_changed(self) -> None:
        if self.state == "idle":
            self.load_data()

    def load_data(self, spec: DataSpec | None = None, then=None) -> bool:
        """Load the chosen data in a worker thread; ``then`` runs once it has arrived."""
        try:
            spec = spec or self.panel.data_spec()
        except DataError as e:
            self.data_error = str(e)
            self.show_message(self.data_error, "warning")
            return False
        if self.session.data is not None and self.session.data_spec == spec:
            if then:
                then()
            return True
        if self.data_runner.running:
            self._pending_data_spec, self._after_data = spec, then
            return True
        if self.data_runner.closed:
            return False
        self._after_data = then
        self.data_error = None
        self.panel.data_info.setText(f"Loading {spec.describe()}…")
        worker = DataWorker(spec)

        def connect(w):
            w.loaded.connect(self._data_loaded)
            w.failed.connect(self._data_failed)

        self.data_runner.start(worker, connect)
        if self.state == "idle":
            self.panel.set_state("loading", self.session.model is not None)
            self.state = "loading"
        return True

    def _data_loaded(self, data, spec) -> None:
        if self._pending_data_spec is not None and self._pending_data_spec != spec:
            return  # superseded by a newer choice; the next load is queued
        self.session.set_data(data, spec)
        c, h, w = data.image_shape
        classes = f", {data.num_classes} classes" if data.num_classes else ", no labels"
        self.panel.data_info.setText(
            f"{len(data.train_x):,} train / {len(data.test_x):,} test · {c}×{h}×{w}{classes}"
        )
        s = self.session
        fits = s.model is not None and tuple(s.model.config.image_shape) == data.image_shape
        if not fits or (s.conditional and s.model.num_classes != data.num_classes):
            self._preview_model(data)
        elif s.kl_per_dim is None and s.model.is_variational:
            self._compute_kl()
        self._update_status()

    def _preview_model(self, data) -> None:
        """An untrained model for the chosen settings, so every view is live before Train."""
        try:
            kw = self.panel.model_kwargs()
            mc = model_config_for(data, **kw)
        except (ConfigError, ValueError):
            kw = dict(self.panel.model_kwargs(), model="vae", arch="mlp")
            try:
                mc = model_config_for(data, **kw)
            except (ConfigError, ValueError):
                return
        torch.manual_seed(self.panel.seed.value())
        self.session.set_model(mc)
        self.session.history = type(self.session.history)()
        self.session.epochs_done = 0
        self.session.optimizer_state = None
        self.plots.clear()

    def _compute_kl(self) -> None:
        s = self.session
        n = min(2000, len(s.data.test_x))
        y = s.data.test_y[:n] if s.conditional else None
        stats = elbo_stats(s.model, s.data.test_x[:n], y)
        s.set_kl(stats.kl_per_dim)
        self.plots.set_kl_dims(stats.kl_per_dim)
        self.plots.refresh()

    def _data_failed(self, message: str, spec) -> None:
        if self._pending_data_spec is not None and self._pending_data_spec != spec:
            return
        self.data_error = gui_data_message(message)
        self.show_message(self.data_error, "error")
        self.panel.data_info.setText("Could not load this data (see the message above).")
        self._after_data = None

    def _data_done(self) -> None:
        pending, self._pending_data_spec = self._pending_data_spec, None
        then, self._after_data = self._after_data, None
        if self.state == "loading":
            self.state = "idle"
            self.panel.set_state("idle", self.session.model is not None)
        if pending is not None and pending != self.session.data_spec:
            self.load_data(pending, then)
        elif then is not None and self.session.data is not None:
            then()
        if not self.data_runner.running:
            waiting, self._when_loaded = self._when_loaded, []
            for job in waiting:
                job()

    # -- training -----------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """A data load or a run is in flight (until the GUI has handled its end)."""
        return self.trainer_runner.running or self.data_runner.running

    def start_or_pause(self) -> None:
        if self.state in ("running", "paused"):
            self.toggle_pause()
        elif self.state == "idle":
            self.start_training()

    def start_training(self, resume: bool = False) -> bool:
        """Start a new run (or continue the current model with ``resume``)."""
        if self.trainer_runner.running or self.state in ("running", "paused"):
            return False
        s = self.session
        try:
            spec = self.panel.data_spec()
            tc = self.panel.train_config()
            kwargs = self.panel.model_kwargs()
        except (DataError, ConfigError) as e:
            self.show_message(str(e), "error")
            return False
        if resume and s.model is None:
            self.show_message("There is no model to continue yet; press Train.", "warning")
            return False
        if self.data_runner.running:  # wait for the data in flight, then start
            self._after_data = lambda: self.start_training(resume)
            self._pending_data_spec = spec
            return True
        data = s.data if (s.data is not None and s.data_spec == spec) else None
        if data is not None and not resume:
            try:
                model_config_for(data, **kwargs)
            except ConfigError as e:
                self.show_message(str(e), "error")
                return False
        job = TrainJob(data_spec=spec, train_config=tc, model_kwargs=kwargs, data=data,
                       threads=training_threads())  # fmt: skip
        if resume:
            job.model_config = s.model_config
            job.weights = {k: v.clone() for k, v in s.model.state_dict().items()}
            job.history = s.history
            job.optimizer_state = s.optimizer_state
            job.epochs_done = s.epochs_done
        self._train_config = tc
        self._resume = resume
        self.control = TrainControl()
        worker = TrainingWorker(job, self.control)

        def connect(w):
            w.dataLoaded.connect(self._data_loaded)
            w.modelBuilt.connect(self._model_built)
            w.snapshot.connect(self._on_snapshot)
            w.outcome.connect(self._on_outcome)

        self.latest = None
        self.snapshots = 0
        self.trainer_runner.start(worker, connect)
        self.state = "running"
        self.panel.set_state("running")
        if data is None:
            self.panel.set_state("loading")
            self.panel.stop_btn.setEnabled(True)
        self.banner.hide()
        self.status.showMessage("Training…" if data else "Loading data, then training…", 4000)
        return True

    def _model_built(self, config, weights) -> None:
        s = self.session
        s.set_model(config, weights)
        self.panel.set_state("running")
        if not self._resume:
            s.history = type(s.history)()
            s.epochs_done = 0
            s.optimizer_state = None
            s.set_kl(None)
            self.plots.clear()
        self._update_status()

    def _on_snapshot(self, snap: Snapshot) -> None:
        """Queued from the worker thread: keep the latest, never decode here."""
        self.latest = snap
        self.snapshots += 1
        self._progress_dirty = True
        h = self.session.history
        if snap.step > h.last_step:
            h.add_snapshot(snap)
        self.plots.add_snapshot(snap)
        if snap.weights is not None:
            self._pending_weights = snap.weights
        if snap.test is not None:
            h.add_epoch(snap.test)
            self.session.epochs_done = snap.test.epoch
            self._pending_kl = snap.test.kl_per_dim
        if snap.paused and self.state == "running":
            self.state = "paused"
            self.panel.set_state("paused")

    def _on_outcome(self, out: RunOutcome) -> None:
        self.outcomes.append(out)
        s = self.session
        if out.weights is not None and s.model is not None:
            self._pending_weights = None
            try:
                s.load_weights(out.weights)
            except RuntimeError:
                pass
        if out.history is not None:
            s.history = out.history
            s.optimizer_state = out.optimizer_state
            s.epochs_done = out.epochs_done
        self.state = "idle"
        self.panel.set_state("idle", s.model is not None)
        if self.latest is not None:
            # the run box and the status bar give the same, run-average throughput
            avg = out.fit.images_per_second if out.fit is not None else None
            self.panel.show_snapshot(self.latest, average_ips=avg)
        self._progress_dirty = False
        if out.error:
            self.show_message(gui_data_message(out.error), "error")
            self.panel.show_idle("stopped: see the message above")
        elif out.fit is not None:
            f = out.fit
            verb = "Stopped" if f.stopped else "Finished"
            self.status.showMessage(
                f"{verb}: {f.epochs_done} epochs, {f.step:,} steps in {fmt_seconds(f.seconds)} "
                f"on {f.device} ({f.images_per_second:,.0f} img/s on average)", 15000,
            )  # fmt: skip
        self._update_status()
        self.tick()

    def toggle_pause(self) -> None:
        c = self.control
        if c is None or not self.trainer_runner.running:
            return
        if c.paused:
            c.resume()
            self.state = "running"
            self.panel.set_state("running")
        else:
            c.pause()
            self.state = "paused"
            self.panel.set_state("paused")

    def stop_training(self) -> None:
        if self.control is not None:
            self.control.stop()
        self.panel.stop_btn.setEnabled(False)

    def _live_lr(self, lr: float) -> None:
        if self.control is not None and self.trainer_runner.running:
            self.control.set_lr(lr)
            self.show_message(f"Learning rate set to {lr:g} from the next step.", "info", 4000)

    def _live_beta(self, beta: float) -> None:
        if self.control is not None and self.trainer_runner.running:
            self.control.set_beta(beta)
            self.show_message(f"β set to {beta:g} from the next step.", "info", 4000)

    # -- dims ---------------------------------------------------------------------------------
    def _structure_changed(self) -> None:
        d = self.session.latent_dim
        for combo in (self.dim_x, self.dim_y):
            combo.blockSignals(True)
            combo.clear()
            for i in range(d):
                combo.addItem(f"z{i}", i)
            combo.blockSignals(False)
        self._sync_dims(*self.session.dims)

    def _sync_dims(self, dx: int, dy: int) -> None:
        for combo, v in ((self.dim_x, dx), (self.dim_y, dy)):
            combo.blockSignals(True)
            combo.setCurrentIndex(v)
            combo.blockSignals(False)

    def _dims_picked(self) -> None:
        dx, dy = self.dim_x.currentIndex(), self.dim_y.currentIndex()
        if dx < 0 or dy < 0:
            return
        if dx == dy and self.session.latent_dim > 1:
            # keep the two axes different: swap instead
            ox, oy = self.session.dims
            dx, dy = (oy, dy) if self.sender() is self.dim_y else (dx, ox)
            if dx == dy:
                dy = (dx + 1) % self.session.latent_dim
            self._sync_dims(dx, dy)
        self.session.set_dims(dx, dy)

    def _update_status(self) -> None:
        s = self.session
        if s.model is None:
            self.status_model.setText("")
            return
        mc = s.model_config
        data = s.data.name if s.data is not None else "no data"
        self.status_model.setText(
            f"{mc.model.upper()} · {mc.arch} · {mc.latent_dim}-D latent · {mc.likelihood} · "
            f"{data} · {s.epochs_done} epochs trained"
        )

    # -- checkpoints --------------------------------------------------------------------------
    def save_checkpoint(self, path: str | os.PathLike) -> Path | None:
        s = self.session
        if s.model is None:
            self.show_message("There is no model to save yet.", "warning")
            return None
        path = Path(path)
        if path.suffix != SUFFIX:
            path = path.with_suffix(SUFFIX)
        tc = self._train_config
        if tc is None:
            try:
                tc = self.panel.train_config()
            except ConfigError:
                tc = TrainConfig()
        try:
            out = save_checkpoint(
                path, s.model, tc, data_spec=s.data_spec, class_names=s.class_names,
                history=s.history,
                optimizer_state=None if self.state != "idle" else s.optimizer_state,
                epochs_done=s.epochs_done,
            )  # fmt: skip
        except CheckpointError as e:
            self.show_message(str(e), "error")
            return None
        self.show_message(f"Saved {out}", "info", 6000)
        self.settings.setValue("last_dir", str(out.parent))
        return out

    def open_checkpoint(self, path: str | os.PathLike) -> bool:
        """Open a checkpoint; while data is still loading, open it once the load has ended."""
        if self.state in ("running", "paused") or self.trainer_runner.running:
            self.show_message("Stop training before opening a checkpoint.", "warning")
            return False
        if self.state == "loading" or self.data_runner.running:
            self._when_loaded.append(lambda: self.open_checkpoint(path))
            self.show_message(
                f"Still loading data…; {Path(path).name} opens as soon as it has arrived.",
                "info",
            )
            return True
        try:
            ck = load_checkpoint(path)
        except CheckpointError as e:
            self.show_message(str(e), "error")
            return False
        s = self.session
        self.panel.show_config(ck.model_config, ck.train_config, ck.data_spec)
        self._train_config = ck.train_config
        s.set_model(ck.model_config, ck.model.state_dict())
        s.history = ck.history
        s.optimizer_state = ck.optimizer_state
        s.epochs_done = ck.epochs_done
        s.set_kl(None)
        self.plots.set_history(ck.history)
        self.settings.setValue("last_dir", str(Path(path).parent))
        msg = f"Opened {Path(path).name}: {ck.epochs_done} epochs trained."
        if ck.data_spec is not None:
            if s.data is not None and s.data_spec == ck.data_spec:
                self._compute_kl()
            else:
                self.load_data(ck.data_spec)
            msg += f" Data: {ck.data_spec.describe()}. Press Continue to train it further."
        else:
            msg += " The file names no data; choose data of the same image size to train it."
        self.show_message(msg, "info", 10000)
        self._update_status()
        return True

    def _dir(self) -> str:
        return str(self.settings.value("last_dir", str(Path.home())))

    def save_checkpoint_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save checkpoint", str(Path(self._dir()) / f"model{SUFFIX}"),
            f"Checkpoints (*{SUFFIX})",
        )  # fmt: skip
        if path:
            self.save_checkpoint(path)

    def open_checkpoint_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open checkpoint", self._dir(), f"Checkpoints (*{SUFFIX});;All files (*)"
        )
        if path:
            self.open_checkpoint(path)

    # -- exports ------------------------------------------------------------------------------
    def export_view(self, name: str, path: str | os.PathLike) -> bool:
        from trainer.export import ExportError  # torchvision is slow to import: not at start

        try:
            self.views[name].export_png(path)
        except (ExportError, ValueError, OSError) as e:
            self.show_message(str(e), "error")
            return False
        self.show_message(f"Saved the {name} to {path}", "info", 6000)
        return True

    def export_gif(self, path: str | os.PathLike) -> bool:
        from trainer.export import ExportError

        try:
            self.interp.export_gif(path)
        except (ExportError, ValueError, OSError) as e:
            self.show_message(str(e), "error")
            return False
        self.show_message(f"Saved the interpolation to {path}", "info", 6000)
        return True

    def export_csv(self, path: str | os.PathLike) -> bool:
        from trainer.export import ExportError, write_history_csv

        try:
            write_history_csv(self.session.history, path)
        except (ExportError, OSError) as e:
            self.show_message(str(e), "error")
            return False
        self.show_message(f"Saved the loss history to {path}", "info", 6000)
        return True

    def current_view_name(self) -> str:
        return list(self.views)[self.tabs.currentIndex()]

    def _ask_path(self, title: str, name: str, filt: str) -> str:
        path, _ = QFileDialog.getSaveFileName(self, title, str(Path(self._dir()) / name), filt)
        if path:
            self.settings.setValue("last_dir", str(Path(path).parent))
        return path

    def export_view_dialog(self, name: str) -> None:
        path = self._ask_path(f"Export {name}", f"{name.replace(' ', '-')}.png", "PNG (*.png)")
        if path:
            self.export_view(name, path)

    def export_current_dialog(self) -> None:
        self.export_view_dialog(self.current_view_name())

    def export_gif_dialog(self) -> None:
        path = self._ask_path("Export interpolation", "interpolation.gif", "GIF (*.gif)")
        if path:
            self.export_gif(path)

    def export_csv_dialog(self) -> None:
        path = self._ask_path("Export loss history", "history.csv", "CSV (*.csv)")
        if path:
            self.export_csv(path)

    # -- settings -----------------------------------------------------------------------------
    def save_settings(self) -> None:
        st = self.settings
        st.setValue("window/geometry", self.saveGeometry())
        st.setValue("window/state", self.saveState())
        for name in ("main_split", "centre_split", "right_split", "explore_split"):
            st.setValue(f"window/{name}", getattr(self, name).saveState())
        st.setValue("window/tab", self.tabs.currentIndex())
        st.setValue("view/grid_n", self.grid_n.value())
        st.setValue("view/log", self.plots.log_box.isChecked())
        st.setValue("view/smooth", self.plots.smooth_box.isChecked())
        st.setValue("view/order_by_kl", self.sliders.order_box.isChecked())
        self.panel.save_settings(st)
        st.sync()

    def load_settings(self) -> None:
        st = self.settings
        geo = st.value("window/geometry")
        if isinstance(geo, QByteArray) and not geo.isEmpty():
            self.restoreGeometry(geo)
        state = st.value("window/state")
        if isinstance(state, QByteArray):
            self.restoreState(state)
        for name in ("main_split", "centre_split", "right_split", "explore_split"):
            v = st.value(f"window/{name}")
            if isinstance(v, QByteArray):
                getattr(self, name).restoreState(v)
        self.tabs.setCurrentIndex(_int(st.value("window/tab"), 0))
        self.grid_n.setValue(_int(st.value("view/grid_n"), 20))
        self.plots.log_box.setChecked(_bool(st.value("view/log"), False))
        self.plots.smooth_box.setChecked(_bool(st.value("view/smooth"), True))
        self.sliders.order_box.setChecked(_bool(st.value("view/order_by_kl"), False))
        self.panel.load_settings(st)

    # -- shutdown -----------------------------------------------------------------------------
    def shutdown(self, timeout_ms: int = 2000) -> bool:
        """Stop any run and wait for the threads; True if they all ended in time."""
        self.timer.stop()
        if self.control is not None:
            self.control.stop()
        deadline = time.perf_counter() + timeout_ms / 1000
        ok = True
        for runner in (self.trainer_runner, self.data_runner):
            left = max(1, round((deadline - time.perf_counter()) * 1000))
            ok = runner.wait(left) and ok
        return ok

    def closeEvent(self, ev) -> None:
        try:
            self.save_settings()
        finally:
            self.shutdown(2000)
        super().closeEvent(ev)


def _int(v, default: int) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return default


def _bool(v, default: bool) -> bool:
    if v is None:
        return default
    if isinstance(v, str):
        return v.lower() in ("1", "true", "yes")
    return bool(v)


def training_threads() -> int:
    """Leave one core to the window: on 2 cores, train with 1 thread."""
    n = os.cpu_count() or 1
    return max(1, n - 1)
