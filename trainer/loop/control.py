"""How other threads drive a running loop: :class:`TrainControl` (stop, pause, live changes
of learning rate and beta, calls between steps), and why a run stopped."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ..config import TrainConfig


class TrainControl:
    """Thread-safe remote control for a running loop.

    ``stop()`` ends the loop after the current step; ``pause()`` / ``resume()`` hold it
    between steps; ``set_lr`` / ``set_beta`` take effect from the next step.
    """

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._run = threading.Event()
        self._run.set()
        self._lock = threading.Lock()
        self._lr: float | None = None
        self._beta: float | None = None
        self._calls: list[Callable[[Any], None]] = []  # each given the Trainer
        # Why the run stopped: the one record of it. 0 while not stopped or stopped without
        # a reason; a signal's number when a signal stopped it; on a run of several
        # processes, the reason they agreed on (the largest any of them had, 1 when none
        # gave one), set by the loop (trainer.loop.fit) when they agree to stop.
        self.code = 0

    def stop(self, code: int = 0) -> None:
        self.code = code or self.code
        self._stop.set()
        self._run.set()  # wake a paused loop so it can see the stop

    def pause(self) -> None:
        self._run.clear()

    def resume(self) -> None:
        self._run.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def paused(self) -> bool:
        return not self._run.is_set()

    def wait_while_paused(self, timeout: float) -> bool:
        """Block up to ``timeout`` s while paused; True once running again."""
        return self._run.wait(timeout)

    def set_lr(self, lr: float) -> None:
        TrainConfig(lr=lr)  # the same range check as a new run's
        with self._lock:
            self._lr = float(lr)

    def set_beta(self, beta: float) -> None:
        TrainConfig(beta=beta)
        with self._lock:
            self._beta = float(beta)

    def take_changes(self) -> tuple[float | None, float | None]:
        with self._lock:
            lr, beta, self._lr, self._beta = self._lr, self._beta, None, None
        return lr, beta

    def call_soon(self, fn: Callable[[Any], None]) -> None:
        """Run ``fn(trainer)`` on the training thread between two steps (or at once while
        paused), where the weights and the optimiser state belong to the same step: how
        another thread saves a running model."""
        with self._lock:
            self._calls.append(fn)

    def run_calls(self, trainer: Any) -> None:
        """Run the queued calls (the training thread does, between steps)."""
        if not self._calls:  # the common case, without the lock
            return
        with self._lock:
            calls, self._calls = self._calls, []
        for fn in calls:
            fn(trainer)
