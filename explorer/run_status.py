"""What the run is doing, as values: its named states and the status the window shows.

:class:`~explorer.run.RunController` moves the run through these states and computes one
:class:`RunStatus` whenever anything a person can see changes; the Run box, its buttons, the
progress bar, the status bar and the data line render it. Whether the run is busy is the
controller's to say (its worker threads): the status carries that answer, so nothing that
renders a status can disagree with the controller.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class RunState(str, Enum):
    NO_DATA = "no data"
    LOADING = "loading"
    READY = "ready"
    PREPARING = "preparing"
    TRAINING = "training"
    PAUSED = "paused"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FINISHED = "finished"
    DIVERGED = "diverged"
    FAILED = "failed"


BUSY = {RunState.LOADING, RunState.PREPARING, RunState.TRAINING, RunState.PAUSED, RunState.STOPPING}
RUNNING = BUSY - {RunState.LOADING}  # a training thread exists


@dataclass(frozen=True)
class RunStatus:
    """Everything the window shows about the run, computed in one place."""

    state: RunState
    headline: str  # on the progress bar
    detail: str  # the line under it
    progress: float | None  # 0..1; None: working, with nothing to measure yet
    summary: str  # the status bar's line
    data_text: str  # under the Data settings
    trained: bool  # the session's model has had training (Continue makes sense)
    remaining: int  # epochs Continue offers (what a stopped or saved run left undone; 0: none)
    continuing: bool = False  # the run in flight continues the model (not a new one)
    model_note: str = ""  # where the model settings on the left differ from the model on screen
    # the controller's own answers (RunController.busy and .running) when this was computed
    busy: bool = False  # a data load or a run is in flight
    running: bool = False  # a training thread exists: the settings of the run are locked

    @property
    def can_start(self) -> bool:
        return not self.busy

    @property
    def can_continue(self) -> bool:
        return not self.busy and self.trained

    @property
    def can_pause(self) -> bool:
        return self.state in (RunState.TRAINING, RunState.PAUSED)

    @property
    def can_stop(self) -> bool:
        return self.state in (RunState.PREPARING, RunState.TRAINING, RunState.PAUSED)


def epochs_text(n: int) -> str:
    """``n`` epochs, in words: "1 epoch", "3 epochs"."""
    return f"{n} epoch{'' if n == 1 else 's'}"


def ended_verb(stopped: bool, done: int, target: int, this: int | None) -> str:
    """How the status bar's summary of a run that ended starts: "Finished 1 epoch",
    "Stopped after 2 of 5 epochs (1 more)". ``this``: the epochs of this run when it
    continued a model (None for a new one)."""
    more = f" ({this} more)" if this is not None else ""
    if stopped:
        return f"Stopped after {done} of {epochs_text(target)}{more}"
    return f"Finished {epochs_text(done)}{more}"
