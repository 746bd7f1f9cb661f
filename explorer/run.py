"""The run's lifecycle: the one owner of "what is the run doing".

:class:`RunController` owns the two worker threads (loading data, training), moves the
run through named states (no data, loading, ready, preparing, training, paused, stopping,
stopped, finished, diverged, failed) and emits one :class:`RunStatus` whenever anything a
person can see changes. The Run box, its buttons, the progress bar, the status bar and the
data line all render that one value, so none of them can disagree with another.

It also applies what the workers send to the :class:`~explorer.state.Session` (data, a new
model, snapshots, the run's outcome) and speaks through ``notice`` (a message with a topic)
and ``resolved`` (that topic's problem is gone), which the window shows in its banner. It
lays nothing out and asks nothing: questions (save before replacing a model? fine-tune it
on other data?) go through ``confirm_discard`` and ``confirm_fine_tune``, which the window
provides.

Continue always trains the model on screen, with its own type and shapes, whatever the
settings on the left say (they are for Train); the status's ``model_note`` says where they
differ, and its ``data_text`` when Continue would train on other data than the model's own.

The states and the status value are in :mod:`explorer.run_status`; opening and saving
checkpoints in :mod:`explorer.run_checkpoints` (mixed in here).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from PySide6.QtCore import QCoreApplication, QElapsedTimer, QEventLoop, QObject, Signal

from explorer.film import FilmRecorder
from explorer.run_checkpoints import RunCheckpoints
from explorer.run_status import BUSY, RUNNING, RunState, RunStatus, ended_verb
from explorer.state import Session
from explorer.worker import (
    AUTOSAVE_S,
    DataWorker,
    RunOutcome,
    ThreadRunner,
    TrainingWorker,
    TrainJob,
    Worker,
    cannot_continue,
    message_for_window,
)
from trainer.config import (
    ARCH_TITLES,
    LIKELIHOOD_TITLES,
    MODEL_TITLES,
    ConfigError,
    ModelConfig,
    TrainConfig,
)
from trainer.data import EXAMPLE, DataError, DataSpec, ImageData, model_data_problem, same_data
from trainer.evaluate import elbo_stats, final_loss_warning
from trainer.loop import Snapshot, TrainControl, model_config_for
from trainer.loop.threads import training_threads
from trainer.text import clock

KL_IMAGES = 2000  # test images for the KL per dimension of a model that is not training


def upper_first(text: str) -> str:
    """ "2-D autoencoder" stays itself, "autoencoder" becomes "Autoencoder" (str.capitalize
    lowers the rest: "2-d autoencoder", "Vae")."""
    return text[:1].upper() + text[1:]


def describe_data(data: ImageData) -> str:
    c, h, w = data.image_shape
    k = data.num_classes
    classes = f", {k} class{'es' if k != 1 else ''}" if k else ", no labels"
    return f"{len(data.train_x):,} train / {len(data.test_x):,} test · {c}×{h}×{w}{classes}"


class RunController(QObject, RunCheckpoints):
    """Loads data and trains, one thing at a time, and says what it is doing.

    ``settings`` supplies the user's choices: ``data_spec()``, ``model_kwargs()``,
    ``train_config()``, ``seed_value()``, ``show_config(model_config, train_config, data_spec)``
    and ``show_data_spec(spec)`` (the left panel is one).
    """

    changed = Signal(object)  # RunStatus
    notice = Signal(str, str, str)  # level, text, topic
    resolved = Signal(str)  # topic
    # a run trained the session's model and has ended (kept as a run); True when it
    # continued the model (a stop and its continues are one run)
    runEnded = Signal(bool)

    def __init__(
        self,
        session: Session,
        settings,
        parent: QObject | None = None,
        *,
        film: FilmRecorder,
    ) -> None:
        super().__init__(parent)
        self.session = session
        self.settings = settings
        # asked before a model with unsaved training is replaced; the window shows a dialog
        self.confirm_discard: Callable[[str], bool] = lambda action: True
        # asked before Continue trains the model on other data than its own: (the model,
        # the data it was trained on, the data chosen) -> go ahead
        self.confirm_fine_tune: Callable[[str, str, str], bool] = lambda m, old, new: True
        self.autosave_path: Path | None = None  # where a run autosaves (the recovery file)
        self.autosave_every = AUTOSAVE_S  # seconds between autosaves at epoch ends
        self.film = film  # films the runs (the Film tab shows the film)
        self.trainer_runner = ThreadRunner(self)
        self.data_runner = ThreadRunner(self)
        self.data_runner.idle.connect(self._data_done)
        self.trainer_runner.idle.connect(self._run_done)
        self.state = RunState.NO_DATA
        self.control: TrainControl | None = None
        self.latest: Snapshot | None = None
        self.snapshots = 0
        self.outcomes: list[RunOutcome] = []
        self._outcome: RunOutcome | None = None  # the run's, until its thread has ended
        self._resume = False
        self._own = False  # the run trains a model no config rebuilds (a user's own)
        self._run_config: TrainConfig | None = None
        self._run_spec: DataSpec | None = None  # the data the run in flight trains on
        self._run_from_epoch = 0  # epochs the model had when the run began
        self._phase = ""
        self._note = ""  # the detail line while idle
        self._offer = 0  # epochs an opened checkpoint's run left undone
        self._pending_weights: dict | None = None
        self._pending_kl = None
        self._loading: DataSpec | None = None
        self._load_progress: tuple[float | None, str] = (None, "")  # of the data in flight
        self._queued: DataSpec | None = None
        self._dropped = False  # the data in flight gave way to a model's own images
        self._then: list[Callable[[], None]] = []  # run once the data in flight has arrived
        self._data_problem: str | None = None
        self._failed_spec: DataSpec | None = None  # the last data that did not load
        self.status = self._compute()

    # -- state --------------------------------------------------------------------------------
    # "Busy" is said here and only here, by the worker threads: a thread counts from its start
    # until the GUI has handled its end (the state moves at those same two points). Everyone
    # asks these three (the window, the command line, the status the Run box renders).
    @property
    def busy(self) -> bool:
        """A data load or a run is in flight (until the GUI has handled its end)."""
        return self.running or self.loading

    @property
    def running(self) -> bool:
        """A training thread exists (from Train until the GUI has handled the run's end)."""
        return self.trainer_runner.running

    @property
    def loading(self) -> bool:
        """A data load is in flight (until the GUI has handled its end)."""
        return self.data_runner.running

    def when_loaded(self, job: Callable[[], None]) -> None:
        """Run ``job`` once the data in flight has arrived (at once if none is in flight; not
        at all if its load fails)."""
        if self.loading:
            self._then.append(job)
        else:
            job()

    def _set(self, state: RunState | None = None, note: str | None = None) -> None:
        if state is not None:
            self.state = state
        if note is not None:
            self._note = note
        self.status = self._compute()
        self.changed.emit(self.status)

    def _idle_state(self) -> RunState:
        return RunState.READY if self.session.data is not None else RunState.NO_DATA

    def _compute(self) -> RunStatus:
        s, st, snap = self.session, self.state, self.latest
        progress: float | None = 0.0
        headline = detail = summary = ""
        remaining = 0
        if st in (RunState.NO_DATA, RunState.READY):
            headline = "idle" if st is RunState.READY else "no data"
            remaining = self._offer
            if self._note:
                detail = self._note
            elif self._data_problem is not None:
                detail = "The chosen data did not load: see the message below."
            elif st is RunState.NO_DATA:
                detail = "Choose data to start."
            elif s.step > 0:
                detail = (
                    f"{upper_first(s.short_model())} {s.trained_text()}: Continue trains it "
                    "further, Train starts a new one."
                )
            else:
                detail = "Press Train to start."
        elif st is RunState.LOADING:
            progress, text = self._load_progress
            headline = "loading data…" if progress is None else f"loading data… {progress:.0%}"
            detail = self._note or text or "Loading data…"
        elif st is RunState.PREPARING:
            progress, headline = None, "preparing…"
            detail = self._phase or "Preparing the run…"
        elif st in (RunState.TRAINING, RunState.PAUSED, RunState.STOPPING) and snap is not None:
            progress = snap.progress
            state = {RunState.PAUSED: "paused", RunState.STOPPING: "stopping…"}.get(
                st, f"{clock(snap.eta)} left"
            )
            headline = f"epoch {snap.epoch}/{snap.epochs}  ·  {state}"
            rate = None if st is RunState.PAUSED else snap.images_per_second
            detail = self._numbers(snap, rate, "img/s")
        elif st in (RunState.TRAINING, RunState.PAUSED, RunState.STOPPING):
            progress, headline = None, st.value + "…"
            detail = self._phase
        else:  # stopped, finished, diverged, failed: the outcome speaks
            out = self._last_outcome()
            fit = out.fit if out is not None else None
            target = out.target_epochs if out is not None else s.epochs_done
            done = s.epochs_done
            progress = snap.progress if snap is not None else 0.0
            avg = fit.images_per_second if fit is not None else None
            if st is RunState.STOPPED:
                remaining = max(0, target - done)
                headline = f"stopped after {done} of {target} epochs"
            elif st is RunState.FINISHED:
                progress = 1.0
                headline = f"epoch {done}/{target}  ·  finished"
            elif st is RunState.DIVERGED:
                headline = f"diverged: back at epoch {done}"
            else:
                headline = "failed"
            if snap is not None and avg is not None:
                detail = self._numbers(snap, avg, "img/s on average")
            else:
                detail = "See the message below."
            if fit is not None:  # stopped or finished (a run that raised has no fit result)
                this = done - self._run_from_epoch  # the epochs of this run (a continue's)
                verb = ended_verb(
                    st is RunState.STOPPED, done, target, this if self._run_from_epoch else None
                )
                how = (" in bfloat16" if fit.bf16 else "") + (
                    ", its batches streamed to it" if fit.streamed else ""
                )
                summary = (
                    f"{verb}: {fit.steps_run:,} steps of training in {clock(fit.seconds)} on "
                    f"{fit.device}{how} ({fit.images_per_second:,.0f} img/s on average)"
                )
            elif out is not None and out.error:
                summary = "Training " + ("diverged" if st is RunState.DIVERGED else "failed")
        return RunStatus(
            state=st,
            headline=headline,
            detail=detail,
            progress=progress,
            summary=summary,
            data_text=self._data_text(),
            trained=s.model is not None and s.step > 0,
            remaining=remaining,
            continuing=self._resume and st in RUNNING,
            model_note=self._model_note(),
            busy=self.busy,
            running=self.running,
        )

    def _numbers(self, snap: Snapshot, ips: float | None, unit: str) -> str:
        rate = f"  ·  {ips:,.0f} {unit}" if ips is not None else ""
        loss = self.session.loss_name
        beta = f"  ·  β {snap.beta:.3g}" if loss == "−ELBO" else ""  # (no KL to weigh)
        return (
            f"step {snap.step:,}/{snap.total_steps:,}{rate}  ·  "
            f"{loss} {snap.nelbo:.1f}{beta}  ·  lr {snap.lr:.3g}"
        )

    def _last_outcome(self) -> RunOutcome | None:
        return self.outcomes[-1] if self.outcomes else None

    def _data_text(self) -> str:
        if self._loading is not None:
            return f"Loading {self._loading.describe()}…"
        if self._data_problem is not None:
            return self._data_problem
        s = self.session
        text = "No data loaded."
        if s.data is not None and s.data_spec is not None and s.data_spec.source == EXAMPLE:
            try:
                chosen = self.settings.data_spec().describe()
            except DataError:
                chosen = "the data chosen above"
            text = (
                f"Exploring the example with its {len(s.data.test_x):,} "
                f"{s.data_spec.describe().removeprefix('the ')}. Train starts a new model "
                f"from scratch on the dataset above, {chosen}."
            )
        elif s.data is not None:
            text = describe_data(s.data)
        other = self._other_data()
        if other is not None:
            text += ("" if text.endswith(".") else ".") + (
                f" The model on screen was trained on {other[0]}: Continue would fine-tune it "
                f"on {other[1]} (it asks first)."
            )
        return text

    def _other_data(self) -> tuple[str, str] | None:
        """(the model's own data, the data chosen) when Continue would train the model on
        screen on other data than its own; None when it would not."""
        s = self.session
        if s.model is None or s.step == 0 or not s.trained_on or self.state in RUNNING:
            return None
        try:
            spec = self.settings.data_spec()
        except DataError:
            return None
        own = s.trained_on[-1]
        if same_data(own, spec) or spec == self._failed_spec:  # (data that did not load: none)
            return None
        return s.data_title(own), spec.describe()

    def _model_note(self) -> str:
        """Which model settings on the left differ from the model on screen, and what Train
        and Continue would do ("" when they agree, or when there is nothing to continue)."""
        s, mc = self.session, self.session.model_config
        if mc is None or s.step == 0 or (self.state in RUNNING and not self._resume):
            return ""
        try:
            kw = self.settings.model_kwargs()
        except (ConfigError, ValueError):
            return ""
        try:
            ours = {
                "type": MODEL_TITLES[mc.model],
                "body": ARCH_TITLES[mc.arch],
                "latent size": str(mc.latent_dim),
                "hidden units": str(mc.hidden),
                "decoder": LIKELIHOOD_TITLES[mc.likelihood],
            }
        except ValueError:  # a user's own network: the settings on the left do not make it
            return ""
        theirs = {
            "type": MODEL_TITLES[kw["model"]],
            "body": ARCH_TITLES[kw["arch"]],
            "latent size": str(kw["latent_dim"]),
            "hidden units": str(kw["hidden"]),
            "decoder": LIKELIHOOD_TITLES[kw["likelihood"]],
        }
        if mc.likelihood == "gaussian" and kw["likelihood"] == "gaussian":
            std = {None: "learned"}
            ours["Gaussian σ"] = std.get(mc.gaussian_std, f"{mc.gaussian_std:g}")
            theirs["Gaussian σ"] = std.get(kw["gaussian_std"], f"{kw['gaussian_std']:g}")
        diff = [k for k in ours if ours[k] != theirs[k]]
        if not diff:
            return ""
        listed = ", ".join(f"{k} {theirs[k]} (the model's: {ours[k]})" for k in diff)
        return (
            f"These settings differ from the model on screen, a {s.short_model()}: {listed}. "
            f"Train starts a new model with them; Continue trains the {s.short_model()} on "
            "screen as it is."
        )

    def refresh(self) -> None:
        """The settings on the left changed: say again what Train and Continue would do."""
        self._set()

    # -- data ---------------------------------------------------------------------------------
    def load_data(self, spec: DataSpec | None = None, then: Callable[[], None] | None = None):
        """Load ``spec`` (default: the chosen data) off the GUI thread; ``then`` runs once it
        has arrived. False if the choice is incomplete or nothing can start any more."""
        try:
            spec = spec or self.settings.data_spec()
        except DataError as e:  # an incomplete choice (no file yet): say what is missing
            self._data_failed(message_for_window(e), None, level="info")
            return False
        s = self.session
        if s.data is not None and s.data_spec == spec and not self.loading:
            self._data_ok()
            if self.state is RunState.FAILED:  # the data that failed is no longer chosen
                self.state = self._idle_state()
            self._set(note="")
            if then is not None:
                then()
            return True
        if then is not None:
            self._then.append(then)
        if self.loading:
            self._queued = spec
            return True
        if self.data_runner.closed:
            return False
        self._loading, self._queued, self._load_progress = spec, None, (None, "")
        worker = DataWorker(spec)

        def connect(w):
            w.loaded.connect(self._data_loaded)
            w.failed.connect(self._data_failed)
            w.progressed.connect(self._data_progress)

        self.data_runner.start(worker, connect)
        self._set(RunState.LOADING if self.state not in RUNNING else None, note="")
        return True

    def _data_progress(self, fraction: float | None, text: str) -> None:
        self._load_progress = (fraction, text)
        if self.state is RunState.LOADING:
            self._set()

    def _data_ok(self) -> None:
        if self._data_problem is not None:
            self._data_problem = None
            self.resolved.emit("data")

    def _data_loaded(self, data: ImageData, spec: DataSpec) -> None:
        if self._queued is not None and self._queued != spec:
            return  # superseded: the newer choice loads next
        if self._dropped:  # a model came with its own images meanwhile (open_model)
            return
        s = self.session
        fits = s.model is not None and tuple(s.model.config.image_shape) == data.image_shape
        fits = fits and not (s.conditional and s.model.num_classes != data.num_classes)
        if not fits and s.unsaved and not self.confirm_discard(f"load {spec.describe()}"):
            self._then.clear()
            if s.data_spec is not None:
                self.settings.show_data_spec(s.data_spec)
            return
        self._data_ok()
        if spec == self._failed_spec:  # (it loads now)
            self._failed_spec = None
        old = s.model_config if s.model is not None and s.step > 0 else None
        s.set_data(data, spec)
        if not fits:
            self._preview(data, replaced=old)
        elif s.kl_per_dim is None:
            self.update_kl()

    def _data_failed(self, message: str, spec: DataSpec | None, level: str = "error") -> None:
        if spec is not None and self._queued is not None and self._queued != spec:
            return
        if self._dropped:  # (cancelled: a model came with its own images)
            return
        self._failed_spec = spec
        self._data_problem = (
            f"Could not load {spec.describe()}: see the message below."
            if spec is not None
            else "Nothing loaded yet: see the message below."  # an incomplete choice
        )
        self._then.clear()
        self.notice.emit(level, message, "data")
        self._set(note="")

    def _data_done(self) -> None:
        self._loading, self._dropped = None, False
        queued, self._queued = self._queued, None
        if queued is not None and queued != self.session.data_spec:
            self.load_data(queued)
            return
        if self.state is RunState.LOADING:
            self.state = self._idle_state()
        self._set()
        waiting, self._then = self._then, []
        if self.session.data is not None:
            for job in waiting:
                job()

    def _preview(self, data: ImageData, replaced: ModelConfig | None = None) -> None:
        """An untrained model for the chosen settings, so that every view is live before
        Train (a settings mistake is reported when Train is pressed). ``replaced``: the
        trained model it replaces (which could not take this data): say so."""
        try:
            kw = self.settings.model_kwargs()
        except ConfigError:
            kw = {}
        for attempt in (kw, dict(kw, model="vae", arch="mlp"), {}):
            try:
                mc = model_config_for(data, **attempt)
                torch.manual_seed(self.settings.seed_value())
                self.session.adopt(mc)  # builds it: a model too large to build is refused
                break
            except (ConfigError, ValueError):
                continue
        else:
            return
        if replaced is not None:  # a trained model gave way to an untrained one: never silently
            why = model_data_problem(
                replaced.image_shape, replaced.num_classes, replaced.conditional, data
            )
            self.notice.emit(
                "info",
                f"The {replaced.latent_dim}-D {MODEL_TITLES[replaced.model]} that was on screen "
                f"cannot take {data.name} ({why}): the views show an untrained "
                f"{self.session.short_model()} until you press Train.",
                "data",
            )
        self._offer = 0
        self._set(self._idle_state() if self.state not in BUSY else None, note="")

    def update_kl(self) -> None:
        """KL per latent dimension of the session's model on (some of) its test images."""
        s = self.session
        if s.model is None or s.data is None or not s.model.is_variational:
            s.set_kl(None)
            return
        if s.data.image_shape != tuple(s.model.config.image_shape):
            return
        n = min(KL_IMAGES, len(s.data.test_x))
        y = s.data.test_y[:n] if s.conditional else None
        s.set_kl(elbo_stats(s.model, s.data.test_x[:n], y).kl_per_dim)

    # -- training -----------------------------------------------------------------------------
    def start(self, resume: bool = False, epochs: int | None = None) -> bool:
        """Train a new model (or, with ``resume``, the session's for ``epochs`` more)."""
        if self.running:
            return False
        s = self.session
        try:
            spec = self.settings.data_spec()
            tc = self.settings.train_config()
            kwargs = self.settings.model_kwargs()
        except (DataError, ConfigError) as e:
            self.notice.emit("error", message_for_window(e), "settings")
            return False
        self.resolved.emit("settings")
        if hasattr(s.model, "training_copy"):  # a model no config rebuilds trains itself
            return self._train_own(tc, epochs)
        if resume and (s.model is None or s.step == 0):
            self.notice.emit(
                "warning", "There is no trained model to continue; press Train.", "run"
            )
            return False
        if self.loading:  # start once the data in flight has arrived
            self._queued = spec if spec != self._loading else None
            self._then.append(lambda: self.start(resume, epochs))
            return True
        data = s.data if (s.data is not None and s.data_spec == spec) else None
        if data is not None and not resume:
            try:
                model_config_for(data, **kwargs)
            except ConfigError as e:
                self.notice.emit("error", str(e), "settings")
                return False
        if resume:
            if data is not None:  # (data still to load is checked once it has loaded)
                problem = cannot_continue(s.model_config, data, spec)
                if problem is not None:
                    self.notice.emit("error", problem, "settings")
                    return False
            other = self._other_data()
            if other is not None and not self.confirm_fine_tune(s.short_model(), *other):
                return False
        if not resume and not self.confirm_discard("train a new model"):
            return False
        job = TrainJob(
            data_spec=spec,
            train_config=tc,
            model_kwargs=kwargs,
            data=data,
            threads=training_threads(),
            autosave=self.autosave_path,
            autosave_every=self.autosave_every,
        )
        if resume:
            job.model_config = s.model_config
            job.weights = {k: v.clone() for k, v in s.model.state_dict().items()}
            job.history = s.history
            job.optimizer_state = s.optimizer_state
            job.epochs_done = s.epochs_done
            job.step = s.step
            job.position = s.position
            job.epochs = epochs
        what = spec.describe()
        self._run_spec, self._run_from_epoch = spec, s.epochs_done if resume else 0
        self._launch(job, resume, what)
        return True

    def _train_own(self, tc: TrainConfig, epochs: int | None) -> bool:
        """Train the session's own model (a user's, trainer.foreign) further on its images by
        its ELBO, with autograd: Train and Continue both go on from where it is."""
        s = self.session
        problem = s.model.train_problem()
        if problem is None and (s.data is None or len(s.data.train_x) == 0):
            problem = "there are no images to train your model on"
        if problem is None:
            try:
                model = s.model.training_copy()
            except ValueError as e:
                problem = str(e)
        if problem is not None:
            self.notice.emit("warning", f"{problem[0].upper()}{problem[1:]}.", "run")
            return False
        job = TrainJob(
            data_spec=DataSpec(), train_config=tc, data=s.data, threads=training_threads()
        )
        job.model, job.model_config = model, s.model_config
        job.history, job.optimizer_state = s.history, s.optimizer_state
        job.epochs_done, job.step, job.position, job.epochs = (
            s.epochs_done,
            s.step,
            s.position,
            epochs,
        )
        self._run_spec, self._run_from_epoch = None, s.epochs_done
        s.train_config = tc
        self._launch(job, True, s.data.name)
        return True

    def _launch(self, job: TrainJob, resume: bool, what: str) -> None:
        """Start the run of ``job`` (``what``: the data it trains on, for the phase line)."""
        s, tc = self.session, job.train_config
        job.film, job.film_budget_mb, job.film_class = self.film.for_run(resume)
        self._resume, self._own = resume, job.model is not None
        self.control = TrainControl()
        worker = TrainingWorker(job, self.control)

        def connect(w):
            w.phase.connect(self._phase_changed)
            w.dataLoaded.connect(self._run_data_loaded)
            w.modelBuilt.connect(self._model_built)
            w.filmReady.connect(self.film.adopt)
            w.snapshot.connect(self._on_snapshot)
            w.saved.connect(self._saved_during_run)
            w.outcome.connect(self._on_outcome)

        self.latest, self.snapshots, self._outcome, self._offer = None, 0, None, 0
        self._phase = (
            f"Continuing the {s.short_model()} on screen on {what}…"
            if resume
            else "Preparing the run…"
        )
        self._pending_weights = self._pending_kl = None
        self.trainer_runner.start(worker, connect)
        self._run_config = tc
        if resume:
            s.train_config = tc
        self.resolved.emit("run")
        for topic in ("open", "example"):  # "Opened …" no longer describes what trains
            self.resolved.emit(topic)
        self._set(RunState.PREPARING)

    def _phase_changed(self, text: str) -> None:
        self._phase = text
        if self.state is RunState.PREPARING:
            self._set()

    def _run_data_loaded(self, data: ImageData, spec: DataSpec) -> None:
        self._data_ok()
        self.session.set_data(data, spec)

    def _model_built(self, config, weights) -> None:
        if not self._resume:
            self.session.adopt(
                config, weights, train_config=self._run_config, trained_on=self._run_spec
            )

    def _on_snapshot(self, snap: Snapshot) -> None:
        """Queued from the worker thread: keep the latest, never decode here."""
        self.latest = snap
        self.snapshots += 1
        self.session.record(snap)
        self.film.poll()
        if snap.weights is not None:
            self._pending_weights = snap.weights
        if snap.test is not None:
            self._pending_kl = snap.test.kl_per_dim
        if self.state is RunState.PREPARING:
            self.state = RunState.PAUSED if snap.paused else RunState.TRAINING
            if self._resume and self._run_spec is not None:  # it is training on that now
                self.session.train_on(self._run_spec)
        self._set()

    def apply_pending(self) -> None:
        """Hand the newest weights and KL to the session (the repaint timer calls this, so
        a burst of snapshots costs one weight copy)."""
        if self._pending_weights is not None:
            w, self._pending_weights = self._pending_weights, None
            try:
                self.session.load_weights(w)
            except RuntimeError as e:  # mismatched weights: never kill the window
                self.notice.emit("error", f"could not show the new weights: {e}", "run")
        if self._pending_kl is not None:
            self.session.set_kl(self._pending_kl)
            self._pending_kl = None

    def _on_outcome(self, out: RunOutcome) -> None:
        self._outcome = out
        self._pending_weights = None
        s = self.session
        if out.history is not None:
            s.end_run(
                out.weights,
                out.history,
                out.optimizer_state,
                out.epochs_done,
                out.step,
                out.position,
            )
            if self._own:  # its weights are in the user's own model object now
                s.mark_kept()
            self.update_kl()
            worse = None if out.error else final_loss_warning(out.history, self._run_from_epoch)
            if worse:  # say so: the curves alone make it easy to miss
                self.notice.emit("warning", worse[0].upper() + worse[1:] + ".", "run")
        if out.error:
            if out.kind == "data":
                self._data_problem = "Could not load this data: see the message below."
            self.notice.emit("error", out.error, "data" if out.kind == "data" else "run")

    def _run_done(self) -> None:
        """The training thread has ended: the outcome decides the state."""
        out, self._outcome = self._outcome, None
        if out is None:  # the thread ended without a word (it cannot, but never hang)
            out = RunOutcome(error="the training thread ended unexpectedly", kind="other")
        self.outcomes.append(out)
        self.control = None
        self.resolved.emit("open")  # "Stop training before opening a checkpoint." is done
        if out.kind == "cancelled":  # stopped before its first step: nothing changed
            self._set(self._idle_state(), note="Stopped before the first step.")
            state = None
        elif out.kind == "diverged":
            state = RunState.DIVERGED
        elif out.error:
            state = RunState.FAILED
        elif out.fit is not None and out.fit.stopped:
            state = RunState.STOPPED
        else:
            state = RunState.FINISHED
        if state is not None:
            self._set(state, note="")
        trained = out.history is not None and out.step > 0 and self.session.model is not None
        if state in (RunState.FINISHED, RunState.STOPPED, RunState.DIVERGED) and trained:
            self.runEnded.emit(self._resume)
        waiting, self._then = self._then, []
        for job in waiting:
            job()

    def toggle_pause(self) -> None:
        c = self.control
        if c is None or self.state not in (RunState.TRAINING, RunState.PAUSED):
            return
        if c.paused:
            c.resume()
            self._set(RunState.TRAINING)
        else:
            c.pause()
            self._set(RunState.PAUSED)

    def stop(self) -> None:
        if self.control is not None and self.state in RUNNING:
            self.control.stop()
            self._set(RunState.STOPPING)

    def stop_and_wait(self, timeout_ms: int = 5000) -> bool:
        """Stop the run and wait until its outcome is in the session (a dialog that saves
        the model needs its final weights). True when no run is left."""
        self.stop()
        timer = QElapsedTimer()
        timer.start()
        while self.running and timer.elapsed() < timeout_ms:
            QCoreApplication.processEvents(QEventLoop.AllEvents, 50)
        return not self.running

    def set_lr(self, lr: float) -> None:
        if self.control is not None and self.state in RUNNING:
            self.control.set_lr(lr)
            self.notice.emit("info", f"Learning rate set to {lr:g} from the next step.", "live")

    def set_beta(self, beta: float) -> None:
        if self.control is not None and self.state in RUNNING:
            self.control.set_beta(beta)
            self.notice.emit("info", f"β set to {beta:g} from the next step.", "live")

    # -- shutdown -----------------------------------------------------------------------------
    def shutdown(self, timeout_ms: int = 2000) -> bool:
        """Stop any run and wait for the threads; True if they all ended in time."""
        for runner in (self.trainer_runner, self.data_runner):
            w = runner.worker
            if isinstance(w, Worker):
                w.cancel()  # both at once: each ends at its next check while we wait
        if self.control is not None:
            self.control.stop()
        timer = QElapsedTimer()
        timer.start()
        ok = True
        for runner in (self.trainer_runner, self.data_runner):
            ok = runner.wait(max(1, timeout_ms - timer.elapsed())) and ok
        return ok
