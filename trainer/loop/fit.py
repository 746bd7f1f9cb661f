"""The training loop: Adam over index-sliced batches of an in-memory dataset.

:meth:`Trainer.fit` reads as a fit loop: make the plan (a :class:`~trainer.loop.callbacks.Run`),
then for each epoch begin it (its order and noise), and for each step: what happens between
steps (a pause, a stop, the processes' agreement), one step (the fused step, DDP or autograd)
and what follows it; then end the epoch (test it, check it, record it). Side effects (the film,
the snapshots, a caller's autosave) are callbacks at named hooks (:mod:`trainer.loop.callbacks`).

Progress leaves only through ``on_snapshot`` as frozen :class:`Snapshot` values (floats,
NumPy arrays and a detached CPU copy of the weights) at a bounded rate
(:mod:`trainer.loop.meter`). Stop, pause and live changes of learning rate and beta arrive
through a :class:`TrainControl`, which the loop reads between steps, so any thread may drive it.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Sequence

import torch

from ..config import ConfigError, ModelConfig, TrainConfig
from ..data.arrays import ImageData, model_data_problem
from ..evaluate import elbo_stats
from ..losses import kl_weight
from ..models import LatentModel, build_model
from .adam import Adam
from .callbacks import Callback, FilmCapture, Frames, Hooks, Run
from .control import TrainControl
from .device import bf16_problem, epoch_seed, resolve_device, seed_everything
from .distributed import SYNC_EVERY, Processes, wrap
from .feed import budget_bytes, fits, place
from .fused import FusedStep, supports
from .meter import SnapshotMeter
from .records import EpochResult, FitResult, History, Snapshot, TrainingDiverged


def make_adam(params: list[torch.nn.Parameter], lr: float) -> Adam:
    """Adam, as one fused kernel where this PyTorch and device offer it (see trainer.loop.adam)."""
    return Adam(params, lr=lr)


class Trainer:
    """Owns a model, its optimizer and its data on one device; ``fit`` runs the epochs.

    Calling ``fit`` again continues where the last call ended (the optimizer state, step
    count and history carry over), so "train 5 more epochs" is just another call.
    """

    def __init__(
        self,
        model: LatentModel,
        data: ImageData,
        config: TrainConfig,
        device: torch.device | str | None = None,
        history: History | None = None,
        optimizer_state: dict | None = None,
        epochs_done: int = 0,
        fused: bool | None = None,
        step: int | None = None,
        position: dict | None = None,
        processes: Processes | None = None,
    ) -> None:
        """``fused``: use the hand-derived step for MLP Bernoulli models (default: when it
        applies); False forces autograd. ``step``: optimiser steps already taken (default:
        the history's last). ``position``: where in an unfinished epoch a stopped run was
        (``Trainer.position()``), so that it goes on from there. ``processes``: this
        process's place in a run on several (:mod:`trainer.loop.distributed`); the model is then
        trained through DistributedDataParallel, with autograd."""
        self.config = config
        self.procs = processes
        self._control: TrainControl | None = None  # the last fit's
        self.device = torch.device(device) if device is not None else resolve_device(config.device)
        self.model = model.to(self.device)
        # a conv body on the CPU keeps its weights, and so its activations, channels-last:
        # oneDNN's faster layout there (1.13-1.15x a step, bench_train.py --conv-options)
        self.channels_last = (
            model.config.arch == "conv" and self.device.type == "cpu" and processes is None
        )
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        mc = model.config
        problem = model_data_problem(mc.image_shape, mc.num_classes, mc.conditional, data)
        if problem is not None:
            raise ConfigError(problem)
        if len(data.train_x) == 0:  # the examples' bundled images are test images only
            raise ConfigError(
                f"{data.name} has no training images (only held-out test images); "
                "choose data to train on"
            )
        # both splits on the device when they fit its data memory budget; else the
        # training split's batches are streamed to it (trainer.loop.feed)
        share = 1  # the processes of a run on this machine's CPU share its memory
        if processes is not None and self.device.type == "cpu":
            share = processes.on_this_machine
        self.data_budget = budget_bytes(self.device, config.data_memory, share)
        hold = fits(data, self.data_budget)
        if processes is not None:  # all hold their data, or all stream it
            hold = not processes.max(0 if hold else 1)
        self.data, self.feed = place(
            data, self.device, self.data_budget, mc.conditional, self.channels_last, hold
        )
        self.noise = torch.Generator(device=self.device)  # this run's own random stream
        self.model.noise = self.noise
        self.optimizer = make_adam(
            [p for p in self.model.parameters() if p.requires_grad], config.lr
        )
        # bf16: the layers in bfloat16 under autocast, where the device computes in it (a
        # run saved in bf16 and continued on a machine without it trains in float32)
        self.bf16 = config.precision == "bf16" and bf16_problem(self.device) is None
        fused = fused is not False and supports(model) and processes is None and not self.bf16
        self.fused_step = FusedStep(self.model) if fused else None
        self.ddp = None
        if processes is not None:
            self.ddp = wrap(self.model, processes)  # process 0's weights, everywhere
        if optimizer_state:
            self.optimizer.load_state_dict(optimizer_state)
        self.history = history or History()
        self.epochs_done = epochs_done
        self.step = self.history.last_step if step is None else int(step)
        # the unfinished epoch: images of its order already trained, their loss sums and the
        # noise generator's state after them (empty at an epoch's end)
        self.epoch_images = 0
        self.epoch_sums = torch.zeros(3, device=self.device)
        self._noise_state: torch.Tensor | None = None
        if position and 0 < int(position.get("epoch_images", 0)) < len(self.data.train_x):
            self.epoch_images = int(position["epoch_images"])
            self.epoch_sums = torch.tensor(
                [float(v) for v in position.get("epoch_sums", (0.0,) * 3)], device=self.device
            )
            state = position.get("noise_state")
            # a generator's state is device-specific (a CUDA one is 16 bytes, a CPU one
            # 5056): from another device the rest of the epoch draws fresh noise instead
            if state is not None and state.numel() == self.noise.get_state().numel():
                self._noise_state = state
        # The learning rate of a continued run is its config's (a checkpoint's train config
        # holds the rate its run was started or last continued with; a new --lr replaces
        # it), never the rate in the saved optimiser state (where a live change made with
        # TrainControl.set_lr was): that one is overwritten here.
        # (tests/trainer/test_loop.py::test_a_continued_run_takes_its_configs_learning_rate)
        self.lr = config.lr
        self.beta = config.beta
        for g in self.optimizer.param_groups:
            g["lr"] = self.lr

    @property
    def stop_code(self) -> int:
        """Why the last fit stopped (a signal's number; on a run of several processes the
        reason they agreed on), 0 if it ran to its end: its control's
        :attr:`TrainControl.code`, the one record of it."""
        return self._control.code if self._control is not None else 0

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.data.train_x) / self.config.batch_size)

    def test_stats(self):
        d = self.data
        return elbo_stats(self.model, d.test_x, d.test_y if self.model.num_classes else None)

    def position(self) -> dict:
        """Where the run is inside its current epoch (call between steps); saved with a
        checkpoint and given back to ``Trainer(position=...)`` to go on from there exactly."""
        return {
            "epoch_images": self.epoch_images,
            "epoch_sums": [float(v) for v in self.epoch_sums.tolist()],
            "noise_state": self.noise.get_state(),
        }

    def _checkpoint_state(self) -> tuple:
        """A copy of everything a diverging run must be rewound to."""
        return (
            copy.deepcopy(self.model.state_dict()),
            copy.deepcopy(self.optimizer.state_dict()),
            self.step,
            self.epochs_done,
            len(self.history.steps),
            len(self.history.epochs),
            self.position(),
        )

    def _restore(self, good: tuple) -> None:
        model_state, optimizer_state, self.step, self.epochs_done, n_steps, n_epochs, pos = good
        del self.history.steps[n_steps:], self.history.epochs[n_epochs:]
        self.epoch_images = pos["epoch_images"]
        self.epoch_sums = torch.tensor(pos["epoch_sums"], device=self.device)
        self._noise_state = pos["noise_state"] if self.epoch_images else None
        self.model.load_state_dict(model_state)
        self.optimizer.load_state_dict(optimizer_state)

    def _layers_precision(self):
        """Where a training step's forward pass runs: bfloat16 autocast, or as it is."""
        if self.bf16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _apply_changes(self, control: TrainControl | None) -> None:
        if control is None:
            return
        lr, beta = control.take_changes()
        if lr is not None:
            self.lr = lr
            for g in self.optimizer.param_groups:
                g["lr"] = lr
        if beta is not None:
            self.beta = beta

    def fit(
        self,
        epochs: int | None = None,
        control: TrainControl | None = None,
        on_snapshot: Callable[[Snapshot], None] | None = None,
        film: Frames | None = None,
        callbacks: Sequence[Callback] = (),
    ) -> FitResult:
        """Train ``epochs`` more epochs (default: the config's). Returns when done or stopped.

        Parameters
        ----------
        epochs
            Epochs to train in this call; the config's ``epochs`` when not given.
        control
            Stops, pauses and live changes from other threads; its ``code`` says why the
            run stopped.
        on_snapshot
            Called with each :class:`Snapshot` on the training thread (at a bounded rate).
        film
            A :class:`trainer.film.Film`: frames of the model are taken as it trains, the first
            before any step of a new film, then as the film asks (their time is not counted
            as training time).
        callbacks
            More :class:`~trainer.loop.callbacks.Callback` objects, called at each hook
            after the film and the snapshots.

        Returns
        -------
        FitResult
            The history, where the run ended, whether it was stopped, and its speed.

        Raises
        ------
        TrainingDiverged
            The loss became NaN or infinite; the model (and the film) went back to the last
            epoch's end.
        """
        # As training goes on, Adam's second moments and many gradients sink into the
        # denormal range, where x86 arithmetic is many times slower: this run's throughput
        # fell by a fifth within a few epochs. Flushing them to zero costs no accuracy here.
        flush = self.device.type == "cpu" and torch.set_flush_denormal(True)
        hooks = Hooks(
            [
                *([FilmCapture(film)] if film is not None else []),
                SnapshotMeter(on_snapshot),
                *callbacks,
            ]
        )
        if control is None and self.procs is not None:
            control = TrainControl()  # where the processes' agreed reason to stop is kept
        self._control = control
        try:
            return self._fit(epochs, control, hooks)
        except TrainingDiverged:
            hooks.on_diverged(self)
            raise
        finally:
            if flush:
                torch.set_flush_denormal(False)

    def _fit(self, epochs: int | None, control: TrainControl | None, hooks: Hooks) -> FitResult:
        run = self._plan(epochs)
        hooks.on_fit_start(self, run)
        bs = self.config.batch_size
        for epoch in range(run.first_epoch, run.last_epoch):
            perm = self._begin_epoch(epoch, run)
            for i in range(self.epoch_images, run.images, bs):
                if self._between_steps(control, run, hooks):
                    run.stopped = True
                    break
                self._after_step(run, hooks, i, *self._one_step(perm[i : i + bs], run))
            if run.stopped:
                break
            self._end_epoch(run, hooks)
        run.stop_clock()
        if run.stopped:
            if self.procs is not None:  # the unfinished epoch's sums, as saved: the whole run's
                self.procs.sum(self.epoch_sums)
            hooks.on_stop(self, run)
        return FitResult(
            history=self.history,
            epochs_done=self.epochs_done,
            step=self.step,
            stopped=run.stopped,
            images_per_second=run.images_total / run.active if run.active > 0 else 0.0,
            device=str(self.device),
            seconds=run.active,
            steps_run=self.step - run.start_step,
            bf16=self.bf16,
            streamed=self.feed.streamed,
        )

    def _plan(self, epochs: int | None) -> Run:
        """This call's plan; its clock starts now."""
        cfg = self.config
        epochs = epochs or cfg.epochs
        n, bs, spe = len(self.data.train_x), cfg.batch_size, self.steps_per_epoch
        run = Run(
            first_epoch=self.epochs_done,
            last_epoch=self.epochs_done + epochs,
            # the first epoch may be one a stopped run left unfinished
            total_steps=self.step + math.ceil((n - self.epoch_images) / bs) + (epochs - 1) * spe,
            start_step=self.step,
            images=n,
            warmup_steps=round(cfg.warmup_epochs * spe),
        )
        run.good = self._checkpoint_state()
        run.beta_eff = kl_weight(self.beta, self.step, run.warmup_steps)
        self.model.train()
        return run

    def _begin_epoch(self, epoch: int, run: Run) -> torch.Tensor:
        """Seed epoch ``epoch``'s noise; its order of images."""
        # every epoch's order and noise follow from (seed, epoch) alone, so a model
        # saved at an epoch's end and continued trains exactly as if it never stopped;
        # one stopped inside an epoch goes on from the image and noise where it stopped
        seed = epoch_seed(self.config.seed, epoch)
        start = self.epoch_images
        if start and self._noise_state is not None:
            self.noise.set_state(self._noise_state)
        else:
            self.noise.manual_seed(seed)  # the reparameterisation noise
        self._noise_state = None
        if not start:
            self.epoch_sums.zero_()
        perm = torch.randperm(run.images, generator=torch.Generator().manual_seed(seed))
        return self.feed.order(perm)

    def _between_steps(self, control: TrainControl | None, run: Run, hooks: Hooks) -> bool:
        """Pause, calls from other threads, live changes; True to stop here."""
        procs = self.procs
        if procs is not None:  # the processes agree, at the same steps, to stop
            if self.step % SYNC_EVERY == 0:
                asked = control is not None and control.stop_requested
                why = procs.max((control.code or 1) if asked else 0)
                if why:  # the reason any of them had (a signal's number), or 1
                    control.stop(why)  # (fit gives a run of several processes a control)
                    return True
            if control is not None:
                self._apply_changes(control)
        elif control is not None:
            if control.paused and not control.stop_requested:
                run.stop_clock()
                hooks.on_pause(self, run)
                while not control.wait_while_paused(0.1):
                    control.run_calls(self)
                run.start_clock()
            if control.stop_requested:
                return True
            self._apply_changes(control)
            control.run_calls(self)
        return False

    def _one_step(self, idx: torch.Tensor, run: Run) -> tuple[int, int, torch.Tensor]:
        """One optimiser step on the images ``idx`` of the global batch: (images this
        process trained on, the global batch's size, their summed recon, kl and loss)."""
        procs, model = self.procs, self.model
        global_b = idx.shape[0]
        if procs is not None:  # this process's share of the global batch
            a, b = procs.rows(global_b)
            idx = idx[a:b]
            model.noise_rows = (global_b, a, b)  # and of its noise
        xb, yb = self.feed.take(idx)  # (B, C, H, W) in [0, 1]; labels if conditional
        beta_eff = run.beta_eff = kl_weight(self.beta, self.step, run.warmup_steps)
        if self.fused_step is not None:
            step_sums = self.fused_step(xb, yb, beta_eff)
        elif self.ddp is not None:
            with self._layers_precision():
                recon, kl = self.ddp(xb, yb)
            loss_vec = recon + beta_eff * kl
            self.optimizer.zero_grad(set_to_none=True)
            # DDP averages over the processes: this makes it the global batch's mean
            (loss_vec.sum() * (procs.world / global_b)).backward()
            model.noise_rows = None
            with torch.no_grad():
                step_sums = torch.stack([recon.sum(), kl.sum(), loss_vec.sum()])
        else:
            with self._layers_precision():
                recon, kl = model.elbo_terms(xb, yb)  # (B,), (B,) in float32
            loss_vec = recon + beta_eff * kl
            self.optimizer.zero_grad(set_to_none=True)
            loss_vec.mean().backward()
            with torch.no_grad():
                step_sums = torch.stack([recon.sum(), kl.sum(), loss_vec.sum()])
        self.optimizer.step()
        return xb.shape[0], global_b, step_sums

    def _after_step(
        self, run: Run, hooks: Hooks, i: int, images: int, global_b: int, sums: torch.Tensor
    ) -> None:
        self.epoch_sums += sums
        run.images_total += images
        self.epoch_images = i + global_b
        self.step += 1
        hooks.on_step_end(self, run, images, sums)

    def _end_epoch(self, run: Run, hooks: Hooks) -> None:
        """Test the epoch, check it, record it; the state to rewind to is then its end."""
        self.epochs_done += 1
        self.epoch_images = 0
        run.stop_clock()
        if self.procs is not None:
            self.procs.sum(self.epoch_sums)  # the whole epoch's, over every process
        stats = self.test_stats()
        hooks.on_test(self, run, stats)
        run.start_clock()
        sums = self.epoch_sums
        train_nelbo = float((sums[0] + sums[1]) / run.images)  # mean over the epoch
        result = EpochResult(
            epoch=self.epochs_done,
            step=self.step,
            test_nelbo=stats.nelbo,
            test_recon=stats.recon,
            test_kl=stats.kl,
            train_nelbo=train_nelbo,
            kl_per_dim=stats.kl_per_dim,
            elapsed=run.active,
        )
        if not math.isfinite(stats.nelbo):
            at = self.epochs_done
            self._restore(run.good)
            raise TrainingDiverged(
                f"training diverged: the test loss is {stats.nelbo} after epoch {at}; the "
                f"model was restored to the end of epoch {self.epochs_done}. Try a lower "
                f"learning rate (now {self.lr:g}) or a smaller beta."
            )
        self.history.add_epoch(result)
        hooks.on_epoch_end(self, run, result)
        run.good = self._checkpoint_state()


def train(
    model_config: ModelConfig,
    data: ImageData,
    config: TrainConfig,
    control: TrainControl | None = None,
    on_snapshot: Callable[[Snapshot], None] | None = None,
    film: Frames | None = None,
) -> tuple[Trainer, FitResult]:
    """Seed, build the model, and fit it: the one-call path used by the CLI and tests.

    Parameters
    ----------
    model_config, data, config
        The model to build, the data to train it on, and how to train it.
    control, on_snapshot, film
        As :meth:`Trainer.fit` takes them.

    Returns
    -------
    tuple of (Trainer, FitResult)
        The trainer (to save or continue it) and what the fit did.
    """
    seed_everything(config.seed)
    model = build_model(model_config)
    trainer = Trainer(model, data, config)
    return trainer, trainer.fit(control=control, on_snapshot=on_snapshot, film=film)


def model_config_for(data: ImageData, **kwargs) -> ModelConfig:
    """A ModelConfig whose image shape and class count match ``data``."""
    return ModelConfig(image_shape=data.image_shape, num_classes=data.num_classes, **kwargs)
