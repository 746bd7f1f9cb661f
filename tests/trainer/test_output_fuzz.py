"""A seeded hostile-output test of every writer: nothing a user has is replaced by surprise.

Every writer of the engine (``atomic_write``, checkpoints, image grids, pictures, labelled
rows, GIFs, the loss history's CSV, films) and every ``--out`` of the command line
(evaluate, sample, manifold, traverse and its ``--gif``, arithmetic, posterior, a training
run's files and its ``--film``) is pointed at what is no file to replace: a named pipe, a
socket, a device (a copy of ``/dev/null`` made in the test's folder), a folder, a symbolic
link to nothing, one round in a loop, a link to a named pipe or a folder; and at the
command's own input (its checkpoint or its images), directly or through a link. A link to a
regular file is followed (the link stays, its target gets the output); a new name and a
regular file are written as ever. Each path is spelled one of several ways, drawn with a
fixed seed (absolute, relative, through ``sub/..``, through a linked folder).

Each case ends clean (refused with the writer's own error, or one line and exit code 2;
or written where it should be), or it is a fault: a traceback (any other exception), a
hang, silent wrong (it said it wrote, but the output is not where it was asked to be), or
data lost (the pipe, device, link or input is not what it was).

``python tests/trainer/test_output_fuzz.py`` prints the tally.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import random
import shutil
import signal
import socket
import stat
import struct
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

SEED = 20261123
TIMEOUT = 20.0  # seconds a case may take before it counts as a hang
OUTCOMES = ("clean", "refused a good path", "traceback", "hang", "silent wrong", "data lost")

HOSTILE = (
    "fifo",
    "socket",
    "device",
    "folder",
    "dangling link",
    "link loop",
    "link to fifo",
    "link to folder",
)
FOLLOWED = ("link", "link chain")
INPUTS = ("input", "link to input")
PLAIN = ("new name", "file")
KINDS = HOSTILE + FOLLOWED + INPUTS + PLAIN
SPELLINGS = ("absolute", "relative", "dot-dot", "linked folder")


# -- the setting ------------------------------------------------------------------------------
def _write_idx(path: Path, n: int = 64, side: int = 8) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, side, side), dtype=np.uint8)
    path.write_bytes(gzip.compress(struct.pack(">BBBB3I", 0, 0, 8, 3, n, side, side) + x.tobytes()))


@dataclass
class Setting:
    folder: Path
    images: Path  # IDX images of 8x8 pixels
    checkpoint: Path  # a 2-D VAE trained on them
    film: object  # a Film of it, and its history
    history: object


def _setting(folder: Path) -> Setting:
    from trainer.__main__ import main
    from trainer.checkpoint import load_checkpoint
    from trainer.film import Film

    images = folder / "images.gz"
    _write_idx(images)
    run = folder / "run"
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        assert main(["train", *_data(images), *TINY, "--out", str(run)]) == 0
    ck = load_checkpoint(run / "checkpoint.safetensors")
    x = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (16, 1, 8, 8), dtype=np.uint8))
    film = Film(x)
    film.capture(ck.model, step=0, epoch=0.0)
    film.capture(ck.model, step=1, epoch=1.0, epoch_end=True)
    return Setting(folder, images, run / "checkpoint.safetensors", film, ck.history)


TINY = [
    "--epochs",
    "1",
    "--hidden",
    "16",
    "--latent-dim",
    "2",
    "--batch-size",
    "32",
    "--threads",
    "1",
    "--device",
    "cpu",
]


def _data(images: Path) -> list[str]:
    return ["--dataset", "idx", "--images", str(images)]


# -- the surfaces -----------------------------------------------------------------------------
# each: (suffix of the output, kinds that do not apply, how to write to P: a function of the
# setting, P as spelled, the input's path as spelled (for INPUTS), P's folder)
def _lib(write):
    def run(s: Setting, p: str, inp: str | None, case_dir: Path):
        write(s, p)
        return "written"

    return run


def _atomic(s, p):
    from trainer.files import atomic_write

    atomic_write(p, lambda f: f.write(b"written by atomic_write"))


def _checkpoint(s, p):
    from trainer.checkpoint import load_checkpoint, save_checkpoint

    ck = load_checkpoint(s.checkpoint)
    save_checkpoint(p, ck.model, ck.train_config)


def _grid(s, p):
    from trainer.export import save_grid

    save_grid(torch.rand(4, 1, 8, 8), p, nrow=2)


def _picture(s, p):
    from trainer.export import save_picture

    save_picture(np.random.default_rng(0).random((8, 8, 3)), p, scale=2)


def _rows(s, p):
    from trainer.export import save_labelled_rows

    save_labelled_rows(torch.rand(4, 1, 8, 8), p, 2, ["a", "b"])


def _gif(s, p):
    from trainer.export import save_gif

    save_gif(torch.rand(3, 1, 8, 8), p, fps=5)


def _csv(s, p):
    from trainer.export import write_history_csv

    write_history_csv(s.history, p)


def _film(s, p):
    from trainer.film import save_film

    save_film(s.film, s.history, p, fps=5, size=160)


LIBRARY = {
    "atomic_write": (".bin", _lib(_atomic)),
    "save_checkpoint": (".safetensors", _lib(_checkpoint)),
    "save_grid": (".png", _lib(_grid)),
    "save_picture": (".png", _lib(_picture)),
    "save_labelled_rows": (".png", _lib(_rows)),
    "save_gif": (".gif", _lib(_gif)),
    "write_history_csv": (".csv", _lib(_csv)),
    "save_film": (".gif", _lib(_film)),
}


def _cli(argv) -> str:
    """main(argv): "written" (exit 0) or "refused" (exit 2, one line on stderr); anything
    else raises."""
    from trainer.__main__ import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([str(a) for a in argv])
    text = err.getvalue()
    if "Traceback" in text:
        raise RuntimeError(f"a traceback on stderr: {text[-300:]}")
    if code == 0:
        return "written"
    errors = [line for line in text.splitlines() if line.startswith("latent-train: error:")]
    if code == 2 and len(errors) == 1:
        return "refused"
    raise RuntimeError(f"exit code {code}: {text[-300:]}")


def _command(*args, out="--out"):
    """A command writing one file: ``--checkpoint`` is the input (for INPUTS, the path P
    itself holds a copy of the checkpoint)."""

    def run(s: Setting, p: str, inp: str | None, case_dir: Path):
        ck = inp if inp is not None else s.checkpoint
        return _cli([args[0], "--checkpoint", ck, *args[1:], out, p])

    return run


def _traverse_gif(s: Setting, p: str, inp: str | None, case_dir: Path):
    ck = inp if inp is not None else s.checkpoint
    png = p[: -len(".gif")] + ".png"  # --gif writes --out's name with .gif
    return _cli(
        [
            "traverse",
            "--checkpoint",
            ck,
            "--kl-images",
            "0",
            "--columns",
            "7",
            "--gif",
            "--out",
            png,
        ]
    )


def _train_file(s: Setting, p: str, inp: str | None, case_dir: Path):
    """P is a run's history.csv; for INPUTS, the images read are P."""
    out = os.path.dirname(p) or "."
    images = inp if inp is not None else s.images
    return _cli(["train", *_data(images), *TINY, "--out", out])


def _train_film(s: Setting, p: str, inp: str | None, case_dir: Path):
    images = inp if inp is not None else s.images
    return _cli(
        [
            "train",
            *_data(images),
            *TINY,
            "--out",
            case_dir / "run",
            "--film",
            p,
            "--film-size",
            "160",
        ]
    )


EVALUATE = ("--iw-samples", "2", "--limit", "8", "--device", "cpu")
COMMANDS = {
    "evaluate --out": (".json", _command("evaluate", *EVALUATE)),
    "sample --out": (".png", _command("sample", "--n", "4")),
    "manifold --out": (".png", _command("manifold", "--n", "3")),
    "traverse --out": (".png", _command("traverse", "--kl-images", "0", "--columns", "7")),
    "traverse --gif": (".gif", _traverse_gif),
    "arithmetic --out": (".png", _command("arithmetic", "--a", "0", "--b", "1", "--c", "2")),
    "posterior --out": (".png", _command("posterior")),
    "map --out": (".png", _command("map", "--method", "pca", "--limit", "60")),
    "map --codes": (".npz", _command("map", "--method", "pca", "--limit", "60", out="--codes")),
    "train --out (its history.csv)": (".csv", _train_file),
    "train --film": (".gif", _train_film),
}
SURFACES = {**LIBRARY, **COMMANDS}


def _kinds(surface: str) -> tuple[str, ...]:
    if surface in LIBRARY:  # a function has no input of its own
        return HOSTILE + FOLLOWED + PLAIN
    return KINDS


# -- a case -----------------------------------------------------------------------------------
@dataclass
class Case:
    surface: str
    kind: str
    spelling: str
    outcome: str = ""
    detail: str = ""


def _state(p: Path):
    """What is at ``p`` (not following a link): its type, identity and contents."""
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return None
    d = {"type": stat.S_IFMT(st.st_mode), "ino": st.st_ino, "rdev": st.st_rdev}
    if stat.S_ISLNK(st.st_mode):
        d["link"] = os.readlink(p)
    elif stat.S_ISREG(st.st_mode):
        d["bytes"] = p.read_bytes()
    elif stat.S_ISDIR(st.st_mode):
        d["names"] = sorted(os.listdir(p))
    return d


def _make(kind: str, p: Path, elsewhere: Path, input_copy: Path | None) -> list[Path]:
    """Put a ``kind`` at ``p``; returns the paths that must stay as they are (for FOLLOWED,
    the links only; their target may change)."""
    if kind == "fifo":
        os.mkfifo(p)
    elif kind == "socket":
        with socket.socket(socket.AF_UNIX) as s:
            s.bind(str(p))
    elif kind == "device":  # a node of /dev/null's own device numbers, made here
        os.mknod(p, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    elif kind == "folder":
        p.mkdir()
        (p / "keep.txt").write_text("a file of the user's")
    elif kind == "dangling link":
        os.symlink(elsewhere / "nothing", p)
    elif kind == "link loop":
        os.symlink(p.name, p)
    elif kind == "link to fifo":
        os.mkfifo(elsewhere / "pipe")
        os.symlink(elsewhere / "pipe", p)
        return [p, elsewhere / "pipe"]
    elif kind == "link to folder":
        (elsewhere / "d").mkdir()
        os.symlink(elsewhere / "d", p)
        return [p, elsewhere / "d"]
    elif kind == "link":
        (elsewhere / f"real{p.suffix}").write_bytes(b"the user's old file")
        os.symlink(elsewhere / f"real{p.suffix}", p)
    elif kind == "link chain":
        (elsewhere / f"real{p.suffix}").write_bytes(b"the user's old file")
        os.symlink(elsewhere / f"real{p.suffix}", elsewhere / f"hop{p.suffix}")
        os.symlink(os.path.relpath(elsewhere / f"hop{p.suffix}", p.parent), p)
        return [p, elsewhere / f"hop{p.suffix}"]
    elif kind == "input":
        shutil.copyfile(input_copy, p)
    elif kind == "link to input":
        shutil.copyfile(input_copy, elsewhere / f"input{p.suffix}")
        os.symlink(elsewhere / f"input{p.suffix}", p)
        return [p, elsewhere / f"input{p.suffix}"]
    elif kind == "file":
        p.write_bytes(b"the user's old file")
        return []
    elif kind == "new name":
        return []
    return [p]


def _spell(spelling: str, p: Path, case_dir: Path) -> str:
    """``p`` (inside ``case_dir``, the working folder during the case) as a user may type it."""
    rel = p.relative_to(case_dir)
    if spelling == "relative":
        return str(rel)
    if spelling == "dot-dot":
        (case_dir / "sub").mkdir(exist_ok=True)
        return str(Path("sub") / ".." / rel)
    if spelling == "linked folder":
        alias = case_dir.parent / f"{case_dir.name}-alias"
        if not alias.exists():
            os.symlink(case_dir, alias)
        return str(alias / rel)
    return str(p)


def _target(p: Path) -> Path:
    return Path(os.path.realpath(p))


def _judge(case: Case, result: str, p: Path, kept: dict, target_before) -> None:
    def now(q: Path):
        state = _state(q)
        if case.surface.startswith("evaluate") and state and "names" in state:
            state["names"] = [n for n in state["names"] if n != "evaluation.json"]
        return state

    lost = [str(q) for q, before in kept.items() if now(q) != before]
    if lost:
        case.outcome, case.detail = "data lost", f"{result}; changed: {', '.join(lost)}"[:200]
        return
    if result == "refused":  # a link to a regular file is followed, never refused
        case.outcome = "refused a good path" if case.kind in PLAIN + FOLLOWED else "clean"
        return
    # written: where it should be, and only there
    if case.kind in HOSTILE + INPUTS:
        if case.surface.startswith("evaluate") and case.kind in ("folder", "link to folder"):
            inside = _target(p) / "evaluation.json"  # a folder for evaluation.json: documented
            ok = inside.is_file() and inside.stat().st_size > 0
            case.outcome = "clean" if ok else "silent wrong"
            return
        case.outcome, case.detail = "silent wrong", "said it wrote to what is no file"
        return
    after = _state(_target(p)) if p.is_symlink() else _state(p)
    if case.kind == "file" or case.kind in FOLLOWED:
        if after is None or after.get("bytes") in (None, b"", target_before):
            case.outcome, case.detail = "silent wrong", "the file was not written"
            return
    elif after is None or not after.get("bytes"):
        case.outcome, case.detail = "silent wrong", "nothing was written"
        return
    case.outcome = "clean"


class _Hang(Exception):
    pass


def _on_alarm(signum, frame):
    raise _Hang


def _run_case(case: Case, s: Setting, case_dir: Path) -> None:
    suffix, write = SURFACES[case.surface]
    elsewhere = case_dir / "elsewhere"
    elsewhere.mkdir(parents=True)
    if case.surface.startswith("train --out"):
        (case_dir / "run").mkdir()
        p = case_dir / "run" / "history.csv"
    else:
        p = case_dir / f"out{suffix}"
    source = s.images if case.surface.startswith("train") else s.checkpoint
    kept_paths = _make(case.kind, p, elsewhere, source)
    kept = {q: _state(q) for q in kept_paths}
    target_before = _state(_target(p)).get("bytes") if case.kind in FOLLOWED else None
    if case.kind == "file":
        target_before = p.read_bytes()
    spelled = _spell(case.spelling, p, case_dir)
    inp = None  # the input named as such: the output itself, or the file a link leads to
    if case.kind == "input":
        inp = spelled
    elif case.kind == "link to input":
        inp = str(elsewhere / f"input{p.suffix}")
    here = os.getcwd()
    guard = hasattr(signal, "setitimer")
    try:
        os.chdir(case_dir)
        if guard:
            signal.setitimer(signal.ITIMER_REAL, TIMEOUT)
        try:
            result = write(s, spelled, inp, case_dir)
        finally:
            if guard:
                signal.setitimer(signal.ITIMER_REAL, 0)
    except _Hang:
        case.outcome, case.detail = "hang", f"over {TIMEOUT:.0f} s"
        return
    except Exception as e:  # noqa: BLE001 (sorted below)
        if _own_error(case.surface, e):
            result = "refused"
            case.detail = str(e)[:200]
        else:
            case.outcome, case.detail = "traceback", f"{type(e).__name__}: {e}"[:200]
            return
    finally:
        os.chdir(here)
    _judge(case, result, p, kept, target_before)


def _own_error(surface: str, e: Exception) -> bool:
    """Whether ``e`` is the error a writer documents (the command line's are exit codes)."""
    from trainer.checkpoint import CheckpointError
    from trainer.export import ExportError
    from trainer.film import FilmError

    own = {"atomic_write": OSError, "save_checkpoint": CheckpointError, "save_film": FilmError}
    return surface in LIBRARY and isinstance(e, own.get(surface, ExportError))


def _devices_allowed(folder: Path) -> bool:
    try:
        os.mknod(folder / "probe", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (OSError, AttributeError):
        return False
    os.unlink(folder / "probe")
    return True


def run_fuzz(folder: Path, seed: int = SEED) -> list[Case]:
    rng = random.Random(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    old = signal.signal(signal.SIGALRM, _on_alarm) if hasattr(signal, "SIGALRM") else None
    try:
        s = _setting(folder)
        devices = _devices_allowed(folder)
        cases = []
        for surface in SURFACES:
            for kind in _kinds(surface):
                if kind == "device" and not devices:
                    continue
                case = Case(surface, kind, rng.choice(SPELLINGS))
                _run_case(case, s, folder / f"c{len(cases)}")
                cases.append(case)
    finally:
        if hasattr(signal, "SIGALRM"):
            signal.signal(signal.SIGALRM, old)
        torch.set_num_threads(threads)
    return cases


def tally(cases: list[Case]) -> str:
    rows = [
        ("all", cases),
        ("library writers", [c for c in cases if c.surface in LIBRARY]),
        ("command line", [c for c in cases if c.surface in COMMANDS]),
    ]
    lines = [f"{'':16}{'cases':>7}" + "".join(f"{o:>21}" for o in OUTCOMES)]
    for name, group in rows:
        counts = Counter(c.outcome for c in group)
        lines.append(f"{name:16}{len(group):>7}" + "".join(f"{counts[o]:>21}" for o in OUTCOMES))
    return "\n".join(lines)


@pytest.mark.skipif(
    not hasattr(os, "mkfifo") or not hasattr(signal, "SIGALRM"),
    reason="named pipes and the hang guard are POSIX things",
)
def test_no_writer_replaces_what_is_no_file_or_an_input(tmp_path):
    t = time.perf_counter()
    cases = run_fuzz(tmp_path)
    seconds = time.perf_counter() - t
    bad = [c for c in cases if c.outcome != "clean"]
    report = (
        tally(cases)
        + f"\n{seconds:.1f} s\n"
        + "\n".join(
            f"{c.outcome}: {c.surface} / {c.kind} ({c.spelling}): {c.detail}" for c in bad[:20]
        )
    )
    assert not bad, report
    per_surface = Counter(c.surface for c in cases)
    assert set(per_surface) == set(SURFACES), report
    assert len(cases) >= 150, report
    # a link to a regular file was followed: the link is still there, its target written
    followed = [c for c in cases if c.kind in FOLLOWED]
    assert len(followed) == 2 * len(SURFACES) and all(c.outcome == "clean" for c in followed)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        cases = run_fuzz(Path(d))
        print(tally(cases))
        print(f"{time.perf_counter() - t:.1f} s")
        for c in cases:
            if c.outcome != "clean":
                print(f"{c.outcome}: {c.surface} / {c.kind} ({c.spelling}): {c.detail}")
        sys.exit(0)
