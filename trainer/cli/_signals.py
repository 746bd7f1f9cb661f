"""Why ``latent-train`` stopped, owned in one place: the stop signal a training heeds (its
own Ctrl-C or SIGTERM, or one another process of the run received and the processes agreed
on), its name in messages and the exit code it ends with (128 + its number: 130 for Ctrl-C,
143 for SIGTERM)."""

from __future__ import annotations

import signal
import threading
import time


# -- commands --------------------------------------------------------------------------------
class Interrupted(KeyboardInterrupt):
    """A second stop signal: the run ends at once, with that signal's exit code."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class StopOnSignal:
    """While a training runs and saves: the first Ctrl-C (SIGINT) or SIGTERM asks the loop to
    stop after its current step, and the model is then saved as it stands; a second one
    interrupts at once. Installed only in the main thread, and never over a signal this
    process was started to ignore.

    ``patient``: later signals are ignored too. torchrun passes a Ctrl-C on to its processes
    and then sends them SIGTERM while they save; the save must finish (torchrun's own
    SIGKILL, 30 s later, remains the last word).

    A second signal within :attr:`ECHO_S` of the first is the same stop, arriving twice: a
    signal to a whole process group (a CI job cancelled, ``kill -INT -PGID``) reaches this
    process directly and again through ``uv run``, which passes it on."""

    ECHO_S = 0.5

    def __init__(self, control, patient: bool = False) -> None:
        self.control = control
        self.patient = patient
        self.signum: int | None = None
        self.at = 0.0  # when the first signal came
        self.saved: dict = {}

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                old = signal.getsignal(sig)
                if old is not signal.SIG_IGN:
                    signal.signal(sig, self._on_signal)
                    self.saved[sig] = signal.SIG_DFL if old is None else old
        return self

    def _on_signal(self, signum, frame) -> None:
        if self.signum is not None:
            if self.patient or time.monotonic() - self.at < self.ECHO_S:
                return
            raise Interrupted(signum)
        self.signum, self.at = signum, time.monotonic()
        self.control.stop(signum)

    def __exit__(self, *exc) -> None:
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def agreed(self, stop_code: int | None) -> int | None:
        """The signal the run stopped for: this process's own, else the one the processes
        agreed on (``stop_code``, the loop's; a signal to any process stops them all);
        None if none did (a stop code of 1 is no signal)."""
        signum = self.signum if self.signum is not None else (stop_code or None)
        return signum if signum is None or signum > 1 else None


def signal_name(signum: int | None) -> str:
    """The signal's name ("SIGINT", "SIGTERM", ...); "" for no signal."""
    return signal.Signals(signum).name if signum else ""


def exit_code(signum: int) -> int:
    """The exit code of a run stopped by ``signum``: 130 for Ctrl-C, 143 for SIGTERM."""
    return 128 + signum


def interrupted(e: KeyboardInterrupt) -> int:
    """The signal that interrupted the command at once (a second stop signal, or a Ctrl-C
    outside a training)."""
    return getattr(e, "signum", signal.SIGINT)
