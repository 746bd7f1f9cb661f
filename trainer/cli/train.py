"""``latent-train train``: train a model and write its run: checkpoint, history, metrics and
pictures (and, asked, the film of its latent space forming).

A training stopped by Ctrl-C or SIGTERM saves what it trained and exits with 130 or 143; the
checkpoint is rewritten as the run goes (at most every :data:`EPOCH_SAVE_S` seconds), so
that a kill loses little. A run on several processes (torchrun) trains in each; process 0
alone speaks and saves.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..text import clock
from ._checks import (
    UserError,
    check_output,
    check_path,
    command_inputs,
    not_an_input,
    out_of_memory,
    prepare_out_folder,
    remove_if_empty,
)
from ._console import Progress, describe_data, one_of_many_but_first, reason, write_json
from ._options import add_data_args, add_seed, float_in, int_in, spec_from_args
from ._signals import StopOnSignal, exit_code, signal_name
from .manifold import manifold_size, write_manifold
from .sample import prior_class_rows

TRAIN_PICTURE_CLASSES = 20  # a conditional model's training pictures show this many classes
EPOCH_SAVE_S = 5.0  # a run's checkpoint is rewritten at epoch ends, at most this often
RUN_FILES = ("checkpoint.safetensors", "history.csv", "samples.png", "manifold.png")


# -- options --------------------------------------------------------------------------------
def add_options(t) -> None:
    add_data_args(t, required=True)
    _add_model_options(t.add_argument_group("model"))
    _add_optimisation_options(t.add_argument_group("optimisation"))
    _add_film_options(t.add_argument_group("film (how the latent space formed, frame by frame)"))
    t.add_argument("--out", required=True, help="output folder")


def _add_model_options(m) -> None:
    from ..config import ARCHS, LIKELIHOODS, MAX_HIDDEN, MAX_LATENT, MIN_HIDDEN, MODELS

    m.add_argument("--model", choices=MODELS, default="vae", help="(default: vae)")
    m.add_argument("--arch", choices=ARCHS, default="mlp", help="network body (default: mlp)")
    m.add_argument(
        "--latent-dim",
        type=int_in(1, MAX_LATENT),
        default=20,
        help=f"1 to {MAX_LATENT} (default: 20, the classic VAE's size; the window starts at 2, "
        "where the latent map is the whole latent space)",
    )
    m.add_argument(
        "--hidden",
        type=int_in(MIN_HIDDEN, MAX_HIDDEN),
        default=400,
        help=f"hidden units, {MIN_HIDDEN}-{MAX_HIDDEN} (default: 400)",
    )
    m.add_argument(
        "--likelihood",
        choices=LIKELIHOODS,
        default="bernoulli",
        help="decoder (default: bernoulli)",
    )
    m.add_argument(
        "--gaussian-std",
        type=float_in(0, 10, open_lo=True),
        default=None,
        help="fixed std of a Gaussian decoder, in (0, 10] (default: learned)",
    )


def _add_optimisation_options(o) -> None:
    from ..config import DEVICES, MAX_BATCH, MAX_DATA_MEMORY_MB, MAX_EPOCHS, PRECISIONS

    o.add_argument("--epochs", type=int_in(1, MAX_EPOCHS), default=10, help="(default: 10)")
    o.add_argument("--batch-size", type=int_in(1, MAX_BATCH), default=128, help="(default: 128)")
    o.add_argument(
        "--lr",
        type=float_in(0, 1, open_lo=True),
        default=1e-3,
        help="Adam learning rate, in (0, 1] (default: 1e-3)",
    )
    o.add_argument(
        "--beta", type=float_in(0, 1000), default=None, help="KL weight, 0-1000 (default: 1)"
    )
    o.add_argument(
        "--warmup-epochs",
        type=float_in(0, 100_000),
        default=None,
        help="epochs over which the KL weight ramps up from 0 (default: 0)",
    )
    add_seed(o)
    o.add_argument("--device", choices=DEVICES, default="auto", help="(default: auto)")
    o.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="bf16: the layers compute in bfloat16 (mixed precision; the latent statistics, "
        "the loss, the weights and Adam's state stay float32), where the device has it: CUDA "
        "GPUs from Ampere on, x86 CPUs with AVX-512 BF16 or AMX; conv bodies trained 1.1 to "
        "1.7x as fast on such a CPU (default: fp32)",
    )
    o.add_argument(
        "--data-memory",
        metavar="MB",
        type=float_in(0, MAX_DATA_MEMORY_MB),
        default=None,
        help="memory the data may take on the training device; a larger training split is "
        "streamed to it batch by batch from the decoded cache or host memory (default: half "
        "of the device's free memory; 0 always streams)",
    )
    o.add_argument(
        "--threads",
        type=int_in(1, 1024),
        default=None,
        help="CPU threads for training (default: $OMP_NUM_THREADS if set, else all cores but "
        "one, which keeps a busy machine from stalling the run)",
    )


def _add_film_options(f) -> None:
    from ..config import FILM_MAX_MB, FILM_MEMORY_MB, FILM_MIN_MB, FILM_SIZES

    f.add_argument(
        "--film",
        metavar="FILE",
        default=None,
        help="record the training as a film and write it here: .gif, or .mp4 when ffmpeg is "
        "installed (frames at every epoch's end and, densely, in the first steps)",
    )
    f.add_argument(
        "--film-memory",
        metavar="MB",
        type=float_in(FILM_MIN_MB, FILM_MAX_MB),
        default=None,
        help=f"memory for the film's frames; past it, older frames are thinned "
        f"({FILM_MIN_MB:g}-{FILM_MAX_MB:g}, default: {FILM_MEMORY_MB:g})",
    )
    f.add_argument(
        "--film-fps",
        type=float_in(0.5, 60),
        default=None,
        help="frames a second when the film plays (0.5-60, default: 6)",
    )
    f.add_argument(
        "--film-size",
        metavar="PX",
        type=int_in(FILM_SIZES[0], FILM_SIZES[1]),
        default=None,
        help=f"side of the film's manifold and map, in pixels ({FILM_SIZES[0]}-{FILM_SIZES[1]}, "
        f"default: {FILM_SIZES[2]})",
    )


# -- before training: refuse what would fail ------------------------------------------------
def run(args) -> int:
    """Check the options, make --out, train, save; returns the exit code."""
    if args.gaussian_std is not None and args.likelihood != "gaussian":
        raise UserError("--gaussian-std needs --likelihood gaussian")
    for option in ("images", "labels", "root"):
        check_path(f"--{option}", getattr(args, option))
    given = [o for o in ("film_memory", "film_fps", "film_size") if getattr(args, o) is not None]
    if given and args.film is None:
        raise UserError(f"--{given[0].replace('_', '-')} needs --film FILE (the film to write)")
    if args.film is not None:
        from ..config import FILM_MEMORY_MB, FILM_SIZES
        from ..film import FilmError, check_film_path

        args.film_memory = args.film_memory or FILM_MEMORY_MB
        args.film_fps = args.film_fps or 6.0
        args.film_size = args.film_size or FILM_SIZES[2]

        check_path("--film", args.film)
        try:  # before training: a film that cannot be written is known now
            check_film_path(Path(args.film).expanduser())
        except FilmError as e:
            raise UserError(f"--film {e}") from None
    _train_outputs_clear(args)
    if one_of_many_but_first():  # process 0 makes and writes --out
        return _train(args, Path(args.out).expanduser())
    out, made = prepare_out_folder(args.out)
    try:
        return _train(args, out)
    except BaseException:
        if made:
            remove_if_empty(out)  # refused before anything was written: leave no trace
        raise


def _train_outputs_clear(args) -> None:
    """Refuse a run whose files would replace what it reads, or are no files to write."""
    from ..export import MANIFEST

    inputs = command_inputs(args)
    if not args.out.strip():
        return  # said by prepare_out_folder
    out = Path(args.out).expanduser()
    not_an_input("--out", out, inputs, folder=True)
    for name in (*RUN_FILES, MANIFEST):
        check_output("--out", out / name)
        not_an_input("--out", out / name, inputs)
    if args.film is not None:
        film = Path(args.film).expanduser()
        not_an_input("--film", film, inputs)


def _check_space(out: Path, model) -> None:
    """Refuse to train when the checkpoint (weights and Adam's two moments) and pictures
    would not fit on the disk of ``out``."""
    need = 3 * sum(p.numel() * p.element_size() for p in model.parameters()) + 4_000_000
    try:
        free = shutil.disk_usage(out).free
    except OSError:
        return
    if free < need:
        raise UserError(
            f"--out {out}: {free / 1e6:.1f} MB free, but the run's files need about "
            f"{need / 1e6:.1f} MB; make room or choose another folder"
        )


# -- training, in named pieces: setup, announce, fit (with an epoch reporter), save, report --
@dataclass
class _Run:
    """What :func:`_setup` made for one training: the settings, the device, the processes
    (None: a single one), the data, the model and its trainer, and the film (None: none)."""

    args: Any
    out: Path
    spec: Any
    tcfg: Any
    procs: Any
    device: Any
    threads: int
    data: Any
    mcfg: Any
    model: Any
    trainer: Any
    film: Any

    @property
    def main(self) -> bool:
        """Process 0 (or the only one): it alone speaks and saves."""
        return self.procs is None or self.procs.main

    @property
    def world(self) -> int:
        return self.procs.world if self.procs is not None else 1

    def info(self, *a, **k) -> None:
        if self.main:
            print(*a, **k)


def _train(args, out: Path) -> int:
    from ..loop import TrainControl

    job = _setup(args, out)
    _announce(job)
    control = TrainControl()
    reporter = _EpochReporter(job) if job.main else None
    # covers the saving too: a signal then waits for it
    with StopOnSignal(control, patient=job.procs is not None) as stop:
        result, diverged = _fit(job, control, reporter)
        # a signal to any process stops them all: its number, agreed, names the stop
        signum = stop.agreed(job.trainer.stop_code)
        if not job.main:  # process 0 saves the run
            from ..loop import distributed

            distributed.finish(job.procs, job.trainer)
            return exit_code(stop.signum) if stop.signum is not None else 0
        try:  # process 0 saves while the others wait for it
            if diverged is not None or result.stopped:
                reporter.bar.close()
            if signum is not None:
                print(
                    f"{signal_name(signum)}{'' if stop.signum else ' (to another process)'}: "
                    f"stopping; saving the model as it stands after step {job.trainer.step}",
                    file=sys.stderr,
                )
            metrics, done = _save(job, result, signal_name(signum))
        finally:
            if job.procs is not None:
                from ..loop import distributed

                distributed.finish(job.procs, job.trainer)
    return _report(job, metrics, done, diverged, signum)


def _settings(args):
    """The run's data settings and training settings."""
    from ..config import TrainConfig

    spec = spec_from_args(args)
    tcfg = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        beta=args.beta,
        warmup_epochs=args.warmup_epochs,
        seed=args.seed,
        device=args.device,
        data_memory=args.data_memory,
        precision=args.precision,
    )
    return spec, tcfg


def _device(tcfg):
    """The processes of a run started by torchrun (else None), and this process's device;
    bfloat16 refused where the device would only emulate it."""
    from ..loop import bf16_problem, resolve_device
    from ..loop.distributed import launched

    procs = None
    if launched():  # one of several processes started by torchrun
        from ..loop import distributed

        procs = distributed.start(tcfg.device)
        device = procs.device
    else:
        device = resolve_device(tcfg.device)
    why = bf16_problem(device) if tcfg.precision == "bf16" else None
    if why:
        raise UserError(
            f"--precision bf16: {why}, so it would be emulated and train slower than fp32; "
            "leave --precision out"
        )
    return procs, device


def _threads(args, procs, device, info) -> int:
    """Set and return the CPU threads the training uses, saying what is worth knowing."""
    import torch

    from ..loop.threads import clamped, training_threads, usable_cores

    threads = training_threads(args.threads)
    if clamped(args.threads):
        info(f"note: {clamped(args.threads)}", file=sys.stderr)
    if procs is not None and args.threads is None:  # the cores shared among the processes
        threads = max(1, usable_cores() // procs.on_this_machine)
    torch.set_num_threads(threads)
    if device.type == "cpu" and threads > usable_cores():
        info(
            f"note: {threads} threads on {usable_cores()} cores take turns on the same cores "
            "and train slower than one per core",
            file=sys.stderr,
        )
    return threads


def _setup(args, out: Path) -> _Run:
    """Settings, device, threads, data, model and trainer (and the film), in that order: each
    refused, if it must be, before the slower ones are made."""
    from ..config import ModelConfig
    from ..data import load_data
    from ..loop import Trainer, seed_everything
    from ..models import build_model

    spec, tcfg = _settings(args)
    procs, device = _device(tcfg)
    main = procs is None or procs.main
    info = print if main else (lambda *a, **k: None)  # process 0 alone speaks
    threads = _threads(args, procs, device, info)
    if procs is not None and not procs.main:
        procs.barrier()  # process 0 downloads or decodes the data first, the others then read it
    data = load_data(spec)  # reported only once the settings are known to fit it
    if procs is not None and procs.main:
        procs.barrier()
    mcfg = ModelConfig(
        model=args.model,
        arch=args.arch,
        latent_dim=args.latent_dim,
        hidden=args.hidden,
        image_shape=data.image_shape,
        likelihood=args.likelihood,
        gaussian_std=args.gaussian_std,
        num_classes=data.num_classes,
    )
    seed_everything(tcfg.seed)
    model = build_model(mcfg)
    _check_space(out, model)
    trainer = Trainer(model, data, tcfg, device=device, processes=procs)
    film = None
    if args.film is not None and main:
        from ..film import Film

        film = Film(data.test_x, data.test_y, data.class_names, budget_mb=args.film_memory)
    return _Run(args, out, spec, tcfg, procs, device, threads, data, mcfg, model, trainer, film)


def _announce(job: _Run) -> None:
    """Say what is about to be trained, on what, and how."""
    from ..loop.fused import supports
    from ..loop.threads import describe

    trainer, procs, tcfg, mcfg = job.trainer, job.procs, job.tcfg, job.mcfg
    job.info(f"data: {describe_data(job.spec, job.data)}", file=sys.stderr)
    if trainer.feed.streamed:
        job.info(_streamed(trainer, job.device, tcfg.data_memory), file=sys.stderr)
    if trainer.bf16 and supports(job.model) and procs is None:
        job.info("bf16: the fused step is float32; this run trains with autograd", file=sys.stderr)
    if procs is not None:
        job.info(
            f"{procs.world} processes ({procs.backend}), each its share of every batch of "
            f"{tcfg.batch_size}"
            + (
                "; the fused step trains single processes only: autograd with "
                "DistributedDataParallel here"
                if supports(job.model)
                else ""
            ),
            file=sys.stderr,
        )
    job.info(
        f"training a {mcfg.model.upper()} ({mcfg.arch}, latent {mcfg.latent_dim}) on "
        f"{job.device}{' in bfloat16 (mixed precision)' if trainer.bf16 else ''}"
        f"{f', {describe(job.threads, job.args.threads)}' if job.device.type == 'cpu' else ''}"
        f" for {tcfg.epochs} epoch{'s' if tcfg.epochs != 1 else ''}",
        file=sys.stderr,
    )


class _EpochReporter:
    """Process 0's view of the training as it goes: the progress bar, each epoch's test
    -ELBO, and the checkpoint rewritten at epoch ends (at most every :data:`EPOCH_SAVE_S`
    seconds), so that a kill loses at most a few seconds."""

    def __init__(self, job: _Run) -> None:
        self.job = job
        self.bar = Progress("train")
        self.last_save = [-math.inf, 0]  # when, and the epoch it holds

    def __call__(self, s) -> None:
        self.bar.update(
            s.progress,
            f"epoch {s.epoch}/{s.epochs} step {s.step}/{s.total_steps} "
            f"-elbo {s.nelbo:7.2f} {s.images_per_second * self.job.world:7.0f} img/s "
            f"ETA {clock(s.eta, fixed=True)}",
            force=s.test is not None,
        )
        if s.test is not None:
            self.bar.close() if self.bar.tty else None
            print(
                f"  epoch {s.test.epoch}: test -ELBO {s.test.test_nelbo:.2f} "
                f"(recon {s.test.test_recon:.2f} + KL {s.test.test_kl:.2f}) nats",
                file=sys.stderr,
            )
            # the last good model, kept as the run goes: a kill loses at most a few seconds
            if not s.final and time.perf_counter() - self.last_save[0] >= EPOCH_SAVE_S:
                self.last_save[:] = time.perf_counter(), s.test.epoch
                self._autosave()

    def _autosave(self) -> None:
        from ..checkpoint import CheckpointError, save_trainer

        job = self.job
        try:
            save_trainer(
                job.out / "checkpoint.safetensors", job.trainer, job.spec, job.data.class_names
            )
        except CheckpointError as e:  # the run goes on; its end saves again
            print(f"note: {e}", file=sys.stderr)


def _fit(job: _Run, control, reporter: _EpochReporter | None):
    """Train; returns (the fit's result, the divergence it ended with or None). Another
    process of the run failing is one line, in each process, naming what was kept."""
    from ..loop import TrainingDiverged

    try:
        return job.trainer.fit(control=control, on_snapshot=reporter, film=job.film), None
    except TrainingDiverged as e:  # the model is back at its last good state: keep that
        return None, e
    except RuntimeError as e:
        if job.procs is None or out_of_memory(e):
            raise
        kept = job.out / "checkpoint.safetensors"
        if job.main and kept.is_file() and reporter.last_save[1]:
            where = f"the last good model, after epoch {reporter.last_save[1]}, is in {kept}"
        elif kept.is_file():
            where = f"the last good model process 0 kept is in {kept}"
        else:
            where = "no checkpoint was kept"
        problem = UserError(
            f"another process of the run failed or stopped answering ({_first_line(e)}); {where}"
        )
        problem.every_process = True  # each says what it saw: one of them died
        raise problem from None


def _save(job: _Run, result, stop_name: str) -> tuple[dict, list[str]]:
    """Process 0 saves the run (elsewhere if ``--out`` fails); returns its metrics and the
    files written."""
    from ..checkpoint import CheckpointError
    from ..export import MANIFEST, ExportError

    trainer, out, spec = job.trainer, job.out, job.spec
    job.model.eval()
    last = trainer.history.epochs[-1] if trainer.history.epochs else None
    if last is None or last["step"] != trainer.step:  # stopped inside an epoch
        st = trainer.test_stats()
        test = {"test_nelbo": st.nelbo, "test_recon": st.recon, "test_kl": st.kl}
    else:
        test = {k: last[k] for k in ("test_nelbo", "test_recon", "test_kl")}
    metrics = {
        **test,
        "images_per_second": result.images_per_second * job.world if result else None,
        "epochs": trainer.epochs_done,
        "steps": trainer.step,
        "seconds": result.seconds if result else None,
        "stopped_by": stop_name or None,
        "device": str(job.device),
        "world_size": job.world,
        "streamed": trainer.feed.streamed,
        "backend": job.procs.backend if job.procs is not None else None,
        "threads": job.threads if job.device.type == "cpu" else None,
        "dataset": spec.describe(),
        "model": job.mcfg.to_dict(),
        "train": job.tcfg.to_dict(),
    }
    done: list[str] = []
    try:
        _save_run(out, trainer, spec, job.data.class_names, metrics, done)
    except (CheckpointError, ExportError, OSError) as e:
        if "checkpoint.safetensors" in done:
            raise UserError(
                f"{reason(e)}; the model is saved in {out / 'checkpoint.safetensors'}, "
                f"but the run's other files are not (the folder has no {MANIFEST})"
            ) from None
        where = _save_elsewhere(trainer, spec, job.data.class_names)
        if where is None:
            raise UserError(f"{reason(e)}; the model could not be saved elsewhere either") from None
        raise UserError(f"{reason(e)}; the trained model was saved to {where} instead") from None
    return metrics, done


def _report(job: _Run, metrics: dict, done: list[str], diverged, signum: int | None) -> int:
    """After the save: the run's numbers and files, its film, and why it ended; returns the
    exit code."""
    from ..evaluate import final_loss_warning

    out = job.out
    print(
        f"test -ELBO {metrics['test_nelbo']:.2f} nats; "
        f"{(metrics['images_per_second'] or 0):.0f} images/s on {job.device}",
        file=sys.stderr,
    )
    print(f"wrote {', '.join(done)} to {out}/", file=sys.stderr)
    film_problem = None
    if job.film is not None:
        film_problem = _write_film(job.args, job.film, job.trainer, job.mcfg, job.data)
    if film_problem:
        raise UserError(f"{film_problem}; the model is saved in {out}/")
    print(out / "checkpoint.safetensors")
    if diverged is not None:
        raise UserError(f"{diverged} What was trained before it is saved in {out}/.")
    warning = final_loss_warning(job.trainer.history)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    if signum is not None:
        print(
            f"stopped by {signal_name(signum)}; {out}/ holds the model as trained so far",
            file=sys.stderr,
        )
        return exit_code(signum)  # 130 for Ctrl-C, 143 for SIGTERM
    return 0


# -- saving the run -------------------------------------------------------------------------


def _streamed(trainer, device, data_memory) -> str:
    from ..loop.feed import data_bytes

    what = "given with --data-memory" if data_memory is not None else "half of what is free"
    both = data_bytes(trainer.data)
    if trainer.data_budget >= both:  # it would fit here: another process could not hold it
        return "another process's data memory is less than the images: every process streams"
    return (
        f"the images, {_mb(both)}, are more than the data memory on {device.type} "
        f"({_mb(trainer.data_budget)}, {what}): the training batches are streamed to it as "
        "it trains"
    )


def _mb(n: int) -> str:
    if n >= 2**30:
        return f"{n / 2**30:.1f} GB"
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 2**10:.0f} KB"


def _first_line(e: BaseException) -> str:
    """An error's first line, without the source location a library may put before it."""
    lines = str(e).strip().splitlines()
    line = re.sub(r"^\[[^\]]*\]\s*", "", lines[0]) if lines else type(e).__name__
    return line.split(". ")[0][:160]


def _write_film(args, film, trainer, mcfg, data) -> str | None:
    """Write the run's film (after its model is safe); returns what went wrong, if anything."""
    from ..film import FilmError, save_film

    bar = Progress("film")
    title = f"{mcfg.model.upper()}, latent {mcfg.latent_dim}, {data.name}"
    try:
        path = save_film(
            film,
            trainer.history,
            Path(args.film).expanduser(),
            fps=args.film_fps,
            size=args.film_size,
            title=title,
            progress=lambda f: bar.update(f, f"{len(film)} frames"),
        )
    except FilmError as e:
        bar.close()
        return str(e)
    bar.done()
    size = path.stat().st_size / 1e6
    print(
        f"wrote the film to {path} ({size:.1f} MB, {len(film)} frames; in memory they took "
        f"{film.describe().split(', ', 1)[1]})",
        file=sys.stderr,
    )
    return None


RUN_FILES = ("checkpoint.safetensors", "history.csv", "samples.png", "manifold.png")


def _save_run(out: Path, trainer, spec, class_names, metrics: dict, done: list[str]) -> None:
    """Write a run's files into ``out`` so that no reader takes a mix of two runs for one.

    The previous run's manifest (``metrics.json``) is removed first, the files are written,
    and a new manifest listing each of them (size, SHA-256) and the checkpoint's step is
    written last: a folder without one, or whose files differ from the ones it lists (see
    :func:`trainer.export.run_problems`), is an unfinished save. ``done`` collects the names
    written so far.
    """
    import torch

    from ..checkpoint import save_trainer
    from ..export import MANIFEST, file_record, grid_size, save_grid, write_history_csv
    from ..latent import sample_prior

    for name in (MANIFEST, "evaluation.json"):  # they describe the previous run's model
        (out / name).unlink(missing_ok=True)
    save_trainer(out / "checkpoint.safetensors", trainer, data_spec=spec, class_names=class_names)
    done.append("checkpoint.safetensors")
    write_history_csv(trainer.history, out / "history.csv")
    done.append("history.csv")
    model = trainer.model.to("cpu")
    _, h, w = model.config.image_shape
    gen = torch.Generator().manual_seed(trainer.config.seed)
    classes = min(model.num_classes, TRAIN_PICTURE_CLASSES)
    if classes < model.num_classes:
        print(
            f"note: the pictures show the first {classes} of {model.num_classes} classes",
            file=sys.stderr,
        )
    if classes:  # one row per class: the same z under every label
        imgs, nrow = prior_class_rows(model, 10, gen, classes), 10
    else:
        imgs, nrow = sample_prior(model, 64, generator=gen), 8
    scale = _fitting_scale(lambda s: grid_size(len(imgs), (h, w), nrow, 2, s))
    if scale:
        save_grid(imgs, out / "samples.png", nrow=nrow, scale=scale)
        done.append("samples.png")
    if model.latent_dim >= 2:
        side = 10 if classes else 20  # a CVAE gets one grid per class
        scale = _fitting_scale(lambda s: manifold_size(model, side, None, s, classes))
        if scale:
            write_manifold(model, out / "manifold.png", None, (0, 1), side, scale, classes)
            done.append("manifold.png")
    for name in ("samples.png", "manifold.png"):
        if name not in done and (name == "samples.png" or model.latent_dim >= 2):
            print(f"note: {name} left out: too large a picture for these images", file=sys.stderr)
    for name in RUN_FILES:  # the previous run's pictures this run has none of
        if name not in done:
            (out / name).unlink(missing_ok=True)
    files = {name: file_record(out / name) for name in done}
    write_json(out / MANIFEST, {**metrics, "checkpoint_step": trainer.step, "files": files})
    done.append(MANIFEST)


def _fitting_scale(size_at) -> int | None:
    """The training's pictures: magnified twice where that fits, else once, else left out."""
    from ..export import ExportError, check_grid_size

    for scale in (2, 1):
        try:
            check_grid_size("", size_at(scale))
            return scale
        except ExportError:
            continue
    return None


def _fallback_folders() -> list[Path]:
    """Where a run whose --out failed at the end saves its model instead: a new folder under
    the user's data folder, else under the temporary folder."""
    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    bases = []
    try:
        if os.environ.get("XDG_DATA_HOME"):
            bases.append(Path(os.environ["XDG_DATA_HOME"]))
        elif sys.platform == "darwin":
            bases.append(Path.home() / "Library" / "Application Support")
        elif os.name == "nt":
            bases.append(Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local"))
        else:
            bases.append(Path.home() / ".local" / "share")
    except RuntimeError:  # no home folder
        pass
    folders = [b / "latent-explorer" / "unsaved" / stamp for b in bases]
    return folders + [Path(tempfile.gettempdir()) / "latent-explorer-unsaved" / stamp]


def _save_elsewhere(trainer, spec, class_names) -> Path | None:
    from ..checkpoint import CheckpointError, save_trainer

    for folder in _fallback_folders():
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return save_trainer(
                folder / "checkpoint.safetensors", trainer, data_spec=spec, class_names=class_names
            )
        except (OSError, CheckpointError):
            continue
    return None
