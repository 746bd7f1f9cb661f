"""The plain values that leave the training loop: a finished epoch's :class:`EpochResult`, the
:class:`Snapshot` a running loop sends out now and then, the run's :class:`History` (saved
with every checkpoint) and a fit's :class:`FitResult`; and :class:`TrainingDiverged`.

Light (no torch at import): a checkpoint, an export or a film reads a history without
importing the loop that wrote it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..config import is_int, is_real, shown

if TYPE_CHECKING:
    import numpy as np
    import torch


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the model was restored to its last good state."""


@dataclass(frozen=True)
class EpochResult:
    epoch: int
    step: int
    test_nelbo: float
    test_recon: float
    test_kl: float
    train_nelbo: float
    kl_per_dim: np.ndarray
    elapsed: float


@dataclass(frozen=True)
class Snapshot:
    """What the loop tells the outside world, at most ``snapshot_hz`` times a second.

    Loss fields are means per image (nats) over the steps since the previous snapshot.
    ``weights`` is a detached CPU copy of the full state dict, at most ``weights_hz`` times
    a second (None otherwise); ``test`` is set on the snapshot that closes an epoch.
    """

    step: int
    total_steps: int
    epoch: int  # 1-based epoch in progress (or just finished)
    epochs: int
    nelbo: float
    recon: float
    kl: float
    loss: float  # the optimised objective, recon + beta_eff * kl
    beta: float  # effective KL weight (after warm-up)
    lr: float
    images_per_second: float
    elapsed: float  # seconds of training, pauses excluded
    eta: float  # seconds left at the recent rate
    weights: dict[str, torch.Tensor] | None = None
    test: EpochResult | None = None
    paused: bool = False
    final: bool = False

    @property
    def progress(self) -> float:
        return self.step / max(1, self.total_steps)


@dataclass
class History:
    """Loss curves: one row per snapshot and one per epoch."""

    steps: list[dict] = field(default_factory=list)
    epochs: list[dict] = field(default_factory=list)

    STEP_KEYS = ("step", "epoch", "nelbo", "recon", "kl", "beta", "lr", "images_per_second")
    EPOCH_KEYS = ("epoch", "step", "test_nelbo", "test_recon", "test_kl", "train_nelbo", "elapsed")
    # what cannot be negative (a Gaussian decoder's -ELBO and reconstruction can be)
    NON_NEGATIVE = ("kl", "test_kl", "beta", "images_per_second", "elapsed")

    def add_snapshot(self, s: Snapshot) -> None:
        self.steps.append({k: getattr(s, k) for k in self.STEP_KEYS})

    def add_epoch(self, e: EpochResult) -> None:
        self.epochs.append({k: getattr(e, k) for k in self.EPOCH_KEYS})

    # what a row of each kind must have; the others of its keys are optional
    STEP_REQUIRED = ("step",)
    EPOCH_REQUIRED = ("epoch", "step", "test_nelbo", "test_recon", "test_kl")
    MAX_COUNT = 2**53  # steps and epochs (integers a float holds exactly)

    def to_dict(self) -> dict:
        return {"steps": self.steps, "epochs": self.epochs}

    @classmethod
    def from_dict(cls, d: Any) -> History:
        """The history that ``to_dict`` gave (as read back from JSON).

        Raises ValueError naming the entry for anything else: an object of ``steps`` and
        ``epochs``, lists of rows holding integer steps and epochs and finite losses. Keys a
        row does not know (a loss a later version records, say) are dropped.
        """
        if not isinstance(d, dict):
            raise ValueError(f"history must be an object, not {shown(d)}")
        unknown = sorted(set(d) - {"steps", "epochs"}, key=str)
        if unknown:
            raise ValueError(f"history has an unknown field {shown(unknown[0])}")
        return cls(
            steps=cls._rows(d, "steps", cls.STEP_KEYS, cls.STEP_REQUIRED),
            epochs=cls._rows(d, "epochs", cls.EPOCH_KEYS, cls.EPOCH_REQUIRED),
        )

    @classmethod
    def _rows(cls, d: dict, name: str, keys: tuple, required: tuple) -> list[dict]:
        rows = d.get(name, [])
        if not isinstance(rows, list):
            raise ValueError(f"history.{name} must be a list, not {shown(rows)}")
        out = []
        for i, row in enumerate(rows):
            where = f"history.{name}[{i}]"
            if not isinstance(row, dict):
                raise ValueError(f"{where} must be an object, not {shown(row)}")
            for k in required:
                if k not in row:
                    raise ValueError(f"{where} has no {k}")
            for k in keys:
                if k not in row:
                    continue
                v = row[k]
                if k in ("step", "epoch"):
                    if not (is_int(v) and 0 <= v <= cls.MAX_COUNT):
                        raise ValueError(
                            f"{where}.{k} must be an integer 0 to 2**53, not {shown(v)}"
                        )
                elif not is_real(v):
                    raise ValueError(f"{where}.{k} must be a finite number, not {shown(v)}")
                elif k in cls.NON_NEGATIVE and v < 0:
                    raise ValueError(f"{where}.{k} cannot be negative, not {shown(v)}")
                elif k == "lr" and not 0 < v <= 1:
                    raise ValueError(f"{where}.lr must be in (0, 1], not {shown(v)}")
            out.append({k: row[k] for k in keys if k in row})
        return out

    @property
    def last_step(self) -> int:
        return int(self.steps[-1]["step"]) if self.steps else 0


@dataclass
class FitResult:
    history: History
    epochs_done: int
    step: int  # the model's optimiser steps in all
    stopped: bool
    images_per_second: float
    device: str
    seconds: float  # of this call, pauses excluded
    steps_run: int = 0  # steps this call took
    bf16: bool = False  # its layers computed in bfloat16 (--precision bf16)
    streamed: bool = False  # its batches were streamed to the device (trainer.loop.feed)
