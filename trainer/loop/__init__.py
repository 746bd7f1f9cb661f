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

from ..lazy import lazy_names

_WHERE = {
    "records": ("EpochResult", "Snapshot", "History", "FitResult", "TrainingDiverged"),
    "control": ("TrainControl",),
    "device": ("available_devices", "resolve_device", "bf16_problem", "epoch_seed",
               "seed_everything"),
    "fit": ("Trainer", "train", "model_config_for", "make_adam"),
    "callbacks": ("Callback", "Run", "FilmCapture"),
    "meter": ("SnapshotMeter",),
}  # fmt: skip
__getattr__, __dir__, __all__ = lazy_names(__name__, _WHERE, globals())
