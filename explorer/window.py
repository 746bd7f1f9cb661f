"""The Latent Explorer main window: layout, menus and wiring.

Data flows one way: dataset -> worker thread (training loop) -> snapshot signal -> the run
controller (``explorer.run``: the one owner of the run's state) -> Session (the GUI's own
model copy) -> views. A 30 Hz timer applies the latest weights and repaints only what
changed; cheap single-image views (the preview under the sliders) redraw at once on input.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QIcon, QImage, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from explorer import __version__, dialogs
from explorer.evaluation import Evaluation
from explorer.film import FilmRecorder
from explorer.places import Places
from explorer.project import ProjectRuns
from explorer.recovery import Recovery, autosaved_at, forget, orphans, run_of
from explorer.run import RunController, upper_first
from explorer.run_status import RUNNING, RunState, RunStatus
from explorer.settings import open_settings
from explorer.state import Session
from explorer.widgets.common import MessageBar, hint, titled
from explorer.widgets.drawing import DrawingPad
from explorer.widgets.evaluation import EvaluationControls
from explorer.widgets.examples import ExamplesDialog
from explorer.widgets.film import FilmView
from explorer.widgets.inputs import RangeSpinBox
from explorer.widgets.latent_map import LatentMap
from explorer.widgets.plane import PlanePicker
from explorer.widgets.plots import LossPlots
from explorer.widgets.posterior import PosteriorView
from explorer.widgets.runs import RunsView
from explorer.widgets.sliders import LatentSliders
from explorer.widgets.train_panel import TrainPanel
from explorer.widgets.traversals import TraversalView
from explorer.widgets.views import (
    ArithmeticView,
    ClassRowView,
    InterpolationView,
    ManifoldView,
    PreviewPane,
    ReconView,
    SamplesView,
)
from explorer.worker import collect_garbage_on_gui_thread
from trainer.checkpoint import SUFFIX
from trainer.config import (
    ARCH_TITLES,
    FILM_MEMORY_MB,
    LIKELIHOOD_TITLES,
    MODEL_TITLES,
    TRAVERSAL_COLUMNS,
    ConfigError,
)
from trainer.data import (
    DataError,
    DataSpec,
    cache_dir,
    debian_fashion_available,
    is_cached,
    same_data,
)
from trainer.examples import FIRST as FIRST_EXAMPLE
from trainer.examples import example_path, examples_dir
from trainer.imaging import ImageError
from trainer.paths import icon_file
from trainer.runs import default_project
from trainer.threads import GUI_THREADS

APP_NAME = "Latent Explorer"
ORG = "latent-explorer"
REPAINT_HZ = 30
MAP_REFRESH_S = 1.0  # re-encode the map's test points at most this often while training
GIL_SWITCH_S = 0.0005  # see MainWindow.__init__
PLOTS_INTERVAL_S = 0.25  # redraw the loss curves at most 4 times a second while training
MAP_CHUNK = 400  # test images encoded per tick while training
ICON = icon_file()


def default_settings() -> QSettings:
    return open_settings()  # the user's INI file, if it is a regular file (or none yet)


class MainWindow(QMainWindow):
    def __init__(
        self,
        settings: QSettings | None = None,
        restore: bool = True,
        load: bool = True,
        recovery_folder: Path | None = None,
    ) -> None:
        """``load=False``: do not load the remembered data (the caller picks data first)."""
        super().__init__()
        self.settings = settings if settings is not None else default_settings()
        self.setWindowTitle(APP_NAME)
        if ICON.exists():
            self.setWindowIcon(QIcon(str(ICON)))
        # torch's thread count is per thread: the GUI decodes small batches with one
        # thread, leaving the other cores to the training thread (trainer.threads)
        torch.set_num_threads(GUI_THREADS)
        # Qt calls back into Python many times per repaint; each call must win the GIL
        # from the training thread, which keeps it up to the switch interval (5 ms by
        # default). A short interval keeps a repaint from waiting behind it.
        sys.setswitchinterval(GIL_SWITCH_S)
        collect_garbage_on_gui_thread()  # never on the training thread (see there)
        self.session = Session(self)
        self.places = Places(self.settings, lambda: self._own_folders())
        self.film = FilmRecorder(self.session, self)
        self.ask_on_close = True  # False for scripted runs (--quit-after, --screenshot)
        self._build_ui()
        self.panel.places = self.runs_view.places = self.places
        self.run = RunController(self.session, self.panel, self, film=self.film)
        self.run.confirm_discard = self.confirm_discard
        self.run.confirm_fine_tune = lambda model, own, chosen: dialogs.ask_fine_tune(
            self, model, own, chosen
        )
        self.recovery = Recovery(recovery_folder)
        if self.recovery.usable:
            self.run.autosave_path = self.recovery.path
        self._wire()
        self._build_menus()
        self.timer = QTimer(self)
        self.timer.setInterval(round(1000 / REPAINT_HZ))
        self.timer.timeout.connect(self.tick)
        self.timer.start()
        self.resize(1480, 920)
        # nothing remembered (or asked to forget it): a first launch, which shows an example
        first = not restore or self.settings.value("train/source") is None
        if restore:
            self.load_settings()
        self.show_status(self.run.status)
        if load:
            self._first_launch_data(first)
        if getattr(self.settings, "problem", None):  # a named pipe as the settings file, say
            QTimer.singleShot(0, lambda: self.show_message(self.settings.problem, "warning"))
        QTimer.singleShot(0, self.offer_recovery)

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
        # scroll when the window leaves too little height
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
        self.left = left

        # explore tab: latent map | manifold grid, one shared tool row
        self.map = LatentMap(s)
        self.manifold = ManifoldView(s)
        self.plane_picker = PlanePicker(s)
        self.plane_mode = self.plane_picker.mode
        self.dim_x, self.dim_y = self.plane_picker.dim_x, self.plane_picker.dim_y
        self.grid_n = RangeSpinBox(5, 30, 20, "Manifold grid size N (N x N images)", "Grid size")
        self.grid_n.setPrefix("grid ")
        explore = QWidget()
        ev = QVBoxLayout(explore)
        ev.setContentsMargins(6, 6, 6, 6)
        bar = QHBoxLayout()
        for w in (self.plane_picker, QLabel("   "), self.grid_n):
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
        self.traversals = TraversalView(s)
        lo, hi = TRAVERSAL_COLUMNS
        self.trav_columns = RangeSpinBox(lo, hi, 11, f"Values per row ({lo} to {hi})", "Columns")
        self.trav_columns.setSuffix(" columns")
        self.trav_columns.valueChanged.connect(self.traversals.set_columns)
        self.trav_columns.refused.connect(lambda m: self.show_message(m, "warning", 8000))
        trav_gif = QPushButton("Export GIF…")
        trav_gif.setToolTip("Save every dimension's sweep as one looping animated GIF")
        trav_gif.clicked.connect(self.export_traversal_gif_dialog)
        self.posterior = PosteriorView(s)
        self.arithmetic = ArithmeticView(s)
        self.drawing = DrawingPad(s)
        folder = self.settings.value("runs/project")
        self.projects = ProjectRuns(Path(folder) if isinstance(folder, str) and folder else None,
                                    self)  # fmt: skip
        self.film.kept = self.projects.film_for  # a run opened again brings its film
        self.runs_view = RunsView(self.projects, self.open_checkpoint)
        self.runs_view.exportRequested.connect(self.export_runs)
        self.film_view = FilmView(self.film)
        self.film_view.exportRequested.connect(self.export_film_dialog)

        self.tabs = QTabWidget()
        # eleven tabs must neither widen the window nor hide behind scroll arrows: at the
        # default size every title shows whole; a narrower window shortens them ("Interpo…")
        self.tabs.setUsesScrollButtons(False)
        self.tabs.tabBar().setElideMode(Qt.ElideRight)
        self.views = {
            "manifold": self.manifold, "samples": self.samples, "reconstructions": self.recon,
            "interpolation": self.interp, "class row": self.class_row,
            "traversals": self.traversals, "posterior vs prior": self.posterior,
            "arithmetic": self.arithmetic,
        }  # fmt: skip
        self.export_buttons: dict[str, QPushButton] = {}
        self.tabs.addTab(explore, "Explore")
        self.tabs.addTab(self._page("samples", "Prior samples z ~ N(0, I)", [new_samples]),
                         "Samples")  # fmt: skip
        self.tabs.addTab(self._page("reconstructions", "Test images and their reconstructions",
                                    [next_batch]), "Reconstructions")  # fmt: skip
        self.tabs.addTab(self._page("interpolation", "Interpolation in latent space", [gif]),
                         "Interpolation")  # fmt: skip
        self.tabs.addTab(self._page("class row", "The current z drawn as every class", []),
                         "Class row")  # fmt: skip
        self.tabs.addTab(self._page("traversals", "Each dimension swept, by KL",
                                    [self.trav_columns, trav_gif]), "Traversals")  # fmt: skip
        self.tabs.addTab(self._page("posterior vs prior", "Where the test set is encoded, "
                                    "against N(0, I), on the map's plane", []),
                         "Posterior")  # fmt: skip
        self.tabs.addTab(self._page("arithmetic", "a − b + c", [self.arithmetic.random_btn,
                                    self.arithmetic.use_btn]), "Arithmetic")  # fmt: skip
        draw_page = titled("Draw: every stroke is encoded", self.drawing)
        draw_page.layout().setContentsMargins(6, 6, 6, 6)
        self.tabs.addTab(draw_page, "Draw")
        runs_page = titled("Every run kept in the project, side by side", self.runs_view)
        runs_page.layout().setContentsMargins(6, 6, 6, 6)
        self.tabs.addTab(runs_page, "Runs")
        film_page = titled("The training film: how the latent space formed", self.film_view)
        film_page.layout().setContentsMargins(6, 6, 6, 6)
        self.tabs.addTab(film_page, "Film")
        self._tab_views = [[self.manifold], [self.samples], [self.recon], [self.interp],
                           [self.class_row], [self.traversals], [self.posterior],
                           [self.arithmetic], [self.drawing.classes], [], []]  # fmt: skip
        for i in range(self.tabs.count()):
            self.tabs.setTabToolTip(i, f"{TAB_TITLES.get(i, self.tabs.tabText(i))} "
                                       f"({tab_shortcut(i)})")  # fmt: skip

        self.plots = LossPlots(s)
        csv_btn = QPushButton("Export CSV…")
        csv_btn.setToolTip("Save the loss history as CSV")
        csv_btn.clicked.connect(self.export_csv_dialog)
        self.evaluation = Evaluation(s, self)
        self.eval_controls = EvaluationControls(self.evaluation, lambda: self.run.running)
        curves = QWidget()
        cl = QVBoxLayout(curves)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.setSpacing(2)
        cl.addWidget(self.eval_controls.result)
        cl.addWidget(self.plots, 1)
        plots_box = titled("Training curves", curves, [self.eval_controls, csv_btn])

        # the message bar floats over the bottom of the middle column: it never squeezes the
        # settings on the left into a scroll bar, nor moves a view under the pointer
        self.banner = MessageBar()
        centre = QSplitter(Qt.Vertical)
        centre.addWidget(self.tabs)
        centre.addWidget(plots_box)
        centre.setStretchFactor(0, 3)
        centre.setStretchFactor(1, 1)
        centre.setSizes([600, 260])
        self.centre_split = centre
        middle = QWidget()
        ml = QVBoxLayout(middle)
        ml.setContentsMargins(0, 0, 0, 0)
        ml.setSpacing(6)
        ml.addWidget(centre, 1)
        self.banner.float_over(middle)

        # right: the current point
        self.preview = PreviewPane(s)
        self.sliders = LatentSliders(s)
        right = QSplitter(Qt.Vertical)
        right.addWidget(titled("Current z — decoded", self.preview))
        right.addWidget(titled("Latent sliders", self.sliders))
        right.setSizes([330, 500])
        right.setMinimumWidth(250)
        self.right_split = right

        main = QSplitter(Qt.Horizontal)
        main.addWidget(left)
        main.addWidget(middle)
        main.addWidget(right)
        main.setStretchFactor(1, 1)
        main.setSizes([310, 900, 270])
        main.setChildrenCollapsible(False)
        self.main_split = main

        root = QWidget()
        rl = QVBoxLayout(root)
        rl.setContentsMargins(6, 6, 6, 4)
        rl.addWidget(main, 1)
        self.setCentralWidget(root)
        self.status = self.statusBar()
        self.status_run = QLabel("")  # the run's own line (hidden while a message shows)
        self.status.addWidget(self.status_run, 1)
        self.status_model = QLabel("")
        self.status_model.setObjectName("muted")
        self.status.addPermanentWidget(self.status_model)
        # clicking a plot or an image takes the keyboard from a text field (Space pauses)
        for w in (self.map.plot, self.manifold.plot, self.plots.loss_plot, self.plots.kl_plot,
                  self.plots.dim_plot, self.preview.pane, self.traversals.plot, *[v.pane for v in
                  (self.samples, self.recon, self.interp, self.class_row)]):  # fmt: skip
            w.setFocusPolicy(Qt.ClickFocus)

    def _page(self, name: str, title: str, tools: list[QWidget]) -> QWidget:
        export = QPushButton("Export PNG…")
        export.setToolTip("Save this grid as a PNG (Ctrl+E)")
        export.clicked.connect(self.export_current_dialog)
        self.export_buttons[name] = export
        page = titled(title, self.views[name], [*tools, export])
        page.layout().setContentsMargins(6, 6, 6, 6)
        return page

    def _wire(self) -> None:
        p, s, r = self.panel, self.session, self.run
        p.startRequested.connect(self.start_training)
        p.continueRequested.connect(lambda n: self.start_training(resume=True, epochs=n))
        p.pauseRequested.connect(r.toggle_pause)
        p.stopRequested.connect(r.stop)
        p.dataSpecChanged.connect(self._data_choice_changed)
        p.lrEdited.connect(r.set_lr)
        p.betaEdited.connect(r.set_beta)
        p.invalid.connect(lambda m: self.show_message(m, "error", topic="settings"))
        p.corrected.connect(lambda m: self.show_message(m, "warning", 8000, topic="corrected"))
        p.edited.connect(self._settings_edited)
        p.edited.connect(r.refresh)  # (what Train and Continue would do)
        r.changed.connect(self.show_status)
        r.notice.connect(lambda lvl, text, topic: self.show_message(text, lvl, topic=topic))
        r.resolved.connect(self.banner.resolve)
        r.runEnded.connect(lambda continued: self.projects.record_trained(
            self.run.write_copy, continued, self.film.current(), s.trained_data()))  # fmt: skip
        r.runEnded.connect(lambda _continued: self._note_run())  # (the run it now is)
        self.projects.problem.connect(lambda m: self.show_message(m, "warning", topic="runs"))
        self.projects.changed.connect(self._project_changed)
        chosen = self.settings.value("runs/selected")  # the comparison of the last session
        if isinstance(chosen, str):
            chosen = [chosen]
        if isinstance(chosen, list):
            self.runs_view.select([str(c) for c in chosen])
        self.runs_view.table.itemSelectionChanged.connect(
            lambda: self.settings.setValue("runs/selected", self.runs_view.selected_ids())
        )
        self.evaluation.finished.connect(self.projects.set_metrics)
        self.film.exported.connect(self._film_exported)
        s.historyReset.connect(self._model_replaced)
        self.grid_n.valueChanged.connect(self.manifold.set_n)
        self.grid_n.refused.connect(lambda m: self.show_message(m, "warning", 8000))
        self.sliders.refused.connect(lambda m: self.show_message(m, "warning", 8000))
        self.tabs.currentChanged.connect(lambda _i: self.tick())
        for sig in (s.structureChanged, s.historyReset, s.savedChanged, s.dataChanged,
                    s.epochsChanged, s.stepped):  # fmt: skip
            sig.connect(self._describe_model)
        s.structureChanged.connect(self._update_exports)
        s.savedChanged.connect(self._saved_changed)
        self._update_exports()

    def _build_menus(self) -> None:
        mb = self.menuBar()
        f = mb.addMenu("&File")
        self._action(f, "&Open checkpoint…", QKeySequence.Open, self.open_checkpoint_dialog)
        self._action(f, "&Save checkpoint…", QKeySequence.Save, self.save_checkpoint_dialog)
        self._action(f, "E&xamples…", "Ctrl+Shift+O", self.show_examples)
        f.addSeparator()
        ex = f.addMenu("&Export")
        self._action(ex, "Current grid as PNG…", "Ctrl+E", self.export_current_dialog)
        self.export_actions = {}
        for name in self.views:
            self.export_actions[name] = self._action(
                ex, f"{name.capitalize()} as PNG…", None,
                lambda _checked=False, n=name: self.export_view_dialog(n),
            )  # fmt: skip
        self._action(ex, "Interpolation as GIF…", "Ctrl+G", self.export_gif_dialog)
        self._action(ex, "Traversals as GIF…", None, self.export_traversal_gif_dialog)
        self._action(ex, "Training film as GIF or MP4…", "Ctrl+Shift+G", self.export_film_dialog)
        self._action(ex, "Loss history as CSV…", "Ctrl+Shift+E", self.export_csv_dialog)
        f.addSeparator()
        self._action(f, "&Quit", QKeySequence.Quit, self.close)
        t = mb.addMenu("&Train")
        self.act_start = self._action(t, "Start / pause", "Ctrl+T", self.start_or_pause)
        self.act_continue = self._action(t, "Continue training", "Ctrl+Shift+T",
                                         lambda: self.start_training(resume=True))  # fmt: skip
        self.act_stop = self._action(t, "Stop", "Ctrl+.", self.run.stop)
        t.addSeparator()
        self._action(t, "Evaluate log-likelihood", "Ctrl+Shift+L", self.evaluate)
        v = mb.addMenu("&View")
        for i in range(self.tabs.count()):  # Ctrl+1 to Ctrl+9, then Ctrl+0, Ctrl+Shift+F
            self._action(v, self.tabs.tabText(i), tab_shortcut(i),
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
        paste = QShortcut(QKeySequence.Paste, self)
        paste.activated.connect(self.paste_picture)
        self.setAcceptDrops(True)  # a picture dropped on the window is encoded

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
            "Ctrl+Shift+L evaluate · Ctrl+O open · Ctrl+Shift+O examples · Ctrl+S save · "
            "Ctrl+E export grid · Ctrl+G export GIF · Ctrl+Shift+E export CSV · "
            "Ctrl+1…9, 0 tabs · Ctrl+Shift+F film (K play, ← → step) · "
            "Ctrl+Shift+G export film · Ctrl+R zero z · Ctrl+P sample z · Ctrl+L log scale · "
            "arrows move the map cursor (Shift: faster)",
            "info",
        )

    # -- what the window shows about the run and the model --------------------------------------
    def show_message(
        self, text: str, level: str = "info", timeout_ms: int = 0, topic: str = "", actions=()
    ) -> None:
        """Non-modal: the banner over the views; the app keeps running. A message with a
        ``topic`` goes away when the run controller says that problem is resolved."""
        if level == "info" and not timeout_ms and not actions and topic in ("save", "live", "open"):
            timeout_ms = 10000
        self.banner.show_message(text, level, timeout_ms, topic=topic, actions=actions)

    def show_status(self, st: RunStatus) -> None:
        self.panel.show_status(st)
        self.status_run.setText(st.summary)
        self.act_start.setEnabled(st.can_start or st.can_pause)
        self.act_continue.setEnabled(st.can_continue)
        self.act_stop.setEnabled(st.can_stop)
        if st.state is RunState.PREPARING:
            self.banner.resolve("first launch")  # "… Press Train to start." is done

    def _describe_model(self) -> None:
        """The status bar's model line: the model on screen, its training and its data."""
        s = self.session
        if s.model is None:
            self.status_model.setText("")
            return
        mc = s.model_config
        shown = ""  # the views may show other data than the model's own
        if s.data_spec is not None and not (s.trained_on and same_data(s.trained_on[-1],
                                                                      s.data_spec)):  # fmt: skip
            shown = f" · showing {s.data_spec.describe()}"
        unsaved = " · not saved" if s.unsaved else ""
        self.status_model.setText(
            f"{upper_first(MODEL_TITLES[mc.model])} · "
            f"{ARCH_TITLES[mc.arch]} · {mc.latent_dim}-D latent · "
            f"{LIKELIHOOD_TITLES[mc.likelihood]} decoder · {s.trained_text()}{shown}{unsaved}"
        )

    def _settings_edited(self) -> None:
        """A settings mistake that was reported goes away once the settings are usable."""
        try:
            self.panel.train_config()
            self.panel.model_kwargs()
        except (ConfigError, ValueError):
            return
        self.banner.resolve("settings")

    def _update_exports(self) -> None:
        """An export that has nothing to save is disabled, and says why, before any dialog."""
        for name, view in self.views.items():
            problem = view.export_problem()
            tip = problem or "Save this grid as a PNG (Ctrl+E)"
            for w in (self.export_buttons.get(name), getattr(self, "export_actions", {}).get(name)):
                if w is not None:
                    w.setEnabled(problem is None)
                    w.setToolTip(tip)

    def _saved_changed(self) -> None:
        if not self.session.unsaved:
            self.recovery.discard()  # its training is in a file now (or was let go)
        self._describe_model()

    # -- the repaint timer --------------------------------------------------------------------
    def tick(self) -> None:
        """Apply the latest snapshot and repaint what changed (runs at ~30 Hz).

        While training, at most one expensive view (loss plots, the visible grid, the
        latent map) is redrawn per tick, so their paints land in different event-loop
        passes and no single pass blocks the window for long.
        """
        training = self.run.state in RUNNING
        self.run.apply_pending()
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
    _last_map = 0.0

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

    def evaluate(self) -> bool:
        """Evaluate the model on its test images (Ctrl+Shift+L); say why not if it can't."""
        if self.eval_controls.start():
            return True
        if self.evaluation.error:
            self.show_message(self.evaluation.error, "warning", topic="evaluate")
        return False

    # -- a picture of the user's: dropped, pasted ---------------------------------------------
    def encode_picture(self, source) -> bool:
        """Encode a picture (a path, PNG bytes) made like the model's data; z moves there.
        A file that is no picture is said in one line, and nothing else changes."""
        s = self.session
        if s.model is None or s.data is None or len(s.data.test_x) == 0:
            self.show_message("There is no model to encode a picture with yet.", "warning")
            return False
        try:
            done = self.drawing.show_picture(source)
        except ImageError as e:
            self.show_message(str(e), "error", topic="picture")
            return False
        self.banner.resolve("picture")
        under = ""  # a conditional model encodes it as the class chosen on the right: say which
        if s.conditional:
            name = s.class_names[s.cls] if s.cls < len(s.class_names) else str(s.cls)
            under = f" as class {name} (the class chosen on the right)"
        self.show_message(f"Encoded {done} z is now its posterior mean{under}: the cursor moved "
                          "to it, and the Draw tab shows the picture as the model sees it beside "
                          "its reconstruction.", "info", 10000)  # fmt: skip
        return True

    def paste_picture(self) -> bool:
        """Ctrl+V: a picture on the clipboard (or a file name) is encoded."""
        done = self._picture_from(QApplication.clipboard().mimeData())
        if done is None:  # (a picture that cannot be read was said)
            self.show_message("The clipboard holds no picture to encode.", "warning")
        return bool(done)

    def _picture_from(self, md) -> bool | None:
        """Encode the picture ``md`` holds (True), or say why not (False); None if it
        holds none."""
        if md is None:
            return None
        if md.hasImage():
            buf = QBuffer()
            buf.open(QIODevice.WriteOnly)
            QImage(md.imageData()).save(buf, "PNG")
            return self.encode_picture(bytes(buf.data()))
        for url in md.urls() if md.hasUrls() else []:
            if url.isLocalFile():
                return self.encode_picture(url.toLocalFile())
        return None

    def dragEnterEvent(self, ev) -> None:
        md = ev.mimeData()
        if md.hasImage() or (md.hasUrls() and any(u.isLocalFile() for u in md.urls())):
            ev.acceptProposedAction()

    def dropEvent(self, ev) -> None:
        if self._picture_from(ev.mimeData()):
            ev.acceptProposedAction()

    # -- data and training --------------------------------------------------------------------
    def _first_launch_data(self, first: bool = False) -> None:
        """Start with data that is here: MNIST only if cached, else what needs no network.

        ``first`` (nothing remembered): open the bundled MNIST example instead of an untrained
        model, with the panel's data set to what a new model can train on here.
        """
        try:
            spec = self.panel.data_spec()
        except DataError:
            spec = DataSpec(source="shapes")
            self.panel.show_data_spec(spec)
        example = example_path(FIRST_EXAMPLE)
        first = first and example.is_file()
        if spec.source in ("mnist", "kmnist", "fashion-mnist") and not is_cached(spec.source):
            fallback = "fashion-mnist" if debian_fashion_available() else "shapes"
            self.panel.show_data_spec(DataSpec(source=fallback, shapes_count=spec.shapes_count))
            name, other = spec.describe(), DataSpec(source=fallback).describe()
            if first:  # the example speaks for itself; the data line names what Train uses
                self.open_checkpoint(example)
                return
            self.show_message(
                f"{name} is not downloaded on this computer yet, so Latent Explorer starts "
                f"with {other}, which needs no internet. To use {name}, pick it under Data "
                "while online. Press Train to start.",
                "info",
                topic="first launch",
            )
        if first:
            self.open_checkpoint(example)
            return
        self.run.load_data()

    def _data_choice_changed(self) -> None:
        if not self.run.busy:
            self.run.load_data()

    @property
    def busy(self) -> bool:
        """A data load or a run is in flight (until the GUI has handled its end)."""
        return self.run.busy

    def start_or_pause(self) -> None:
        if self.run.state in RUNNING:
            self.run.toggle_pause()
        elif not self.run.busy:
            self.start_training()

    def start_training(self, resume: bool = False, epochs: int | None = None) -> bool:
        """Train a new model (or continue the current one ``epochs`` more; default: the
        number beside Continue)."""
        if resume and epochs is None:
            epochs = self.panel.more_epochs.value()
        started = self.run.start(resume=resume, epochs=epochs)
        if started:
            self._note_run()
        return started

    # -- keeping the model --------------------------------------------------------------------
    def confirm_discard(self, action: str) -> bool:
        """Before ``action`` drops a model with unsaved training: Save, Discard or Cancel.
        True when the action may go ahead (saved, or the user let the model go)."""
        s = self.session
        if not s.unsaved:
            return True
        paused_here = self.run.state is RunState.TRAINING
        if paused_here:  # hold the run while the question is open: its numbers stay true
            self.run.toggle_pause()
        run = self.projects.get(self.projects.current_id)
        kept = self.projects.folder if run is not None and run.steps == s.step else None
        answer = dialogs.ask_save(self, action, s.describe_model(), s.source, kept=kept)
        if answer == dialogs.CANCEL:
            if paused_here:
                self.run.toggle_pause()
            return False
        if answer == dialogs.DISCARD:
            return True
        if self.run.running and not self.run.stop_and_wait():
            self.show_message("The run did not stop in time; nothing was saved.", "error")
            return False
        return self.save_checkpoint_dialog() is not None

    def offer_recovery(self) -> None:
        """A model that a killed or crashed window was training: offer to open it."""
        if self.recovery.problem:  # no autosaves this session: said once
            self.show_message(self.recovery.problem, "warning")
        found = orphans(self.recovery.folder)
        if not found:
            return
        newest, when = found[0], autosaved_at(found[0])
        older = len(found) - 1
        more = (f" {older} older autosave{'s are' if older > 1 else ' is'} kept too."
                if older else "")  # fmt: skip

        def open_it():
            path = self.recovery.adopt(newest)
            self._recovered_run = run_of(path)  # (taken up when the model is adopted)
            self.run.open(path, recovered=True)

        def discard():
            problem = forget(found)
            self.banner.hide()
            if problem:
                self.show_message(problem, "warning")

        self.show_message(
            f"Latent Explorer did not close normally last time. The model it was training was "
            f"autosaved {when}: open it to save it or to train it further.{more}",
            "warning", topic="recovery", actions=[("Open it", open_it), ("Discard", discard)],
        )  # fmt: skip

    # -- checkpoints --------------------------------------------------------------------------
    def save_checkpoint(self, path: str | os.PathLike) -> Path | None:
        out = self.run.save(path)
        if out is not None:
            self.places.remember("checkpoints", out)
        return out

    def open_checkpoint(self, path: str | os.PathLike) -> bool:
        """Open a checkpoint; while data is still loading, open it once the load has ended.
        It is kept as a run of the project (once per file)."""
        ok = self.run.open(path)
        if ok:
            self.places.remember("checkpoints", path)  # (not an example's, nor a run's)
            self.projects.record_opened(path)
        return ok

    def _model_replaced(self) -> None:
        if self.session.model_serial != self._serial:  # another model: not the run it was
            self._serial = self.session.model_serial
            self.projects.current_id = None
            found, self._recovered_run = self._recovered_run, None
            s = self.session
            if found is not None and s.source is None and s.step > 0:  # a recovered model
                if self.projects.continue_run(*found, steps=s.step):
                    run = self.projects.get(found[1])
                    kept = self.projects.film_for(run.checkpoint, s.step, s.epochs_done)
                    if kept is not None:  # its run's film, when nothing was trained since
                        self.film.take_kept(kept)

    _serial = 0
    _recovered_run: tuple[Path, str] | None = None

    def _note_run(self) -> None:
        """Tell the recovery file which run of the project the model in training goes on
        with (a model recovered after a kill then continues that run)."""
        self.recovery.note_run(self.projects.folder, self.projects.current_id)

    def _project_changed(self) -> None:
        self.settings.setValue("runs/project", str(self.projects.folder))

    def show_examples(self) -> ExamplesDialog | None:
        """File ▸ Examples: the bundled models, each with a thumbnail; one click opens it."""
        if self.run.running:  # say so before one is chosen, not after
            self.show_message("Stop training before opening a checkpoint.", "warning", topic="open")
            return None
        dlg = ExamplesDialog(self.open_checkpoint, self)
        dlg.setAttribute(Qt.WA_DeleteOnClose)
        self.examples_dialog = dlg
        dlg.open()  # window-modal, without a nested event loop
        return dlg

    def _own_folders(self) -> list[Path]:
        """Folders of the application's own, where no file dialog starts."""
        return [examples_dir(), self.projects.folder, self.recovery.folder,
                default_project().parents[1], cache_dir()]  # fmt: skip

    def save_checkpoint_dialog(self) -> Path | None:
        if self.session.model is None:
            self.show_message("There is no model to save yet.", "warning")
            return None
        path, _ = QFileDialog.getSaveFileName(
            self, "Save checkpoint", self.places.suggest("checkpoints", f"model{SUFFIX}"),
            f"Checkpoints (*{SUFFIX})",
        )  # fmt: skip
        return self.save_checkpoint(path) if path else None

    def open_checkpoint_dialog(self) -> None:
        if self.run.running:  # say so before a file is chosen, not after
            self.show_message("Stop training before opening a checkpoint.", "warning", topic="open")
            return
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Open checkpoint",
            self.places.start("checkpoints"),
            f"Checkpoints (*{SUFFIX});;All files (*)",
        )
        if path:
            self.open_checkpoint(path)

    # -- exports ------------------------------------------------------------------------------
    def _export(self, what: str, write, path: str | os.PathLike) -> bool:
        """``write(path)``, then one line on how it went; False (and the reason) if it failed."""
        from trainer.export import ExportError  # torchvision is slow to import: not at start

        try:
            write(path)
        except (ExportError, ValueError, OSError) as e:
            self.show_message(str(e), "error")
            return False
        self.show_message(f"Saved the {what} to {path}", "info", 6000)
        return True

    def export_view(self, name: str, path: str | os.PathLike) -> bool:
        return self._export(name, self.views[name].export_png, path)

    def export_gif(self, path: str | os.PathLike) -> bool:
        return self._export("interpolation", self.interp.export_gif, path)

    def export_traversal_gif(self, path: str | os.PathLike) -> bool:
        return self._export("traversals", self.traversals.export_gif, path)

    def export_runs(self, path: str | os.PathLike) -> bool:
        return self._export("compared runs", self.runs_view.export_png, path)

    def export_csv(self, path: str | os.PathLike) -> bool:
        from trainer.export import write_history_csv

        return self._export("loss history", lambda p: write_history_csv(self.session.history, p),
                            path)  # fmt: skip

    def current_view_name(self) -> str | None:
        """The grid the current tab shows (None on the Runs tab, which has none)."""
        names = list(self.views)
        i = self.tabs.currentIndex()
        return names[i] if 0 <= i < len(names) else None

    def _ask_path(self, title: str, name: str, filt: str) -> str:
        path, _ = QFileDialog.getSaveFileName(self, title, self.places.suggest("exports", name),
                                              filt)  # fmt: skip
        if path:
            self.places.remember("exports", path)
        return path

    def export_view_dialog(self, name: str) -> None:
        problem = self.views[name].export_problem()
        if problem is not None:  # say so now, not after a file name was chosen
            self.show_message(problem, "warning")
            return
        path = self._ask_path(f"Export {name}", f"{name.replace(' ', '-')}.png", "PNG (*.png)")
        if path:
            self.export_view(name, path)

    def export_current_dialog(self) -> None:
        name = self.current_view_name()
        if name is None:
            self.show_message("This tab has no grid to export: pick a view's tab.", "warning")
            return
        self.export_view_dialog(name)

    def export_gif_dialog(self) -> None:
        problem = self.interp.export_problem()
        if problem is not None:
            self.show_message(problem, "warning")
            return
        path = self._ask_path("Export interpolation", "interpolation.gif", "GIF (*.gif)")
        if path:
            self.export_gif(path)

    def export_traversal_gif_dialog(self) -> None:
        problem = self.traversals.export_problem()
        if problem is not None:
            self.show_message(problem, "warning")
            return
        path = self._ask_path("Export traversals", "traversals.gif", "GIF (*.gif)")
        if path:
            self.export_traversal_gif(path)

    def export_film_dialog(self) -> None:
        problem = self.film.export_problem()
        if problem is not None:
            self.show_message(problem, "warning")
            return
        path = self._ask_path("Export the training film", "film.gif", self.film.formats())
        if path and not Path(path).suffix:  # a name typed without one: the GIF it was offered
            path += ".gif"
        if path:
            self.export_film(path)

    def export_film(self, path: str | os.PathLike) -> bool:
        """Write the film in the background; the message bar says when it is done."""
        return self.film.export(path, fps=self.film_view.fps.value())

    def _film_exported(self, path: str, error: str) -> None:
        if error:
            self.show_message(f"The film was not saved: {error}", "error", topic="film")
        else:
            self.show_message(f"Saved the training film to {path}", "info", 6000, topic="film")

    def export_csv_dialog(self) -> None:
        if not self.session.history.steps:
            self.show_message("There is no loss history to export yet: train a model.", "warning")
            return
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
        st.setValue("view/traversal_columns", self.trav_columns.value())
        st.setValue("view/log", self.plots.log_box.isChecked())
        st.setValue("view/smooth", self.plots.smooth_box.isChecked())
        st.setValue("view/order_by_kl", self.sliders.order_box.isChecked())
        st.setValue("film/record", self.film.enabled)
        st.setValue("film/memory", self.film.budget_mb)
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
        lo, hi = TRAVERSAL_COLUMNS
        self.trav_columns.setValue(max(lo, min(hi, _int(st.value("view/traversal_columns"), 11))))
        self.plots.log_box.setChecked(_bool(st.value("view/log"), False))
        self.plots.smooth_box.setChecked(_bool(st.value("view/smooth"), True))
        self.sliders.order_box.setChecked(_bool(st.value("view/order_by_kl"), False))
        self.film_view.record.setChecked(_bool(st.value("film/record"), True))
        self.film_view.memory.setValue(_int(st.value("film/memory"), int(FILM_MEMORY_MB)))
        self.panel.load_settings(st)

    # -- shutdown -----------------------------------------------------------------------------
    def shutdown(self, timeout_ms: int = 2000) -> bool:
        """Stop any run and wait for the threads; True if they all ended in time."""
        self.timer.stop()
        self.evaluation.cancel()
        self.film.cancel_export()
        ok = self.run.shutdown(timeout_ms)
        ok = self.film.shutdown(max(1, timeout_ms // 2)) and ok
        return self.evaluation.shutdown(max(1, timeout_ms // 2)) and ok

    def closeEvent(self, ev) -> None:
        if self.ask_on_close and not self.confirm_discard("quit"):
            ev.ignore()
            return
        try:
            self.save_settings()
        finally:
            self.shutdown(2000)
            self.recovery.close()
        super().closeEvent(ev)


TAB_TITLES = {6: "Posterior vs prior"}  # tabs whose title is shortened in the tab bar


def tab_shortcut(i: int) -> str:
    """Tab ``i``'s key: Ctrl+1 to Ctrl+9, Ctrl+0, then the Film's Ctrl+Shift+F."""
    return f"Ctrl+{(i + 1) % 10}" if i < 10 else "Ctrl+Shift+F"


def _int(v, default: int) -> int:
    """A setting as an int Qt can take (a hand-edited file may hold anything)."""
    try:
        return max(-(2**31), min(2**31 - 1, int(v)))
    except (TypeError, ValueError, OverflowError):
        return default


def _bool(v, default: bool) -> bool:
    if v is None:
        return default
    if isinstance(v, str):
        return v.lower() in ("1", "true", "yes")
    return bool(v)
