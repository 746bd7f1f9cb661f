"""The training loop and what it is made of.

=================  ============================================================================
``records``        the values that leave the loop: EpochResult, Snapshot, History, FitResult
``control``        :class:`TrainControl`: stop, pause and live changes from other threads
``device``         where a run trains, bfloat16 or not, and its seeds
``fit``            :class:`Trainer`: the fit loop (plan, epochs, steps), :func:`train`
``callbacks``      the hooks the loop calls, and the film's callback
``meter``          the snapshot meter: what a running loop sends out, and when
``feed``           a dataset on the device, or streamed to it a batch at a time
``adam``           Adam as one fused kernel where the device offers it
``fused``          the hand-derived step of MLP Bernoulli models
``distributed``    a run on several processes (DistributedDataParallel)
``threads``        how many CPU threads torch trains with
=================  ============================================================================

The names below are this package's, as importers have always used them
(``from trainer.loop import Trainer, History``). They are looked up on first use (PEP 562), so
that importing a light part (``trainer.loop.threads``, ``trainer.loop.records``) does not
import torch: the window and the command line tame torch's thread variables
(:func:`trainer.loop.threads.tame_environment`) before torch loads.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "records": ("EpochResult", "Snapshot", "History", "FitResult", "TrainingDiverged"),
    "control": ("TrainControl",),
    "device": ("available_devices", "resolve_device", "bf16_problem", "epoch_seed",
               "seed_everything"),
    "fit": ("Trainer", "train", "model_config_for", "make_adam"),
    "callbacks": ("Callback", "Run", "FilmCapture"),
    "meter": ("SnapshotMeter",),
}  # fmt: skip
_MODULE = {name: module for module, names in _WHERE.items() for name in names}
__all__ = sorted(_MODULE)


def __getattr__(name: str) -> Any:
    module = _MODULE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # looked up each time (not copied here): a name patched where it is defined is seen
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODULE})
