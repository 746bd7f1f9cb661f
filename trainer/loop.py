"""The training loop: Adam over index-sliced batches of an in-memory dataset.

Progress leaves only through ``on_snapshot`` as frozen :class:`Snapshot` values (floats,
NumPy arrays and a detached CPU copy of the weights) at a bounded rate. Stop, pause and
live changes of learning rate and beta arrive through a :class:`TrainControl`, which the
loop reads between steps, so any thread may drive it.

Losses are summed on the device and read back only when a snapshot is due: no device sync
happens on the other steps.
"""

from __future__ import annotations

import contextlib
import copy
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .adam import Adam
from .config import ConfigError, ModelConfig, TrainConfig, is_int, is_real, shown
from .data.arrays import ImageData, model_data_problem
from .evaluate import elbo_stats
from .feed import budget_bytes, fits, place
from .fused import FusedStep, supports
from .losses import kl_weight
from .models import LatentModel, build_model

if TYPE_CHECKING:
    from .distributed import Processes
    from .film import Film


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the model was restored to its last good state."""


def available_devices() -> list[str]:
    """Devices this machine can train on, best first."""
    devs = []
    if torch.cuda.is_available():
        devs.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devs.append("mps")
    return devs + ["cpu"]


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA, else Apple MPS, else CPU; a named device must exist here."""
    if name == "auto":
        return torch.device(available_devices()[0])
    if name not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"unknown device {name!r}; choose auto, cpu, cuda or mps")
    if name != "cpu" and name not in available_devices():
        raise ConfigError(
            f"device {name!r} was asked for but is not available on this machine "
            f"(available: {', '.join(available_devices())})"
        )
    return torch.device(name)


def bf16_problem(device: torch.device) -> str | None:
    """Why ``device`` cannot train in bfloat16 at speed (it would be emulated, slower than
    float32), or None when it can: a CUDA GPU with bfloat16 arithmetic (Ampere and later),
    or an x86 CPU with bfloat16 instructions (AVX-512 BF16 or AMX). AVX-512 alone is not
    enough: oneDNN then converts every operand and a step took 2.2 times as long as in
    float32."""
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return None
        return f"this GPU ({torch.cuda.get_device_name(device)}) has no bfloat16 arithmetic"
    if device.type == "cpu":
        cpu = torch.cpu
        try:
            if cpu._is_avx512_bf16_supported() or cpu._is_amx_tile_supported():
                return None
        except (AttributeError, RuntimeError):
            pass
        return "this CPU has no bfloat16 instructions (AVX-512 BF16 or AMX)"
    return f"bfloat16 training is offered on CUDA and on CPUs, not on {device.type}"


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch ``epoch`` (0-based) of a run seeded with ``seed``."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)[0] >> 1)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (third-party code may use the global RNG)


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
        self._calls: list[Callable[[Trainer], None]] = []
        self.code = 0  # why it was stopped (a signal's number), for a run's processes to agree

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

    def call_soon(self, fn: Callable[[Trainer], None]) -> None:
        """Run ``fn(trainer)`` on the training thread between two steps (or at once while
        paused), where the weights and the optimiser state belong to the same step: how
        another thread saves a running model."""
        with self._lock:
            self._calls.append(fn)

    def run_calls(self, trainer: Trainer) -> None:
        """Run the queued calls (the training thread does, between steps)."""
        if not self._calls:  # the common case, without the lock
            return
        with self._lock:
            calls, self._calls = self._calls, []
        for fn in calls:
            fn(trainer)


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
    streamed: bool = False  # its batches were streamed to the device (trainer.feed)


def make_adam(params: list[torch.nn.Parameter], lr: float) -> Adam:
    """Adam, as one fused kernel where this PyTorch and device offer it (see trainer.adam)."""
    return Adam(params, lr=lr)


def _weights_copy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


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
        process's place in a run on several (:mod:`trainer.distributed`); the model is then
        trained through DistributedDataParallel, with autograd."""
        self.config = config
        self.procs = processes
        self.stop_code = 0  # why a run on several processes stopped (see TrainControl.stop)
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
        # training split's batches are streamed to it (trainer.feed)
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
            from .distributed import wrap

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
        self.lr = config.lr
        self.beta = config.beta
        for g in self.optimizer.param_groups:
            g["lr"] = self.lr

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
        film: Film | None = None,
    ) -> FitResult:
        """Train ``epochs`` more epochs (default: the config's). Returns when done or stopped.

        With a ``film`` (:class:`trainer.film.Film`), frames of the model are taken as it
        trains: the first before any step of a new film, then as the film asks (their time is
        not counted as training time)."""
        # As training goes on, Adam's second moments and many gradients sink into the
        # denormal range, where x86 arithmetic is many times slower: this run's throughput
        # fell by a fifth within a few epochs. Flushing them to zero costs no accuracy here.
        flush = self.device.type == "cpu" and torch.set_flush_denormal(True)
        try:
            return self._fit(epochs, control, on_snapshot, film)
        except TrainingDiverged:
            if film is not None:  # the model went back: so does the film
                film.rewind(self.step)
            raise
        finally:
            if flush:
                torch.set_flush_denormal(False)

    def _fit(self, epochs, control, on_snapshot, film) -> FitResult:
        cfg, model, data = self.config, self.model, self.data
        epochs = epochs or cfg.epochs
        n, bs, spe = len(data.train_x), cfg.batch_size, self.steps_per_epoch
        first_epoch = self.epochs_done
        last_epoch = first_epoch + epochs
        # the first epoch may be one a stopped run left unfinished
        total_steps = self.step + math.ceil((n - self.epoch_images) / bs) + (epochs - 1) * spe
        start_step = self.step
        # steps of a run can be ~1 ms: the loss sums stay on the device until a snapshot
        warmup_steps = round(cfg.warmup_epochs * spe)
        feed = self.feed

        snap_every, weights_every = 1.0 / cfg.snapshot_hz, 1.0 / cfg.weights_hz
        procs = self.procs
        if procs is not None:
            from .distributed import SYNC_EVERY
        sums = torch.zeros(3, device=self.device)  # recon, kl, loss (summed over images)
        count = 0
        active = 0.0  # seconds spent training (pauses excluded)
        t_mark = time.perf_counter()
        last_snap = last_weights = -math.inf
        images_since, active_since, images_total = 0, 0.0, 0
        last_means = (math.nan,) * 3
        last_ips = 0.0
        good = self._checkpoint_state()
        stopped = False
        beta_eff = kl_weight(self.beta, self.step, warmup_steps)
        model.train()
        if film is not None and not len(film):  # where a new film starts: before any step
            film.capture(model, self.step, self.epochs_done + self.epoch_images / n)
            t_mark = time.perf_counter()

        def emit(test: EpochResult | None = None, paused: bool = False, final: bool = False):
            nonlocal sums, count, last_snap, last_weights, images_since, active_since
            now = active + (time.perf_counter() - t_mark if not paused else 0.0)
            nonlocal last_means
            if procs is not None:  # every process's sums and images: the whole run's
                both = procs.sum(torch.cat([sums, sums.new_tensor([count])]))
                sums, count = both[:3], int(both[3].item())
            if count:  # else nothing new since the last snapshot: repeat its values
                last_means = tuple((sums / count).tolist())
            r, k, l = last_means
            if count and not all(map(math.isfinite, (r, k, l))):
                at = self.step
                self._restore(good)
                raise TrainingDiverged(
                    f"training diverged at step {at} (loss {l}); the model was restored "
                    f"to the end of epoch {self.epochs_done}. Try a lower learning rate "
                    f"(now {self.lr:g}) or a smaller beta."
                )
            nonlocal last_ips
            dt = now - active_since
            if images_since and dt > 0:
                last_ips = images_since / dt
            ips = last_ips
            done = self.step - start_step
            eta = (now / done) * (total_steps - self.step) if done else math.inf
            wall = time.perf_counter()
            want_w = test is not None or final or paused or wall - last_weights >= weights_every
            snap = Snapshot(
                step=self.step,
                total_steps=total_steps,
                epoch=self.epochs_done if test else min(self.epochs_done + 1, last_epoch),
                epochs=last_epoch,
                nelbo=r + k,
                recon=r,
                kl=k,
                loss=l,
                beta=beta_eff,
                lr=self.lr,
                images_per_second=ips,
                elapsed=now,
                eta=eta,
                weights=_weights_copy(model) if want_w else None,
                test=test,
                paused=paused,
                final=final,
            )
            if count:
                self.history.add_snapshot(snap)
            if want_w:
                last_weights = wall
            sums = torch.zeros(3, device=self.device)
            count = 0
            last_snap = wall
            images_since, active_since = 0, now
            if on_snapshot:
                on_snapshot(snap)

        for epoch in range(first_epoch, last_epoch):
            # every epoch's order and noise follow from (seed, epoch) alone, so a model
            # saved at an epoch's end and continued trains exactly as if it never stopped;
            # one stopped inside an epoch goes on from the image and noise where it stopped
            seed = epoch_seed(cfg.seed, epoch)
            start = self.epoch_images
            if start and self._noise_state is not None:
                self.noise.set_state(self._noise_state)
            else:
                self.noise.manual_seed(seed)  # the reparameterisation noise
            self._noise_state = None
            if not start:
                self.epoch_sums.zero_()
            epoch_sums = self.epoch_sums
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
            perm = feed.order(perm)
            for i in range(start, n, bs):
                if procs is not None:  # the processes agree, at the same steps, to stop
                    if self.step % SYNC_EVERY == 0:
                        asked = control is not None and control.stop_requested
                        why = procs.max((control.code or 1) if asked else 0)
                        if why:  # the reason any of them had (a signal's number), or 1
                            self.stop_code = why
                            stopped = True
                            break
                    if control is not None:
                        self._apply_changes(control)
                elif control is not None:
                    if control.paused and not control.stop_requested:
                        active += time.perf_counter() - t_mark
                        emit(paused=True)
                        while not control.wait_while_paused(0.1):
                            control.run_calls(self)
                        t_mark = time.perf_counter()
                    if control.stop_requested:
                        stopped = True
                        break
                    self._apply_changes(control)
                    control.run_calls(self)
                idx = perm[i : i + bs]
                global_b = idx.shape[0]
                if procs is not None:  # this process's share of the global batch
                    a, b = procs.rows(global_b)
                    idx = idx[a:b]
                    model.noise_rows = (global_b, a, b)  # and of its noise
                xb, yb = feed.take(idx)  # (B, C, H, W) in [0, 1]; labels if conditional
                beta_eff = kl_weight(self.beta, self.step, warmup_steps)
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
                sums += step_sums
                epoch_sums += step_sums
                count += xb.shape[0]
                images_since += xb.shape[0]
                images_total += xb.shape[0]
                self.epoch_images = i + global_b
                self.step += 1
                at = self.epochs_done + self.epoch_images / n
                if film is not None and film.due(self.step, at):
                    t0 = time.perf_counter()
                    b = max(1, xb.shape[0])
                    film.capture(model, self.step, at,
                                 train_nelbo=float((step_sums[0] + step_sums[1]) / b))  # fmt: skip
                    t_mark += time.perf_counter() - t0  # not training time
                if procs is not None:
                    if self.step % SYNC_EVERY == 0:
                        emit()
                elif time.perf_counter() - last_snap >= snap_every:
                    emit()
            if stopped:
                break
            self.epochs_done += 1
            self.epoch_images = 0
            active += time.perf_counter() - t_mark
            if procs is not None:
                procs.sum(epoch_sums)  # the whole epoch's, over every process
            stats = self.test_stats()
            if film is not None:  # (one off the film's beat is kept only while newest)
                film.capture(model, self.step, self.epochs_done, True, stats.nelbo)
            t_mark = time.perf_counter()
            train_nelbo = float((epoch_sums[0] + epoch_sums[1]) / n)  # mean over the epoch
            result = EpochResult(
                epoch=self.epochs_done,
                step=self.step,
                test_nelbo=stats.nelbo,
                test_recon=stats.recon,
                test_kl=stats.kl,
                train_nelbo=train_nelbo,
                kl_per_dim=stats.kl_per_dim,
                elapsed=active,
            )
            if not math.isfinite(stats.nelbo):
                at = self.epochs_done
                self._restore(good)
                raise TrainingDiverged(
                    f"training diverged: the test loss is {stats.nelbo} after epoch {at}; the "
                    f"model was restored to the end of epoch {self.epochs_done}. Try a lower "
                    f"learning rate (now {self.lr:g}) or a smaller beta."
                )
            self.history.add_epoch(result)
            emit(test=result, final=self.epochs_done == last_epoch)
            good = self._checkpoint_state()
        active += time.perf_counter() - t_mark
        if stopped:
            if procs is not None:  # the unfinished epoch's sums, as saved: the whole run's
                procs.sum(self.epoch_sums)
            if film is not None:  # where the run stopped, inside an epoch
                film.capture(model, self.step, self.epochs_done + self.epoch_images / n)
            emit(final=True)
        return FitResult(
            history=self.history,
            epochs_done=self.epochs_done,
            step=self.step,
            stopped=stopped,
            images_per_second=images_total / active if active > 0 else 0.0,
            device=str(self.device),
            seconds=active,
            steps_run=self.step - start_step,
            bf16=self.bf16,
            streamed=self.feed.streamed,
        )


def train(
    model_config: ModelConfig,
    data: ImageData,
    config: TrainConfig,
    control: TrainControl | None = None,
    on_snapshot: Callable[[Snapshot], None] | None = None,
    film: Film | None = None,
) -> tuple[Trainer, FitResult]:
    """Seed, build the model, and fit it: the one-call path used by the CLI and tests."""
    seed_everything(config.seed)
    model = build_model(model_config)
    trainer = Trainer(model, data, config)
    return trainer, trainer.fit(control=control, on_snapshot=on_snapshot, film=film)


def model_config_for(data: ImageData, **kwargs) -> ModelConfig:
    """A ModelConfig whose image shape and class count match ``data``."""
    return ModelConfig(image_shape=data.image_shape, num_classes=data.num_classes, **kwargs)
