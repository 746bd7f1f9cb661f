"""The window's Evaluate: the one owner of an evaluation's state and of its result.

An evaluation runs on a copy of the session's model in a background thread (progress,
cancel), and reports what ``latent-train evaluate`` reports, with the same numbers for the
same model, test images and seed. Its result belongs to the model it measured: another
model clears it, and training the same model further makes it "earlier" (the step it was
measured at is kept with it).
"""

from __future__ import annotations

import copy
import time
from enum import Enum

from PySide6.QtCore import QObject, Signal

from explorer.state import Session
from explorer.worker import EvaluateWorker, ThreadRunner
from trainer.text import clock

EVAL_SEED = 0  # as latent-train evaluate's default --seed


class EvalState(str, Enum):
    IDLE = "idle"
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"


class Evaluation(QObject):
    changed = Signal()  # anything below changed
    finished = Signal(object)  # the result dict, once an evaluation has ended well

    def __init__(self, session: Session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.runner = ThreadRunner(self)
        self.runner.idle.connect(self._idle)
        self.state = EvalState.IDLE
        self.fraction = 0.0
        self.text = ""
        self.error = ""
        self.result: dict | None = None
        self._step = 0  # the model's step being evaluated
        self._started = 0.0
        self.eta: float | None = None  # seconds left, estimated from the progress so far
        session.structureChanged.connect(self.forget)
        session.historyReset.connect(self._history_reset)
        session.epochsChanged.connect(lambda: self.result is not None and self.changed.emit())

    # -- what the views read ------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.runner.running

    @property
    def stale(self) -> bool:
        """The result is of the same model at an earlier step (it has trained since)."""
        return self.result is not None and self.result["step"] != self.session.step

    def problem(self) -> str | None:
        """Why an evaluation cannot start now (None: it can)."""
        s = self.session
        if s.model is None:
            return "There is no model to evaluate yet."
        if s.data is None or len(s.data.test_x) == 0:
            return "There are no test images to evaluate on: choose data."
        if tuple(s.data.image_shape) != tuple(s.model.config.image_shape):
            return "The data's images do not fit the model: choose its data."
        if s.conditional and s.data.num_classes != s.model.num_classes:
            return "The data's classes do not match the conditional model's."
        why = s.model.evaluate_problem()
        if why is not None:
            return f"Evaluate cannot measure this model: {why}."
        return None

    def unavailable(self) -> str | None:
        """Why the model on screen can never be evaluated (None: it can, given data)."""
        s = self.session
        why = None if s.model is None else s.model.evaluate_problem()
        return None if why is None else f"Evaluate cannot measure this model: {why}."

    # -- actions ------------------------------------------------------------------------------
    def start(self, iw_samples: int, prior_samples: int = 0, running_training: bool = False):
        """Evaluate the session's model on all of its test images; False (and ``error`` set)
        if it cannot start."""
        if self.running:
            return False
        problem = "Stop training before evaluating." if running_training else self.problem()
        if problem is not None:
            self.error = problem
            self.changed.emit()
            return False
        s = self.session
        model = copy.deepcopy(s.model)  # the GUI's own copy keeps decoding meanwhile
        y = s.data.test_y if s.conditional else None
        worker = EvaluateWorker(model, s.data.test_x, y, iw_samples, prior_samples, EVAL_SEED)
        self._step, self._model = s.step, s.model_serial
        self._k = (iw_samples, prior_samples)
        self._spec = s.data_spec.describe() if s.data_spec is not None else s.data.name

        def connect(w):
            w.progressed.connect(self._progressed)
            w.evaluated.connect(self._evaluated)
            w.failed.connect(self._failed)

        self.state, self.fraction, self.text, self.error = EvalState.RUNNING, 0.0, "", ""
        self._started, self.eta = time.perf_counter(), None
        self.runner.start(worker, connect)
        self.changed.emit()
        return True

    def cancel(self) -> None:
        w = self.runner.worker
        if w is not None and self.state is EvalState.RUNNING:
            w.cancel()
            self.state = EvalState.CANCELLED
            self.changed.emit()

    def forget(self) -> None:
        """Another model: its numbers are not this one's."""
        self.cancel()
        if self.result is not None or self.error:
            self.result, self.error = None, ""
            if self.state is not EvalState.CANCELLED:
                self.state = EvalState.IDLE
            self.changed.emit()

    def _history_reset(self) -> None:
        # a new run or an opened file: a different model even if its shape is the same
        if self.result is not None and self.result["model"] != self.session.model_serial:
            self.forget()
        elif self.result is not None:
            self.changed.emit()  # the same model, trained further: its result is earlier

    def shutdown(self, timeout_ms: int = 2000) -> bool:
        return self.runner.wait(timeout_ms)

    # -- from the worker ----------------------------------------------------------------------
    def _progressed(self, fraction: float, text: str) -> None:
        if self.state is EvalState.RUNNING:
            self.fraction, self.text = fraction, text
            spent = time.perf_counter() - self._started
            # the time left, once there is enough behind to go by (evaluations take seconds
            # to many minutes: K = 5000 on a 20-D model's 10,000 images)
            self.eta = spent * (1 - fraction) / fraction if fraction > 0.02 and spent > 1 else None
            self.changed.emit()

    def _evaluated(self, res: dict) -> None:
        if self.state is not EvalState.RUNNING or self._model != self.session.model_serial:
            return  # called off, or the session holds another model by now
        self.result = {
            **res,
            "step": self._step,
            "data": self._spec,
            "seed": EVAL_SEED,
            "model": self._model,
        }
        self.state = EvalState.DONE
        if "kl_per_dim" in res and self.session.step == self._step:
            import numpy as np

            self.session.set_kl(np.asarray(res["kl_per_dim"]))
        self.changed.emit()
        self.finished.emit(self.result)

    def _failed(self, message: str) -> None:
        self.state, self.error = EvalState.FAILED, message
        self.changed.emit()

    def _idle(self) -> None:
        if self.state is EvalState.RUNNING:  # ended without a word: never leave it running
            self.state = EvalState.FAILED
            self.error = self.error or "the evaluation ended unexpectedly"
        self.changed.emit()

    # -- how it reads -------------------------------------------------------------------------
    def summary(self) -> str:
        """One line for the curves panel."""
        if self.state is EvalState.RUNNING:
            left = f", about {clock(self.eta)} left" if self.eta is not None else ""
            return f"Evaluating… {self.fraction:.0%} ({self.text or 'starting'}){left}"
        if self.state is EvalState.FAILED and self.error:
            return f"Evaluation failed: {self.error}"
        r = self.result
        if r is None:
            if self.state is EvalState.CANCELLED:
                return "Evaluation cancelled."
            return self.error or ""
        parts = [f"test −ELBO {r['test_nelbo']:.2f}"]
        if "test_nll_iw" in r:
            parts.append(
                f"−log p(x) {r['test_nll_iw']:.2f} (importance sampled, K = {r['iw_samples']:,})"
            )
        if "test_nll_prior_mc" in r:
            parts.append(
                f"prior Monte Carlo {r['test_nll_prior_mc']:.2f} (K = {r['prior_samples']:,})"
            )
        if "active_units" in r:
            parts.append(f"{r['active_units']} of {len(r['kl_per_dim'])} units active")
        else:
            parts = [f"reconstruction error {r['test_recon']:.2f} (an autoencoder has no ELBO)"]
        when = f" at step {r['step']:,} (trained further since)" if self.stale else ""
        return f"Test, {r['n_images']:,} images{when}, in nats: " + " · ".join(parts)
