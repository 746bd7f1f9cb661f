"""The snapshot meter: what a running loop sends out, and when.

Losses are summed on the device and read back only when a snapshot is due (steps of a run can
be ~1 ms: no device sync happens on the other steps): at most ``snapshot_hz`` times a second,
on a run of several processes every :data:`~trainer.loop.distributed.SYNC_EVERY` steps (the
processes sum theirs, at the same steps), at a pause, at each epoch's end and where a run
stops. A snapshot carries a CPU copy of the weights at most ``weights_hz`` times a second
(and always at a pause, an epoch's end or the end). A loss that went NaN or infinite since
the last one rewinds the model to its last good state (:class:`TrainingDiverged`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch

from .callbacks import Callback, Run
from .distributed import SYNC_EVERY
from .records import EpochResult, Snapshot, TrainingDiverged


def _weights_copy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


class SnapshotMeter(Callback):
    """Sums each step's losses and sends a :class:`Snapshot` to ``on_snapshot`` when one is
    due; each snapshot that saw steps goes into the history too."""

    def __init__(self, on_snapshot: Callable[[Snapshot], None] | None = None) -> None:
        self.on_snapshot = on_snapshot

    def on_fit_start(self, trainer: Any, run: Run) -> None:
        cfg = trainer.config
        self.snap_every, self.weights_every = 1.0 / cfg.snapshot_hz, 1.0 / cfg.weights_hz
        self.sums = torch.zeros(3, device=trainer.device)  # recon, kl, loss (over images)
        self.count = 0  # images summed since the last snapshot
        self.last_snap = self.last_weights = -math.inf
        self.images_since, self.active_since = 0, 0.0
        self.last_means = (math.nan,) * 3
        self.last_ips = 0.0

    def on_pause(self, trainer: Any, run: Run) -> None:
        self.emit(trainer, run, paused=True)

    def on_step_end(self, trainer: Any, run: Run, images: int, sums: torch.Tensor) -> None:
        self.sums += sums
        self.count += images
        self.images_since += images
        if trainer.procs is not None:
            if trainer.step % SYNC_EVERY == 0:
                self.emit(trainer, run)
        elif time.perf_counter() - self.last_snap >= self.snap_every:
            self.emit(trainer, run)

    def on_epoch_end(self, trainer: Any, run: Run, result: EpochResult) -> None:
        self.emit(trainer, run, test=result, final=trainer.epochs_done == run.last_epoch)

    def on_stop(self, trainer: Any, run: Run) -> None:
        self.emit(trainer, run, final=True)

    def _means(self, trainer: Any, run: Run) -> tuple[float, float, float]:
        """The mean losses since the last snapshot (over every process's images); those of
        the last one again when there were no steps since. Rewinds a diverged run."""
        procs = trainer.procs
        if procs is not None:  # every process's sums and images: the whole run's
            both = procs.sum(torch.cat([self.sums, self.sums.new_tensor([self.count])]))
            self.sums, self.count = both[:3], int(both[3].item())
        if self.count:  # else nothing new since the last snapshot: repeat its values
            self.last_means = tuple((self.sums / self.count).tolist())
        r, k, l = self.last_means
        if self.count and not all(map(math.isfinite, (r, k, l))):
            at = trainer.step
            trainer._restore(run.good)
            raise TrainingDiverged(
                f"training diverged at step {at} (loss {l}); the model was restored "
                f"to the end of epoch {trainer.epochs_done}. Try a lower learning rate "
                f"(now {trainer.lr:g}) or a smaller beta."
            )
        return r, k, l

    def emit(
        self,
        trainer: Any,
        run: Run,
        test: EpochResult | None = None,
        paused: bool = False,
        final: bool = False,
    ) -> None:
        """Send a snapshot now (and reset the sums)."""
        now = run.elapsed(paused)
        r, k, l = self._means(trainer, run)
        dt = now - self.active_since
        if self.images_since and dt > 0:
            self.last_ips = self.images_since / dt
        done = trainer.step - run.start_step
        eta = (now / done) * (run.total_steps - trainer.step) if done else math.inf
        wall = time.perf_counter()
        due_w = wall - self.last_weights >= self.weights_every
        want_w = test is not None or final or paused or due_w
        snap = Snapshot(
            step=trainer.step,
            total_steps=run.total_steps,
            epoch=trainer.epochs_done if test else min(trainer.epochs_done + 1, run.last_epoch),
            epochs=run.last_epoch,
            nelbo=r + k,
            recon=r,
            kl=k,
            loss=l,
            beta=run.beta_eff,
            lr=trainer.lr,
            images_per_second=self.last_ips,
            elapsed=now,
            eta=eta,
            weights=_weights_copy(trainer.model) if want_w else None,
            test=test,
            paused=paused,
            final=final,
        )
        if self.count:
            trainer.history.add_snapshot(snap)
        if want_w:
            self.last_weights = wall
        self.sums = torch.zeros(3, device=trainer.device)
        self.count = 0
        self.last_snap = wall
        self.images_since, self.active_since = 0, now
        if self.on_snapshot:
            self.on_snapshot(snap)
