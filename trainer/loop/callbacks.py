"""The hooks a fit calls, and the callbacks that hang side effects on them.

:meth:`trainer.loop.fit.Trainer.fit` runs, for each call, in this order::

    on_fit_start                      the plan is made (a Run), before any step
    for each epoch:
        (between steps)               pause: on_pause; stop; the processes' agreement
        (one step)
        on_step_end                   after each step
        on_test                       the epoch's test statistics, before they are checked
        on_epoch_end                  the epoch's result, in the history
    on_stop                           a stop inside an epoch, where it stopped
    on_diverged                       the loss went NaN: the model was rewound

The loop calls its callbacks in order: the film (:class:`FilmCapture`), then the snapshot meter
(:class:`trainer.loop.meter.SnapshotMeter`), then those the caller adds
(``Trainer.fit(callbacks=...)``). A hook runs on the training thread between two steps, where
the weights and the optimiser state belong to the same step; its time counts as training
time unless it stops and starts the run's clock (:meth:`Run.stop_clock`) around its work.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from .records import EpochResult


@dataclass
class Run:
    """One call of ``fit``: its plan, and its clock of training time (pauses, tests and film
    frames not counted)."""

    first_epoch: int  # the epoch it begins in (may be one a stopped run left unfinished)
    last_epoch: int  # the epoch count it ends at
    total_steps: int  # the optimiser's step count at the end
    start_step: int
    images: int  # training images in an epoch
    warmup_steps: int  # of the KL weight
    active: float = 0.0  # seconds trained up to ``t_mark``
    t_mark: float = field(default_factory=time.perf_counter)  # when the clock last started
    images_total: int = 0  # images trained in this call
    beta_eff: float = 0.0  # the KL weight of the last step
    good: tuple = ()  # the state a diverging run is rewound to (Trainer._checkpoint_state)
    stopped: bool = False  # stopped inside an epoch

    def stop_clock(self) -> None:
        self.active += time.perf_counter() - self.t_mark

    def start_clock(self) -> None:
        self.t_mark = time.perf_counter()

    def elapsed(self, paused: bool = False) -> float:
        """Seconds trained so far (up to the last stop of the clock, when ``paused``)."""
        return self.active + (time.perf_counter() - self.t_mark if not paused else 0.0)


class Callback:
    """A side effect of training, called at the loop's hooks (each does nothing here).

    ``trainer`` is the :class:`~trainer.loop.fit.Trainer` (its model, step, epochs done and
    history are the run's as of the hook); ``run`` the :class:`Run` of this call of ``fit``.
    """

    def on_fit_start(self, trainer: Any, run: Run) -> None:
        """Before the first step of this call."""

    def on_pause(self, trainer: Any, run: Run) -> None:
        """The run is paused (its clock stopped), before it waits to go on."""

    def on_step_end(self, trainer: Any, run: Run, images: int, sums: torch.Tensor) -> None:
        """After a step of ``images`` images (this process's) whose summed reconstruction
        loss, KL and loss are ``sums`` (on the device); ``trainer.step`` counts it."""

    def on_test(self, trainer: Any, run: Run, stats: Any) -> None:
        """An epoch ended and was tested (``stats``: :class:`trainer.evaluate.ElboStats`);
        the clock is stopped; the result is not checked or in the history yet."""

    def on_epoch_end(self, trainer: Any, run: Run, result: EpochResult) -> None:
        """An epoch ended: ``result`` is the history's newest."""

    def on_stop(self, trainer: Any, run: Run) -> None:
        """The run stopped inside an epoch (after the loop's last step)."""

    def on_diverged(self, trainer: Any) -> None:
        """The loss became NaN or infinite; the model was rewound to ``trainer.step``."""


class Hooks(Callback):
    """Callbacks called as one, in order."""

    def __init__(self, callbacks: Sequence[Callback]) -> None:
        self.callbacks = list(callbacks)

    def on_fit_start(self, trainer: Any, run: Run) -> None:
        for c in self.callbacks:
            c.on_fit_start(trainer, run)

    def on_pause(self, trainer: Any, run: Run) -> None:
        for c in self.callbacks:
            c.on_pause(trainer, run)

    def on_step_end(self, trainer: Any, run: Run, images: int, sums: torch.Tensor) -> None:
        for c in self.callbacks:
            c.on_step_end(trainer, run, images, sums)

    def on_test(self, trainer: Any, run: Run, stats: Any) -> None:
        for c in self.callbacks:
            c.on_test(trainer, run, stats)

    def on_epoch_end(self, trainer: Any, run: Run, result: EpochResult) -> None:
        for c in self.callbacks:
            c.on_epoch_end(trainer, run, result)

    def on_stop(self, trainer: Any, run: Run) -> None:
        for c in self.callbacks:
            c.on_stop(trainer, run)

    def on_diverged(self, trainer: Any) -> None:
        for c in self.callbacks:
            c.on_diverged(trainer)


class Frames(Protocol):
    """What the loop asks of a film (:class:`trainer.film.Film`, which sits above the loop)."""

    def __len__(self) -> int: ...

    def due(self, step: int, epoch: float) -> bool: ...

    def capture(self, model, step, epoch, epoch_end=False, test_nelbo=None, train_nelbo=None): ...

    def rewind(self, step: int) -> None: ...


class FilmCapture(Callback):
    """Frames of the model as it trains: the first before any step of a new film, then as the
    film asks, at each epoch's end and where a run stops. Their time is not training time."""

    def __init__(self, film: Frames) -> None:
        self.film = film

    def on_fit_start(self, trainer: Any, run: Run) -> None:
        if not len(self.film):  # where a new film starts: before any step
            at = trainer.epochs_done + trainer.epoch_images / run.images
            self.film.capture(trainer.model, trainer.step, at)
            run.start_clock()

    def on_step_end(self, trainer: Any, run: Run, images: int, sums: torch.Tensor) -> None:
        at = trainer.epochs_done + trainer.epoch_images / run.images
        if self.film.due(trainer.step, at):
            t0 = time.perf_counter()
            b = max(1, images)
            self.film.capture(
                trainer.model, trainer.step, at, train_nelbo=float((sums[0] + sums[1]) / b)
            )
            run.t_mark += time.perf_counter() - t0  # not training time

    def on_test(self, trainer: Any, run: Run, stats: Any) -> None:
        # (one off the film's beat is kept only while newest)
        self.film.capture(trainer.model, trainer.step, trainer.epochs_done, True, stats.nelbo)

    def on_stop(self, trainer: Any, run: Run) -> None:
        # where the run stopped, inside an epoch
        at = trainer.epochs_done + trainer.epoch_images / run.images
        self.film.capture(trainer.model, trainer.step, at)

    def on_diverged(self, trainer: Any) -> None:
        self.film.rewind(trainer.step)  # the model went back: so does the film
