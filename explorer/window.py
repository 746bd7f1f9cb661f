"""The Latent Explorer main window: layout and wiring.

Data flows one way: dataset -> worker thread (training loop) -> snapshot signal -> the run
controller (``explorer.run``: the one owner of the run's state) -> Session (the GUI's own
model copy) -> views. A 30 Hz timer applies the latest weights and repaints only what
changed; cheap single-image views (the preview under the sliders) redraw at once on input.

What the window does beyond layout lives in modules of functions that take the window: its
menus and keys (``explorer.actions``), exports (``explorer.exports``), pictures dropped or
pasted (``explorer.pictures``) and what it remembers between sessions
(``explorer.window_state``).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
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

from explorer import actions, dialogs, exports, keeping, own_model, pictures, window_state
from explorer.actions import tab_shortcut
from explorer.bookmarks import Bookmarks
from explorer.constants import (
    APP_NAME,
    GRID_DEFAULT,
    GRID_MAX,
    GRID_MIN,
    TAB_FULL_TITLES,
    TAB_TITLES,
)
from explorer.directions import Directions
from explorer.evaluation import Evaluation
from explorer.film import FilmRecorder
from explorer.map_state import MapState
from explorer.neighbours import NeighbourSearch
from explorer.places import Places
from explorer.project import ProjectRuns
from explorer.recovery import Recovery
from explorer.run import RunController
from explorer.run_status import RUNNING, RunState, RunStatus
from explorer.settings import open_settings
from explorer.state import Session
from explorer.widgets.common import MessageBar, hint, titled
from explorer.widgets.directions import DirectionsPanel, arithmetic_and_directions
from explorer.widgets.drawing import DrawingPad
from explorer.widgets.evaluation import EvaluationControls
from explorer.widgets.film import FilmView
from explorer.widgets.inputs import RangeSpinBox
from explorer.widgets.latent_map import LatentMap
from explorer.widgets.neighbours import NeighbourPanel
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
from trainer.config import (
    TRAVERSAL_COLUMNS,
    ConfigError,
)
from trainer.data import (
    DataError,
    DataSpec,
    debian_fashion_available,
    is_cached,
)
from trainer.examples import FIRST as FIRST_EXAMPLE
from trainer.examples import example_path, examples_dir
from trainer.loop.threads import GUI_THREADS
from trainer.paths import cache_dir, icon_file
from trainer.runs import default_project

REPAINT_HZ = 30
GIL_SWITCH_S = 0.0005  # see MainWindow.__init__
PLOTS_INTERVAL_S = 0.25  # redraw the loss curves at most 4 times a second while training
ICON = icon_file()


def default_settings() -> QSettings:
    return open_settings()  # the user's INI file, if it is a regular file (or none yet)


@dataclass(frozen=True)
class Tab:
    """One row of the window's tab table (``MainWindow.tab_table``, in tab order)."""

    title: str  # on the tab (explorer.constants.TAB_TITLES)
    page: QWidget
    views: list  # what the repaint timer refreshes while the tab shows
    grid: str  # the grid it exports as PNG, as File ▸ Export names it ("": none)


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
        # thread, leaving the other cores to the training thread (trainer.loop.threads)
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
        self.bookmarks = Bookmarks(self.session, self)  # File ▸ Save view… and Open view…
        self.bookmarks.kept_weights = lambda: own_model.kept_weights(self)
        self.bookmarks.problem.connect(lambda m: self.show_message(m, "warning", topic="view"))
        self._wire()
        actions.build_menus(self)
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
        self.left = self._build_left()
        explore = self._build_explore()
        tools = self._build_views()
        self._build_tabs(explore, tools)
        plots_box = self._build_curves()
        middle = self._build_middle(plots_box)
        right = self._build_right()
        self._build_main(self.left, middle, right)

    def _build_left(self) -> QWidget:
        """The settings panel, scrolling, above its Run box, which stays in view."""
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
        return left

    def _build_explore(self) -> QWidget:
        """The Explore tab: latent map | manifold grid, one shared tool row."""
        s = self.session
        self.map_state = MapState(s, self)
        self.map = LatentMap(s, self.map_state)
        self.map.exportAsked.connect(lambda kind: exports.export_map_dialog(self, kind))
        self.manifold = ManifoldView(s)
        self.plane_picker = PlanePicker(s)
        self.plane_mode = self.plane_picker.mode
        self.dim_x, self.dim_y = self.plane_picker.dim_x, self.plane_picker.dim_y
        self.grid_n = RangeSpinBox(
            GRID_MIN, GRID_MAX, GRID_DEFAULT, "Manifold grid size N (N x N images)", "Grid size"
        )
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
        return explore

    def _build_views(self) -> dict[str, list[QWidget]]:
        """The other tabs' views; returns the tools each grid's page shows beside its title."""
        s = self.session
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
        self.directions = Directions(s, self)
        self.map.keep_during_preview(self.directions)  # a hover over the map keeps amounts
        self.directions_panel = DirectionsPanel(self.directions, self.arithmetic)
        self.directions_panel.exportRequested.connect(self.export_sweep_dialog)
        self.drawing = DrawingPad(s)
        folder = self.settings.value("runs/project")
        self.projects = ProjectRuns(
            Path(folder) if isinstance(folder, str) and folder else None, self
        )
        self.film.kept = self.projects.film_for  # a run opened again brings its film
        # a run of a user's own model runs its code again; any other opens as a checkpoint
        self.runs_view = RunsView(self.projects, lambda path: own_model.open_path(self, path))
        self.runs_view.exportRequested.connect(self.export_runs)
        self.film_view = FilmView(self.film)
        self.film_view.exportRequested.connect(self.export_film_dialog)
        return {
            "samples": [new_samples],
            "reconstructions": [next_batch],
            "interpolation": [gif],
            "traversals": [self.trav_columns, trav_gif],
            "arithmetic": [
                self.arithmetic.random_btn,
                self.arithmetic.use_btn,
                self.directions_panel.keep_arithmetic,
            ],
        }

    def _build_tabs(self, explore: QWidget, tools: dict[str, list[QWidget]]) -> None:
        """The tab table: each tab's page, the views it refreshes and the grid it exports."""
        self.tabs = QTabWidget()
        # eleven tabs must neither widen the window nor hide behind scroll arrows: at the
        # default size every title shows whole; a narrower window shortens them ("Interpo…")
        self.tabs.setUsesScrollButtons(False)
        self.tabs.tabBar().setElideMode(Qt.ElideRight)
        self.export_buttons: dict[str, QPushButton] = {}

        def grid(name: str, view, title: str, shown=None) -> tuple[QWidget, list, str]:
            page = shown if shown is not None else view
            return self._page(name, page, title, tools.get(name, [])), [view], name

        def page(title: str, widget: QWidget, refreshed: list) -> tuple[QWidget, list, str]:
            p = titled(title, widget)
            p.layout().setContentsMargins(6, 6, 6, 6)
            return p, refreshed, ""

        rows = [  # in TAB_TITLES' order
            (explore, [self.manifold], "manifold"),
            grid("samples", self.samples, "Prior samples z ~ N(0, I)"),
            grid("reconstructions", self.recon, "Test images and their reconstructions"),
            grid("interpolation", self.interp, "Interpolation in latent space"),
            grid("class row", self.class_row, "The current z drawn as every class"),
            grid("traversals", self.traversals, "Each dimension swept, by KL"),
            grid("posterior vs prior", self.posterior,
                 "Where the test set is encoded, against N(0, I), on the map's plane"),
            grid("arithmetic", self.arithmetic, "a − b + c",
                 arithmetic_and_directions(self.arithmetic, self.directions_panel)),
            page("Draw: every stroke is encoded", self.drawing, [self.drawing.classes]),
            page("Every run kept in the project, side by side", self.runs_view, []),
            page("The training film: how the latent space formed", self.film_view, []),
        ]  # fmt: skip
        self.tab_table = [Tab(title, *row) for title, row in zip(TAB_TITLES, rows, strict=True)]
        # the grids File ▸ Export offers, in tab order
        self.views = {t.grid: t.views[0] for t in self.tab_table if t.grid}
        for i, t in enumerate(self.tab_table):
            self.tabs.addTab(t.page, t.title)
            self.tabs.setTabToolTip(
                i, f"{TAB_FULL_TITLES.get(t.title, t.title)} ({tab_shortcut(i)})"
            )

    def _page(self, name: str, view, title: str, tools: list[QWidget]) -> QWidget:
        export = QPushButton("Export PNG…")
        export.setToolTip(exports.PNG_TIP)
        export.clicked.connect(self.export_current_dialog)
        self.export_buttons[name] = export
        page = titled(title, view, [*tools, export])
        page.layout().setContentsMargins(6, 6, 6, 6)
        return page

    def _build_curves(self) -> QWidget:
        """The training curves, the evaluation's result above them."""
        s = self.session
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
        return titled("Training curves", curves, [self.eval_controls, csv_btn])

    def _build_middle(self, plots_box: QWidget) -> QWidget:
        """The tabs over the curves, and the message bar floating over both."""
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
        return middle

    def _build_right(self) -> QWidget:
        """The current point: its decoded image over the latent sliders."""
        s = self.session
        self.preview = PreviewPane(s)
        self.sliders = LatentSliders(s)
        right = QSplitter(Qt.Vertical)
        self.neighbours = NeighbourSearch(s, self)
        self.neighbours_panel = NeighbourPanel(self.neighbours)
        self.neighbours_panel.exportRequested.connect(
            lambda: exports.export_neighbours_dialog(self)
        )
        self.neighbours_panel.k.refused.connect(lambda m: self.show_message(m, "warning", 8000))
        # (one pane of the splitter with the decoded image: a layout saved before stays valid)
        right.addWidget(self.neighbours_panel.under(titled("Current z — decoded", self.preview)))
        right.addWidget(titled("Latent sliders", self.sliders))
        right.setSizes([500, 400])
        right.setMinimumWidth(250)
        self.right_split = right
        return right

    def _build_main(self, left: QWidget, middle: QWidget, right: QWidget) -> None:
        """The three columns side by side, and the status bar under them."""
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
        for w in (
            self.map.plot,
            self.manifold.plot,
            self.plots.loss_plot,
            self.plots.kl_plot,
            self.plots.dim_plot,
            self.preview.pane,
            self.traversals.plot,
            *[v.pane for v in (self.samples, self.recon, self.interp, self.class_row)],
        ):
            w.setFocusPolicy(Qt.ClickFocus)

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
        r.runEnded.connect(lambda continued: own_model.keep_run(self, continued))
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
        self.film.exported.connect(lambda path, error: exports.film_exported(self, path, error))
        s.historyReset.connect(self._model_replaced)
        self.grid_n.valueChanged.connect(self.manifold.set_n)
        self.grid_n.refused.connect(lambda m: self.show_message(m, "warning", 8000))
        self.sliders.refused.connect(lambda m: self.show_message(m, "warning", 8000))
        self.tabs.currentChanged.connect(lambda _i: self.tick())
        for sig in (
            s.structureChanged,
            s.historyReset,
            s.savedChanged,
            s.dataChanged,
            s.epochsChanged,
            s.stepped,
        ):
            sig.connect(self._describe_model)
        s.structureChanged.connect(lambda: exports.update_exports(self))
        s.weightsChanged.connect(lambda: self.panel.show_model_on_screen(s.model_config))
        s.savedChanged.connect(self._saved_changed)
        exports.update_exports(self)
        # the views' owners: the map takes two directions as its axes; a bookmark keeps each
        self.directions.axes_requested.connect(self.map_state.set_custom_axes)
        for key, owner in (
            ("map", self.map_state),
            ("directions", self.directions),
            ("neighbours", self.neighbours),
        ):
            self.bookmarks.register(key, owner)

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
        self.status_model.setText(self.session.model_line())

    def _settings_edited(self) -> None:
        """A settings mistake that was reported goes away once the settings are usable."""
        try:
            self.panel.train_config()
            self.panel.model_kwargs()
        except (ConfigError, ValueError):
            return
        self.banner.resolve("settings")

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
        jobs = [self._refresh_plots, self._refresh_views, self.map_state.refresh_codes]
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
        for v in self.tab_table[self.tabs.currentIndex()].views:
            done = v.refresh() or done
        return done

    def evaluate(self) -> bool:
        """Evaluate the model on its test images (Ctrl+Shift+L); say why not if it can't."""
        if self.eval_controls.start():
            return True
        if self.evaluation.error:
            self.show_message(self.evaluation.error, "warning", topic="evaluate")
        return False

    # -- a picture of the user's: dropped, pasted (explorer.pictures) ---------------------------
    encode_picture = pictures.encode_picture
    paste_picture = pictures.paste_picture
    _picture_from = pictures.picture_from

    def dragEnterEvent(self, ev) -> None:
        if pictures.holds_picture(ev.mimeData()):
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

    # -- keeping the model (explorer.keeping) -------------------------------------------------
    confirm_discard = keeping.confirm_discard
    offer_recovery = keeping.offer_recovery

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

    # the run of the project the model on screen goes on with (explorer.keeping)
    _model_replaced = keeping.model_replaced
    _note_run = keeping.note_run
    _serial = 0
    _recovered_run: tuple[Path, str] | None = None

    def _project_changed(self) -> None:
        self.settings.setValue("runs/project", str(self.projects.folder))

    def _own_folders(self) -> list[Path]:
        """Folders of the application's own, where no file dialog starts."""
        return [
            examples_dir(),
            self.projects.folder,
            self.recovery.folder,
            default_project().parents[1],
            cache_dir(),
        ]

    # File ▸ Open, Save and Examples (explorer.actions)
    open_checkpoint_dialog = actions.open_checkpoint_dialog
    save_checkpoint_dialog = actions.save_checkpoint_dialog
    show_examples = actions.show_examples

    # -- exports (explorer.exports) ------------------------------------------------------------
    export_view = exports.export_view
    export_gif = exports.export_gif
    export_traversal_gif = exports.export_traversal_gif
    export_runs = exports.export_runs
    export_csv = exports.export_csv
    export_film = exports.export_film
    export_view_dialog = exports.export_view_dialog
    export_current_dialog = exports.export_current_dialog
    export_gif_dialog = exports.export_gif_dialog
    export_traversal_gif_dialog = exports.export_traversal_gif_dialog
    export_film_dialog = exports.export_film_dialog
    export_csv_dialog = exports.export_csv_dialog
    export_sweep = exports.export_sweep
    export_sweep_dialog = exports.export_sweep_dialog

    def current_view_name(self) -> str | None:
        """The grid the current tab shows (None on the Runs tab, which has none)."""
        i = self.tabs.currentIndex()
        return (self.tab_table[i].grid or None) if 0 <= i < len(self.tab_table) else None

    # -- settings (explorer.window_state) -------------------------------------------------------
    save_settings = window_state.save_settings
    load_settings = window_state.load_settings

    # -- shutdown -----------------------------------------------------------------------------
    def shutdown(self, timeout_ms: int = 2000) -> bool:
        """Stop any run and wait for the threads; True if they all ended in time."""
        self.timer.stop()
        self.evaluation.cancel()
        self.film.cancel_export()
        ok = self.run.shutdown(timeout_ms)
        ok = self.map_state.shutdown(max(1, timeout_ms // 2)) and ok
        ok = self.film.shutdown(max(1, timeout_ms // 2)) and ok
        ok = self.neighbours.shutdown(max(1, timeout_ms // 2)) and ok
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
