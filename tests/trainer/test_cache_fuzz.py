"""A seeded fuzz of the decoded cache (:mod:`trainer.data.cache`): never stale, never damaged,
never blocking.

Three small sources (an image folder, an IDX pair, IDX images without labels) are decoded
into a cache; then, case by case, on five surfaces:

- meta: the cache's ``meta.json`` mutated: its labels flag flipped, each field of another
  type or removed, the shape reshaped with the same product, class names swapped, renamed,
  cut or added, the checksums changed, bits flipped in its text, not JSON, JSON of another
  kind, nested past Python's limit, too large; a folder, a named pipe or a link to nothing
  in its place; another cache's ``meta.json``;
- files: ``images.u8`` and ``labels.i64`` with bits flipped in place, zeroed, cut short,
  extended, removed, swapped, a folder, a named pipe, a link (to a user's file of the same
  size, to nothing) in their place; the cache folder a file, a link to a user's folder, or
  unreadable. A share of the meta and files cases has a cache folder that cannot be written;
- source: the source changed behind the cache's back, keeping names, sizes and
  modification times: another folder alike in them (another extraction of an archive), its
  files replaced with ``cp -p``, extracted again in place, two files' contents swapped, a
  file edited and its time put back (``touch -r``), a link to the folder or the IDX file
  pointed elsewhere;
- killed: a builder killed (SIGKILL) after writing the images, after the labels, before
  renaming the cache into place, while removing a stale cache; temporaries left by a dead
  builder of this version and of an older one, and one of a live builder (never removed);
- unwritable: the cache folder (or HOME, or XDG_CACHE_HOME) a file, under a file, a link
  to nothing or round in a loop, read-only, unsearchable, or full (RLIMIT_FSIZE), with and
  without a cache in it.

Each case runs in forked processes (as ``nobody`` when the tests run as root, so that a
read-only folder is read-only) and loads its source twice. It is clean when both loads give
what a fresh decode gives (pixels, labels, class names) and at most one line is said on
stderr. Else it is: refused valid (a DataError for a good source), said twice (more than
one line), left behind (after a killed builder, the next build leaves a temporary or a half
cache of a dead process), traceback (another exception), hang (over TIMEOUT s), crash (the
process died of a signal), silent wrong (other data than a fresh decode), or data lost (a
source file, a user's file or folder a link led to, or a live builder's temporary changed
or gone).

``python tests/trainer/test_cache_fuzz.py`` prints the tally.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import random
import re
import select
import shutil
import signal
import stat
import struct
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

try:  # imported here: a load as nobody cannot import from a folder only root may read
    import resource
except ImportError:  # not POSIX: the test is skipped
    resource = None

SEED = 20261124
CASES = {"meta": 120, "files": 90, "source": 44, "killed": 16, "unwritable": 32}
TIMEOUT = 20.0  # seconds a forked load may take before it counts as a hang
OUTCOMES = (
    "clean",
    "refused valid",
    "said twice",
    "left behind",
    "traceback",
    "hang",
    "crash",
    "silent wrong",
    "data lost",
)
SOURCES = ("folder", "idx", "idx-nolabels")
AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
NOBODY = 65534
KEY = re.compile(r"[0-9a-f]{40}")
FSIZE = 1000  # bytes: "a full disk" (RLIMIT_FSIZE); each source's images are larger


@dataclass
class Case:
    surface: str
    kind: str
    source: str
    locked: str = ""  # what cannot be written: "" (nothing), "its folder" (the cache's), "all"
    outcome: str = "clean"
    detail: str = ""


@dataclass
class Setting:
    work: Path  # every case's folder lies here (readable by nobody)
    src: Path  # the three sources
    base: dict[str, Path]  # source -> a data folder (LATENT_EXPLORER_DATA) holding its cache
    env: dict[str, str] = field(default_factory=dict)


# -- sources ----------------------------------------------------------------------------------
def _idx_bytes(arr: np.ndarray) -> bytes:
    head = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return head + arr.astype(np.uint8).tobytes()


def _write_folder(root: Path, rng: np.random.Generator, suffix: str = ".png") -> None:
    for c in ("ant", "bee", "cat"):
        (root / c).mkdir(parents=True)
        for i in range(8):
            px = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
            Image.fromarray(px).save(root / c / f"{i}{suffix}")


def _write_idx(folder: Path, rng: np.random.Generator, gz: bool = True) -> None:
    import gzip

    folder.mkdir(parents=True, exist_ok=True)
    x = _idx_bytes(rng.integers(0, 256, (40, 10, 10), dtype=np.uint8))
    y = np.arange(40) % 4
    rng.shuffle(y)
    (folder / ("images.gz" if gz else "images.idx")).write_bytes(
        gzip.compress(x, mtime=0) if gz else x
    )
    (folder / "labels.idx").write_bytes(_idx_bytes(y))


def _spec(source: str, src: Path, root: Path | None = None, images: Path | None = None):
    from trainer.data import DataSpec

    if source == "folder":
        return DataSpec(
            "folder", root=str(root or src / "folder"), image_size=12, test_fraction=0.25
        )
    images = images or src / "idx" / "images.gz"
    labels = str(images.parent / "labels.idx") if source == "idx" else None
    return DataSpec("idx", images=str(images), labels=labels)


def _arrays(d) -> tuple:
    """What a load gave, in memory: train/test images and labels, class names, its name."""
    y = lambda t: None if t is None else t.numpy().copy()  # noqa: E731
    return (
        d.train_x.to("cpu").numpy().copy(),
        d.test_x.numpy().copy(),
        y(d.train_y),
        y(d.test_y),
        list(d.class_names),
        d.name,
    )


def _same(a: tuple, b: tuple) -> bool:
    for u, v in zip(a, b, strict=True):
        if isinstance(u, np.ndarray) or isinstance(v, np.ndarray):
            if u is None or v is None or u.shape != v.shape or not np.array_equal(u, v):
                return False
        elif u != v:
            return False
    return True


# -- running a load in a process of its own ---------------------------------------------------
class Load:
    """What a forked process does: (spec, env) pairs loaded in turn, each checked against a
    fresh decode of its source (made first, in an empty cache folder of its own)."""

    def __init__(
        self,
        loads,
        fresh: Path,
        drop: bool,
        fsize: int | None = None,
        hook: Callable[[], None] | None = None,
    ) -> None:
        self.loads, self.fresh, self.drop, self.fsize, self.hook = loads, fresh, drop, fsize, hook

    def __call__(self, err_fd: int) -> tuple[str, str]:
        from trainer.data import DataError, load_data

        refs = []
        for i, (spec, _env) in enumerate(self.loads):
            os.environ["LATENT_EXPLORER_DATA"] = str(self.fresh / str(i))
            refs.append(_arrays(load_data(spec)))
        os.dup2(err_fd, 2)
        sys.stderr = open(2, "w", buffering=1, closefd=False, errors="backslashreplace")  # noqa: SIM115
        if self.drop:
            os.seteuid(NOBODY)
        if self.fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (self.fsize, resource.RLIM_INFINITY))
        if self.hook is not None:
            self.hook()
        for (spec, env), ref in zip(self.loads, refs, strict=True):
            os.environ.clear()
            os.environ.update(env)
            try:
                got = _arrays(load_data(spec))
            except DataError as e:
                return "refused valid", str(e)[:300]
            except Exception as e:  # noqa: BLE001 - what the fuzz is looking for
                return "traceback", f"{type(e).__name__}: {e}"[:300]
            if not _same(got, ref):
                what = [
                    k
                    for k, u, v in zip("train_x test_x train_y test_y names name".split(), got, ref)
                    if not _same((u,), (v,))
                ]
                return "silent wrong", f"differs from a fresh decode in {', '.join(what)}"
        return "ok", ""


class Train:
    """What a forked process does for the command line: ``latent-train train`` on a source,
    which must run (exit code 0). Only the notes it prints count as said: a run prints its
    progress on stderr too. Run once first with a cache of its own, which imports what a
    run needs before the process may be nobody."""

    def __init__(self, spec, env: dict[str, str], case_dir: Path, drop: bool) -> None:
        self.spec, self.env, self.case_dir, self.drop = spec, env, case_dir, drop

    def said(self, line: str) -> bool:
        return line.startswith("note:")

    def argv(self, out: Path) -> list[str]:
        spec = self.spec
        if spec.source == "folder":
            data = ["--dataset", "folder", "--root", spec.root, "--image-size", "12"]
        else:
            data = ["--dataset", "idx", "--images", spec.images]
            data += ["--labels", spec.labels] if spec.labels else []
        return ["train", *data, "--epochs", "1", "--batch-size", "8", "--out", str(out)]

    def __call__(self, err_fd: int) -> tuple[str, str]:
        import contextlib as cl
        import io

        from trainer.__main__ import main

        os.environ["LATENT_EXPLORER_DATA"] = str(self.case_dir / "fresh")
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 2)
        with cl.redirect_stdout(io.StringIO()), cl.redirect_stderr(io.StringIO()):
            if main(self.argv(self.case_dir / "first")) != 0:
                return "harness", "the first run failed"
        os.dup2(err_fd, 2)
        sys.stderr = open(2, "w", buffering=1, closefd=False, errors="backslashreplace")  # noqa: SIM115
        if self.drop:
            os.seteuid(NOBODY)
        os.environ.clear()
        os.environ.update(self.env)
        try:
            with cl.redirect_stdout(io.StringIO()):
                code = main(self.argv(self.case_dir / "out"))
        except Exception as e:  # noqa: BLE001 - what the fuzz is looking for
            return "traceback", f"{type(e).__name__}: {e}"[:300]
        return ("ok", "") if code == 0 else ("refused valid", f"exit code {code}")


def _fork(
    body: Load | Train, case_dir: Path, expect_kill: bool = False
) -> tuple[str, str, list[str]]:
    """(outcome, detail, lines on stderr) of ``body`` run in a forked process."""
    r, w = os.pipe()
    err_path = case_dir / f"stderr-{time.monotonic_ns()}.txt"
    err = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    for attempt in range(20):  # (a busy machine may refuse a fork for a moment)
        try:
            pid = os.fork()
            break
        except BlockingIOError:
            if attempt == 19:
                raise
            time.sleep(0.5)
    if pid == 0:  # the child: never returns into the test
        payload = b""
        try:
            os.close(r)
            torch.set_num_threads(1)
            payload = pickle.dumps(body(err))
        except BaseException as e:  # noqa: BLE001 - reported, as the harness's own fault
            payload = pickle.dumps(("harness", f"{type(e).__name__}: {e}"[:300]))
        finally:
            with contextlib.suppress(BaseException):
                os.write(w, payload)
            os._exit(0)
    os.close(w)
    os.close(err)
    data, status = b"", None
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if select.select([r], [], [], 0.01)[0]:
            data += os.read(r, 1 << 16)
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = st
            break
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    while chunk := os.read(r, 1 << 16):
        data += chunk
    os.close(r)
    said = getattr(body, "said", lambda line: True)
    text = err_path.read_text(errors="replace")
    lines = [ln for ln in text.splitlines() if ln.strip() and said(ln)]
    if status is None:
        return "hang", f"over {TIMEOUT:.0f} s", lines
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if expect_kill and sig == signal.SIGKILL:
            return "killed", "", lines
        return "crash", f"died of signal {signal.Signals(sig).name}", lines
    if not data:
        return "crash", f"exited with {os.WEXITSTATUS(status)} and no word", lines
    outcome, detail = pickle.loads(data)
    return outcome, detail, lines


# -- what must not change ---------------------------------------------------------------------
def _state(paths: list[Path]) -> dict[str, object]:
    out: dict[str, object] = {}
    for top in paths:
        found = [top]
        if top.is_dir() and not top.is_symlink():
            found += sorted(top.rglob("*"))
        for p in found:
            try:
                st = os.lstat(p)
            except OSError:
                out[str(p)] = None
                continue
            if stat.S_ISLNK(st.st_mode):
                out[str(p)] = ("link", os.readlink(p))
            elif stat.S_ISREG(st.st_mode):
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                out[str(p)] = stat.S_IFMT(st.st_mode)
    return out


# -- permissions: "cannot be written" for nobody when root, for the user otherwise ------------
def _open_up(tree: Path) -> None:
    """Let the forked process (nobody, when root) write in every folder of ``tree``."""
    if not AS_ROOT or not tree.is_dir() or tree.is_symlink():
        return
    for p in [tree, *tree.rglob("*")]:
        if p.is_dir() and not p.is_symlink():
            p.chmod(0o777)


def _lock(folder: Path, hidden: bool = False) -> None:
    """``folder`` read-only (or, ``hidden``, not even searchable) for the forked process."""
    if AS_ROOT:
        folder.chmod(0o700 if hidden else 0o755)
    else:
        folder.chmod(0o000 if hidden else 0o555)


def _unlock_all(tree: Path) -> None:
    """Every folder under ``tree`` searchable and writable again (to remove it after)."""
    if AS_ROOT:
        return
    stack = [str(tree)]
    while stack:  # each folder opened up before it is looked in
        folder = stack.pop()
        try:
            os.chmod(folder, 0o755)
            with os.scandir(folder) as entries:
                stack += [e.path for e in entries if e.is_dir(follow_symlinks=False)]
        except OSError:
            continue


def _env(s: Setting, **kv: str | None) -> dict[str, str]:
    env = dict(s.env)
    for k, v in kv.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


def _cache_folder(data: Path) -> Path:
    (folder,) = [d for d in (data / "decoded").iterdir() if KEY.fullmatch(d.name)]
    return folder


def _copy_base(s: Setting, source: str, case_dir: Path) -> Path:
    data = case_dir / "data"
    shutil.copytree(s.base[source], data, symlinks=True)
    return data


# -- meta -------------------------------------------------------------------------------------
META_KINDS = (
    "labels flipped",
    "labels of another type",
    "shape reshaped",
    "shape of another type",
    "class names swapped",
    "class name renamed",
    "class names cut or added",
    "class names of another type",
    "crc changed",
    "labels crc changed",
    "version changed",
    "source changed",
    "field removed",
    "field of another type",
    "field added",
    "bits flipped in the text",
    "cut short",
    "not JSON",
    "JSON of another kind",
    "nested too deep",
    "too large",
    "a folder in its place",
    "a named pipe in its place",
    "a link to nothing in its place",
    "removed",
    "another cache's",
)
OTHER_TYPES = (None, True, False, 0, -1, 1.5, float("nan"), 2**70, "", "x", [], {}, [1, 2])


def _reshaped(rng: random.Random, shape: list[int]) -> list[int]:
    n, c, h, w = shape
    options = [
        [n, c, w, h],
        [c, n, h, w],
        [n, 1, c * h, w],
        [n * c, 1, h, w],
        [n, c, h * w, 1],
        [1, n, c * h, w],
        [n, h, c, w],
    ]
    if n % 2 == 0:
        options.append([n // 2, 2 * c, h, w])
    options = [o for o in options if o != shape]
    return rng.choice(options)


def _mutate_meta(rng: random.Random, path: Path, kind: str, other: Path) -> None:
    text = path.read_text()
    meta = json.loads(text)
    names = meta.get("class_names", [])
    if kind == "labels flipped":
        meta["labels"] = not meta["labels"]
    elif kind == "labels of another type":
        meta["labels"] = rng.choice([0, 1, "true", "false", None, [], {}])
    elif kind == "shape reshaped":
        meta["shape"] = _reshaped(rng, meta["shape"])
    elif kind == "shape of another type":
        sh = meta["shape"]
        meta["shape"] = rng.choice(
            [
                str(sh),
                [float(v) for v in sh],
                sh[:3],
                [*sh, 1],
                [-v for v in sh],
                None,
                {},
                [sh],
                [True, *sh[1:]],
                [0, *sh[1:]],
                [2**40, *sh[1:]],
            ]
        )
    elif kind == "class names swapped":
        i, j = rng.sample(range(len(names)), 2)
        names[i], names[j] = names[j], names[i]
    elif kind == "class name renamed":
        names[rng.randrange(len(names))] += "x"
    elif kind == "class names cut or added":
        if rng.random() < 0.5 and names:
            names.pop(rng.randrange(len(names)))
        else:
            names.append("extra")
    elif kind == "class names of another type":
        if names and rng.random() < 0.6:
            names[rng.randrange(len(names))] = rng.choice([1, None, ["a"], {"a": 1}, True])
        else:
            meta["class_names"] = rng.choice([",".join(names), None, {}, 3])
    elif kind == "crc changed":
        meta["crc32"] = rng.choice(
            [meta["crc32"] ^ 1, 0, str(meta["crc32"]), None, float(meta["crc32"]), -1]
        )
    elif kind == "labels crc changed":
        if "labels_crc32" in meta and rng.random() < 0.7:
            meta["labels_crc32"] = rng.choice([meta["labels_crc32"] ^ 4, 0, None, "0"])
        else:
            meta.pop("labels_crc32", None)
    elif kind == "version changed":
        meta["version"] = rng.choice(
            [meta.get("version", 0) + 1, meta.get("version", 1) - 1, None, "2", 2.0]
        )
    elif kind == "source changed":
        meta["source"] = rng.choice(["folder:/elsewhere:12", "", None, 7])
    elif kind == "field removed":
        meta.pop(rng.choice(sorted(meta)))
    elif kind == "field of another type":
        meta[rng.choice(sorted(meta))] = rng.choice(OTHER_TYPES)
    elif kind == "field added":
        meta[rng.choice(["extra", "note", "Shape"])] = rng.choice(OTHER_TYPES)
    elif kind == "bits flipped in the text":
        b = bytearray(text.encode())
        for _ in range(rng.randint(1, 3)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(b))
        return
    elif kind == "cut short":
        path.write_text(text[: rng.randrange(len(text))])
        return
    elif kind == "not JSON":
        path.write_bytes(rng.choice([b"", b"{not json", bytes(range(256)), b"\xff\xfe{}"]))
        return
    elif kind == "JSON of another kind":
        path.write_text(json.dumps(rng.choice([[meta], "meta", 3, None, [], True])))
        return
    elif kind == "nested too deep":
        path.write_text("[" * 200_000 + "]" * 200_000)
        return
    elif kind == "too large":
        path.write_text(text + " " * (20 << 20))
        return
    elif kind == "a folder in its place":
        path.unlink()
        path.mkdir()
        return
    elif kind == "a named pipe in its place":
        path.unlink()
        os.mkfifo(path)
        return
    elif kind == "a link to nothing in its place":
        path.unlink()
        path.symlink_to(path.parent / "nothing")
        return
    elif kind == "removed":
        path.unlink()
        return
    elif kind == "another cache's":
        shutil.copyfile(other, path)
        return
    path.write_text(json.dumps(meta))


def _meta_case(s: Setting, case: Case, rng: random.Random, case_dir: Path) -> None:
    data = _copy_base(s, case.source, case_dir)
    folder = _cache_folder(data)
    others = [x for x in SOURCES if x != case.source]
    other = _cache_folder(s.base[rng.choice(others)]) / "meta.json"
    _mutate_meta(rng, folder / "meta.json", case.kind, other)
    _run_loads(s, case, case_dir, data)


# -- files ------------------------------------------------------------------------------------
FILE_KINDS = (
    "bits flipped",
    "zeroed",
    "cut short",
    "extended",
    "removed",
    "a folder in its place",
    "a named pipe in its place",
    "a link to a user's file",
    "a link to nothing",
    "swapped with the other",
    "cache folder a file",
    "cache folder a link to a user's folder",
    "cache folder unreadable",
)


def _mutate_files(rng: random.Random, folder: Path, kind: str, user: Path) -> list[Path]:
    """Damage the cache in ``folder``; returns the user's files a link now leads to."""
    names = ["images.u8"] + (["labels.i64"] if (folder / "labels.i64").exists() else [])
    target = folder / rng.choice(names)
    size = target.stat().st_size
    user.mkdir()
    if kind == "bits flipped":
        with open(target, "r+b") as f:
            for _ in range(rng.randint(1, 4)):
                i = rng.randrange(size)
                f.seek(i)
                b = f.read(1)[0]
                f.seek(i)
                f.write(bytes([b ^ (1 << rng.randrange(8))]))
    elif kind == "zeroed":
        target.write_bytes(bytes(size))
    elif kind == "cut short":
        os.truncate(target, rng.randrange(size))
    elif kind == "extended":
        with open(target, "ab") as f:
            f.write(bytes(rng.randint(1, 64)))
    elif kind == "removed":
        target.unlink()
    elif kind == "a folder in its place":
        target.unlink()
        target.mkdir()
    elif kind == "a named pipe in its place":
        target.unlink()
        os.mkfifo(target)
    elif kind == "a link to a user's file":
        decoy = user / "mine.bin"
        decoy.write_bytes(bytes(rng.getrandbits(8) for _ in range(size)))
        target.unlink()
        target.symlink_to(decoy)
        return [user]
    elif kind == "a link to nothing":
        target.unlink()
        target.symlink_to(folder / "nothing")
    elif kind == "swapped with the other":
        a, b = folder / "images.u8", folder / ("labels.i64" if len(names) > 1 else "meta.json")
        os.rename(a, folder / "swap")
        os.rename(b, a)
        os.rename(folder / "swap", b)
    elif kind == "cache folder a file":
        shutil.rmtree(folder)
        folder.write_bytes(b"not a cache")
    elif kind == "cache folder a link to a user's folder":
        mine = user / "folder"
        shutil.copytree(folder, mine)
        (mine / "notes.txt").write_text("the user's own")
        shutil.rmtree(folder)
        folder.symlink_to(mine)
        return [user]
    return []  # ("cache folder unreadable": made so once the rest is in place)


def _files_case(s: Setting, case: Case, rng: random.Random, case_dir: Path) -> None:
    data = _copy_base(s, case.source, case_dir)
    watched = _mutate_files(rng, _cache_folder(data), case.kind, case_dir / "user")
    _run_loads(s, case, case_dir, data, watched)


def _run_loads(s: Setting, case: Case, case_dir: Path, data: Path, watched=()) -> None:
    """Load the case's source twice from the cache in ``data`` (read-only if locked)."""
    _open_up(data)
    folders = [p for p in (data / "decoded").iterdir() if p.is_dir() and not p.is_symlink()]
    if case.locked:
        for d in [*folders, data / "decoded", data] if case.locked == "all" else folders:
            _lock(d)
    if case.kind == "cache folder unreadable":
        for d in folders:
            _lock(d, hidden=True)
    spec = _spec(case.source, s.src)
    env = _env(s, LATENT_EXPLORER_DATA=str(data))
    _judge(
        case, Load([(spec, env)] * 2, case_dir / "fresh", drop=AS_ROOT), case_dir, [s.src, *watched]
    )


def _judge(
    case: Case,
    body: Load | Train,
    case_dir: Path,
    watched: list[Path],
    after: Callable[[], str | None] | None = None,
) -> None:
    before = _state(watched)
    outcome, detail, lines = _fork(body, case_dir)
    problem = after() if after is not None and outcome == "ok" else None
    if _state(watched) != before:
        case.outcome, case.detail = "data lost", "a file outside the cache changed or went"
    elif outcome == "harness":
        raise AssertionError(f"{case}: the harness failed: {detail}")
    elif outcome != "ok":
        case.outcome, case.detail = outcome, detail
    elif problem is not None:
        case.outcome, case.detail = "left behind", problem
    elif len(lines) > 1:
        case.outcome, case.detail = "said twice", " | ".join(lines)[:300]
    else:
        case.outcome, case.detail = "clean", " | ".join(lines)[:300]


# -- source -----------------------------------------------------------------------------------
SOURCE_KINDS = (
    "another folder alike",
    "files replaced with cp -p",
    "one file replaced",
    "extracted again in place",
    "two files swapped",
    "edited, time put back",
    "folder link pointed elsewhere",
    "idx replaced with cp -p",
    "idx labels replaced with cp -p",
    "idx extracted again",
    "idx link pointed elsewhere",
)


def _alike(a: Path, b: Path) -> None:
    """Give every file under ``b`` the modification time of its namesake under ``a``."""
    for f in sorted(b.rglob("*")):
        if f.is_file():
            st = (a / f.relative_to(b)).stat()
            os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))


def _copy_p(src: Path, dst: Path) -> None:
    """``cp -p src dst``: the contents written over ``dst`` (the same inode), times kept."""
    shutil.copyfile(src, dst)
    shutil.copystat(src, dst)


def _source_case(s: Setting, case: Case, rng: random.Random, case_dir: Path) -> None:
    nrng = np.random.default_rng(rng.getrandbits(32))
    here = case_dir / "src"
    a, b = here / "a", here / "b"
    folder = not case.kind.startswith("idx")
    if folder:  # uncompressed BMP: every file the same size whatever its pixels
        _write_folder(a, nrng, ".bmp")
        _write_folder(b, nrng, ".bmp")
        _alike(a, b)
        files = sorted(f for f in a.rglob("*.bmp"))
    else:
        _write_idx(a, nrng, gz=False)
        _write_idx(b, nrng, gz=False)
        _alike(a, b)
    link = here / "link"
    link.symlink_to(a)
    source = "folder" if folder else "idx"
    via_link = case.kind.endswith("link pointed elsewhere")
    named = link if via_link else a
    first = then = _spec(source, s.src, root=named, images=named / "images.idx")
    data = case_dir / "data"
    data.mkdir()
    _open_up(data)
    env = _env(s, LATENT_EXPLORER_DATA=str(data))
    # the cache of the source as it was, made by a load
    before = Case(case.surface, case.kind, source)
    _judge(before, Load([(first, env)], case_dir / "fresh0", drop=AS_ROOT), case_dir, [here])
    if before.outcome != "clean":
        case.outcome, case.detail = before.outcome, "first load: " + before.detail
        return
    time.sleep(0.01)  # the change a few clock ticks after the cache was made
    k = case.kind
    if k == "another folder alike":
        then = _spec(source, s.src, root=b)
    elif k in ("files replaced with cp -p", "idx replaced with cp -p"):
        for f in sorted(a.rglob("*")):
            if f.is_file() and f.name != "labels.idx":
                _copy_p(b / f.relative_to(a), f)
    elif k == "one file replaced":
        f = rng.choice(files)
        _copy_p(b / f.relative_to(a), f)
    elif k in ("extracted again in place", "idx extracted again"):
        shutil.rmtree(a)
        shutil.copytree(b, a)
    elif k == "two files swapped":
        f, g = rng.sample(files, 2)
        fs, gs = f.stat(), g.stat()
        fb, gb = f.read_bytes(), g.read_bytes()
        f.write_bytes(gb)
        g.write_bytes(fb)
        os.utime(f, ns=(fs.st_atime_ns, fs.st_mtime_ns))
        os.utime(g, ns=(gs.st_atime_ns, gs.st_mtime_ns))
    elif k == "edited, time put back":
        f = rng.choice(files)
        st = f.stat()
        raw = bytearray(f.read_bytes())
        raw[-1 - rng.randrange(100)] ^= 0xFF  # a pixel (BMP rows are stored last)
        f.write_bytes(bytes(raw))
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    elif k in ("folder link pointed elsewhere", "idx link pointed elsewhere"):
        link.unlink()
        link.symlink_to(b)
    elif k == "idx labels replaced with cp -p":
        y = np.frombuffer((a / "labels.idx").read_bytes()[8:], dtype=np.uint8).copy()
        y = np.roll(y, 1 + rng.randrange(len(y) - 1))
        (b / "labels.idx").write_bytes(_idx_bytes(y))
        _alike(a, b)
        _copy_p(b / "labels.idx", a / "labels.idx")
    _judge(case, Load([(then, env)] * 2, case_dir / "fresh", drop=AS_ROOT), case_dir, [here])


# -- killed -----------------------------------------------------------------------------------
KILL_KINDS = (
    "after writing the images",
    "after writing the labels",
    "before renaming",
    "while removing a stale cache",
    "a dead builder's temporary",
    "an older version's temporary",
    "a live builder's temporary",
)


def _kill_me() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _hook(kind: str) -> Callable[[], None]:
    def install() -> None:
        import trainer.data.cache as cache

        if kind in ("after writing the images", "after writing the labels"):
            crc, calls = cache._crc, []

            def counted(*a, **k):
                calls.append(1)
                if len(calls) == (1 if kind == "after writing the images" else 2):
                    _kill_me()
                return crc(*a, **k)

            cache._crc = counted
        elif kind == "before renaming":
            os.rename = lambda *a, **k: _kill_me()
        else:  # while removing a stale cache: its meta.json gone, the rest not yet
            rmtree = shutil.rmtree

            def partly(path, *a, **k):
                if os.path.isfile(os.path.join(path, "meta.json")):
                    os.unlink(os.path.join(path, "meta.json"))
                    _kill_me()
                return rmtree(path, *a, **k)

            shutil.rmtree = partly

    return install


def _dead_pid() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def _backdate(tree: Path, seconds: float) -> None:
    then = time.time() - seconds
    for p in [*tree.rglob("*"), tree]:
        with contextlib.suppress(OSError):
            os.utime(p, (then, then), follow_symlinks=False)


def _killed_case(s: Setting, case: Case, rng: random.Random, case_dir: Path) -> None:
    data = case_dir / "data"
    other = "folder" if case.source != "folder" else rng.choice(["idx", "idx-nolabels"])
    here = case_dir / "src"
    shutil.copytree(s.src, here)  # (a stale cache is made by touching a file of the copy)
    spec, other_spec = _spec(case.source, here), _spec(other, here)
    env = _env(s, LATENT_EXPLORER_DATA=str(data))
    watched: list[Path] = []
    k = case.kind
    if k in KILL_KINDS[:4]:
        if k == "while removing a stale cache":
            data.mkdir()
            _open_up(data)
            _fork(Load([(spec, env)], case_dir / "fresh0", drop=AS_ROOT), case_dir)
            touched = here / ("folder/ant/0.png" if case.source == "folder" else "idx/images.gz")
            os.utime(touched, (time.time() - 100, time.time() - 100))
        else:
            data.mkdir()
            _open_up(data)
        body = Load([(spec, env)], case_dir / "fresh1", drop=AS_ROOT, hook=_hook(k))
        outcome, detail, _ = _fork(body, case_dir, expect_kill=True)
        if outcome not in ("killed", "ok"):
            case.outcome, case.detail = outcome, "the killed build: " + detail
            return
    else:  # a temporary left in the cache folder by another builder, as that builder names it
        data.mkdir()
        _open_up(data)
        _fork(Load([(spec, env)], case_dir / "fresh0", drop=AS_ROOT), case_dir)
        key = _cache_folder(data).name
        pid = os.getpid() if k == "a live builder's temporary" else _dead_pid()
        if k == "an older version's temporary":
            name = f".tmp-{key}-{pid}"
        else:
            name = f".{key}.{pid}.{rng.choice(['abcdefgh', 'x1y2z3_q'])}.tmp"
        left = data / "decoded" / name
        left.mkdir()
        (left / "images.u8").write_bytes(os.urandom(1 << 20))
        if k == "a live builder's temporary":
            watched = [left]
        _open_up(data)
    _backdate(data / "decoded", 7200)
    live = {str(p) for p in watched}

    def leftovers() -> str | None:
        bad = []
        for p in sorted((data / "decoded").iterdir()):
            if str(p) in live:
                continue
            if KEY.fullmatch(p.name) and (p / "meta.json").is_file():
                continue
            bad.append(p.name)
        return f"still there after the next build: {', '.join(bad)}" if bad else None

    # the next loads: the same source, then another (a build)
    body = Load([(spec, env), (other_spec, env)], case_dir / "fresh", drop=AS_ROOT)
    _judge(case, body, case_dir, [here, *watched], after=leftovers)


# -- unwritable -------------------------------------------------------------------------------
UNWRITABLE_KINDS = (
    "a file",
    "under a file",
    "a link to nothing",
    "a link loop",
    "read-only",
    "read-only, with a cache",
    "decoded read-only, with a cache",
    "unsearchable",
    "decoded unsearchable, with a cache",
    "HOME read-only",
    "HOME unsearchable",
    "XDG_CACHE_HOME a file",
    "full",
    "full, a damaged cache",
    "train, HOME unsearchable",
    "train, a damaged cache read-only",
)


def _unwritable_case(s: Setting, case: Case, rng: random.Random, case_dir: Path) -> None:
    k = case.kind
    data = case_dir / "data"
    spec = _spec(case.source, s.src)
    env = _env(s, LATENT_EXPLORER_DATA=str(data))
    fsize = None
    if k == "a file":
        data.write_text("a file where the cache folder should be")
    elif k == "under a file":
        (case_dir / "file").write_text("a file")
        env = _env(s, LATENT_EXPLORER_DATA=str(case_dir / "file" / "data"))
    elif k == "a link to nothing":
        data.symlink_to(case_dir / "nothing")
    elif k == "a link loop":
        data.symlink_to(data)
    elif k in ("read-only", "unsearchable"):
        data.mkdir()
        _lock(data, hidden=k == "unsearchable")
    elif k in (
        "read-only, with a cache",
        "decoded read-only, with a cache",
        "decoded unsearchable, with a cache",
    ):
        _copy_base(s, case.source, case_dir)
        _open_up(data)
        if k == "read-only, with a cache":
            _lock(data)
        for d in [*(data / "decoded").iterdir(), data / "decoded"]:  # inside out
            _lock(d, hidden=k.startswith("decoded unsearchable") and d.name == "decoded")
    elif k in ("HOME read-only", "HOME unsearchable", "train, HOME unsearchable"):
        home = case_dir / "home"
        (home / ".cache").mkdir(parents=True)
        _lock(home / ".cache", hidden=k.endswith("HOME unsearchable"))
        _lock(home)
        env = _env(s, HOME=str(home), LATENT_EXPLORER_DATA=None, XDG_CACHE_HOME=None)
    elif k == "XDG_CACHE_HOME a file":
        (case_dir / "xdg").write_text("a file")
        env = _env(s, XDG_CACHE_HOME=str(case_dir / "xdg"), LATENT_EXPLORER_DATA=None)
    elif k == "full":
        data.mkdir()
        _open_up(data)
        fsize = FSIZE
    elif k == "full, a damaged cache":
        _copy_base(s, case.source, case_dir)
        with open(_cache_folder(data) / "images.u8", "r+b") as f:
            f.write(b"\xff\x00\xff")
        _open_up(data)
        fsize = FSIZE
    elif k == "train, a damaged cache read-only":
        _copy_base(s, case.source, case_dir)
        with open(_cache_folder(data) / "images.u8", "r+b") as f:
            f.write(b"\xff\x00\xff")
        for d in [*(data / "decoded").iterdir(), data / "decoded", data]:
            _lock(d)
    if k.startswith("train"):
        (case_dir / "out").mkdir()
        _open_up(case_dir / "out")
        _judge(case, Train(spec, env, case_dir, drop=AS_ROOT), case_dir, [s.src])
        return
    body = Load([(spec, env)] * 2, case_dir / "fresh", drop=AS_ROOT, fsize=fsize)
    _judge(case, body, case_dir, [s.src])


# -- the fuzz ---------------------------------------------------------------------------------
RUNNERS = {
    "meta": (_meta_case, META_KINDS),
    "files": (_files_case, FILE_KINDS),
    "source": (_source_case, SOURCE_KINDS),
    "killed": (_killed_case, KILL_KINDS),
    "unwritable": (_unwritable_case, UNWRITABLE_KINDS),
}


def _setting(work: Path) -> Setting:
    src = work / "src"
    rng = np.random.default_rng(0)
    _write_folder(src / "folder", rng)
    _write_idx(src / "idx", rng)
    env = {
        k: v for k, v in os.environ.items() if k not in ("LATENT_EXPLORER_DATA", "XDG_CACHE_HOME")
    }
    env["HOME"] = str(work / "home")
    s = Setting(work, src, {}, env)
    for source in SOURCES:
        data = work / "base" / source
        data.mkdir(parents=True)
        _open_up(data)
        spec = _spec(source, src)
        case = Case("base", "base", source)
        env = _env(s, LATENT_EXPLORER_DATA=str(data))
        _judge(
            case, Load([(spec, env)], work / "base" / f"fresh-{source}", drop=AS_ROOT), work, [src]
        )
        assert case.outcome == "clean", case
        _cache_folder(data)
        s.base[source] = data
    return s


def _source_for(rng: random.Random, surface: str, kind: str) -> str:
    if surface == "source":
        return "idx" if kind.startswith("idx") else "folder"
    if surface == "killed":  # (a build killed after writing the labels needs labels)
        return rng.choice(["folder", "idx"])
    needs_labels = kind in (
        "class names swapped",
        "class name renamed",
        "labels crc changed",
        "class names cut or added",
    )
    if needs_labels:
        return rng.choice(["folder", "idx"])
    return rng.choice(SOURCES)


def run_fuzz(work: Path, seed: int = SEED, surfaces=tuple(CASES)) -> list[Case]:
    rng = random.Random(seed)
    mask = os.umask(0o022)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        work.chmod(0o755)  # nobody may look in (when root)
        s = _setting(work)
        cases = []
        for surface in surfaces:
            runner, kinds = RUNNERS[surface]
            for i in range(CASES[surface]):
                kind = kinds[i % len(kinds)]
                case = Case(surface, kind, _source_for(rng, surface, kind))
                r = rng.random() if surface in ("meta", "files") else 1.0
                case.locked = "its folder" if r < 0.2 else "all" if r < 0.4 else ""
                case_dir = work / f"c{len(cases)}"
                case_dir.mkdir()
                try:
                    runner(s, case, random.Random(rng.getrandbits(64)), case_dir)
                finally:
                    _unlock_all(case_dir)
                    shutil.rmtree(case_dir, ignore_errors=True)
                cases.append(case)
    finally:
        os.umask(mask)
        torch.set_num_threads(threads)
    return cases


def tally(cases: list[Case]) -> str:
    rows = [("all", cases)] + [(sf, [c for c in cases if c.surface == sf]) for sf in CASES]
    lines = [f"{'':12}{'cases':>7}" + "".join(f"{o:>14}" for o in OUTCOMES)]
    for name, group in rows:
        counts = Counter(c.outcome for c in group)
        lines.append(f"{name:12}{len(group):>7}" + "".join(f"{counts[o]:>14}" for o in OUTCOMES))
    return "\n".join(lines)


@pytest.mark.skipif(
    not hasattr(os, "fork") or not hasattr(os, "mkfifo"),
    reason="forked loads and named pipes are POSIX things",
)
def test_a_damaged_stale_or_unwritable_cache_never_gives_wrong_data_or_a_traceback():
    work = Path(tempfile.mkdtemp(prefix="cache-fuzz-"))
    try:
        t = time.perf_counter()
        cases = run_fuzz(work)
        seconds = time.perf_counter() - t
    finally:
        _unlock_all(work)
        shutil.rmtree(work, ignore_errors=True)
    bad = [c for c in cases if c.outcome != "clean"]
    report = (
        tally(cases)
        + f"\n{seconds:.1f} s\n"
        + "\n".join(
            f"{c.outcome}: {c.surface} / {c.kind} ({c.source}"
            f"{', read-only: ' + c.locked if c.locked else ''}): {c.detail}"
            for c in bad[:20]
        )
    )
    assert not bad, report
    assert len(cases) == sum(CASES.values()), report
    for surface, (_, kinds) in RUNNERS.items():  # every kind ran, each source where it can
        assert {c.kind for c in cases if c.surface == surface} == set(kinds), report
    locked = Counter(c.locked for c in cases)
    assert locked["its folder"] >= 25 and locked["all"] >= 25, report


if __name__ == "__main__":
    work = Path(tempfile.mkdtemp(prefix="cache-fuzz-"))
    try:
        t = time.perf_counter()
        only = tuple(sys.argv[1:]) or tuple(CASES)
        found = run_fuzz(work, surfaces=only)
        print(tally(found))
        print(f"{time.perf_counter() - t:.1f} s")
        for c in found:
            if c.outcome != "clean":
                lock = f", read-only: {c.locked}" if c.locked else ""
                print(f"{c.outcome}: {c.surface} / {c.kind} ({c.source}{lock}): {c.detail}")
    finally:
        _unlock_all(work)
        shutil.rmtree(work, ignore_errors=True)
