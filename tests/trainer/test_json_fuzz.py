"""A seeded fuzz of the JSON files a user could have edited or damaged.

Each surface takes a good file and damages it the ways a hand edit, a full disk or a stray
tool does: a field of another type (a number where text was, null, true, a list where an
object was, NaN, a 400-digit number, a lone surrogate, a NUL character, a text of 1.5 MB),
a field deleted or added, lists nested 10, 40 or 3,000 deep, the whole file another value,
its bytes cut short, flipped, padded past 4 MiB or not UTF-8 (or with a byte order mark),
and the file replaced by a named pipe, a folder, a symbolic link loop, a link to nothing,
a link to a pipe or a link to a good file. The surfaces are the ones a user meets:

- ``run.json``: a project of two good runs and the damaged one, listed by the project
  loader (:class:`trainer.runs.Project`, the window's Runs tab reads the same) and by
  ``latent-train runs``; a run that is listed is then removed, as the Runs tab's Remove does;
- ``metrics.json`` and ``evaluation.json`` of a ``latent-train train --out`` folder, added
  with ``latent-train runs --add FOLDER``;
- ``example.json`` beside a model added with ``latent-train runs --add FILE``, and in the
  bundled examples' folder, listed by ``latent-train examples``;
- ``bundle.json`` of an example's bundled test images, read by ``latent-train evaluate``
  on an example's checkpoint.

A reference reader here applies the rules every one of these files is read by: a regular
file of at most 4 MiB, UTF-8, JSON nested at most 32 deep, an object whose fields are each
of their kind. A good file must give its values exactly; any other, one line naming the file
(and the field at fault, if one is) while the rest goes on: the other runs listed, the run
added without that file's numbers. Never a traceback, a hang, a changed file, or a run of
another's removed.

``python tests/trainer/test_json_fuzz.py`` prints the tally.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import random
import re
import shutil
import signal
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pytest

SEED = 20261124
CASES = {
    "run.json": 320,
    "metrics.json": 110,
    "evaluation.json": 80,
    "example.json (runs --add)": 80,
    "example.json (examples)": 70,
    "bundle.json": 100,
}
TIMEOUT = 5.0  # seconds a case may take before it counts as a hang
MAX_BYTES, MAX_DEPTH = 4 << 20, 32
OUTCOMES = ("clean", "traceback", "hang", "crash", "silent wrong", "data lost", "refused good")
DEEP = {"\0DEEP10": 10, "\0DEEP40": 40, "\0DEEP3000": 3000}  # replaced by nested lists
HUGE = "\0HUGE"  # replaced by a text of 1.5 MB
GOOD_IDS = ("20260101-000000-aaaaaa", "20260102-000000-bbbbbb")
FUZZ_ID = "20260103-000000-cccccc"
SWAPS = [
    5,
    -1,
    0,
    2.5,
    1e300,
    float("nan"),
    float("inf"),
    10**30,
    10**400,
    True,
    False,
    None,
    "",
    "x",
    "a\nb",
    "\ud800",
    "a\0b",
    [],
    [1, 2],
    ["x"],
    {},
    {"a": 1},
    HUGE,
    *DEEP,
    GOOD_IDS[0],  # a run folder copied: two runs of one id
]


class Hang(Exception):
    pass


# -- the reference reader ---------------------------------------------------------------------
def _depth(v) -> int:
    deepest, stack = 0, [(v, 1)]
    while stack:
        x, d = stack.pop()
        if isinstance(x, dict | list):
            deepest = max(deepest, d)
            stack.extend((c, d + 1) for c in (x.values() if isinstance(x, dict) else x))
    return deepest


def ref_value(blob: bytes):
    """(True, value) for a file the rules let through to its fields, else (False, None)."""
    if len(blob) > MAX_BYTES:
        return False, None
    try:
        value = json.loads(blob.decode("utf-8-sig"))
    except (ValueError, RecursionError):
        return False, None
    return (True, value) if _depth(value) <= MAX_DEPTH else (False, None)


def is_text(v) -> bool:
    if not isinstance(v, str):
        return False
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_whole(v, lo=0, hi=2**63 - 1) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def is_number(v, finite=False) -> bool:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return False
    try:
        f = float(v)
    except OverflowError:
        return False
    return math.isfinite(f) or not finite


def check_fields(obj: dict, kinds: dict) -> str | None:
    """The first field of ``obj`` (of those ``kinds`` names) of the wrong kind, or None."""
    for key, kind in kinds.items():
        if key not in obj:
            if kind[1]:  # required
                return key
            continue
        v = obj[key]
        ok = {
            "text": is_text,
            "whole": is_whole,
            "number": is_number,
            "finite": lambda x: is_number(x, True),
            "object": lambda x: isinstance(x, dict),
            "list": lambda x: isinstance(x, list),
        }[kind[0]](v)
        if not ok:
            return key
    return None


NATS = ("test_nelbo", "test_nll_iw", "test_nll_prior_mc")
COUNTS = ("active_units", "iw_samples")
MEASURED = {**{k: ("number", False) for k in NATS}, **{k: ("whole", False) for k in COUNTS}}


def ref_run(value, folder: str) -> tuple[bool, str | None]:
    """(valid, the field at fault) for a run.json's value."""
    if not isinstance(value, dict):
        return False, None
    kinds = {k: ("text", True) for k in ("id", "name", "source", "checkpoint", "created", "data")}
    kinds.update(
        model=("object", True),
        train=("object", True),
        epochs=("whole", True),
        steps=("whole", True),
        curve=("list", False),
        metrics=("object", False),
        film=("whole", False),
    )
    bad = check_fields(value, kinds)
    if bad:
        return False, bad
    if value["id"] != folder:
        return False, "id"
    if value["checkpoint"] == "" or "\0" in value["checkpoint"]:
        return False, "checkpoint"
    model = {
        "model": ("text", False),
        "arch": ("text", False),
        "latent_dim": ("whole", False),
        "hidden": ("whole", False),
        "likelihood": ("text", False),
    }
    train = {
        "beta": ("finite", False),
        "lr": ("finite", False),
        "batch_size": ("whole", False),
        "warmup_epochs": ("finite", False),
        "seed": ("whole", False),
    }
    for key, kinds in (("model", model), ("train", train), ("metrics", MEASURED)):
        bad = check_fields(value.get(key, {}), {k: (kd[0], False) for k, kd in kinds.items()})
        if bad:
            return False, bad
    for point in value.get("curve", []):
        if not (
            isinstance(point, list)
            and len(point) == 2
            and is_whole(point[0])
            and is_number(point[1])
        ):
            return False, "curve"
    return True, None


def ref_measured(value, within: str | None = None) -> tuple[bool, str | None, dict]:
    """(valid, field at fault, the numbers kept) for metrics.json, evaluation.json or (in
    its object ``within``) example.json."""
    if not isinstance(value, dict):
        return False, None, {}
    if within is not None:
        if within not in value:
            return True, None, {}
        value = value[within]
        if not isinstance(value, dict):
            return False, within, {}
    bad = check_fields(value, MEASURED)
    if bad:
        return False, bad, {}
    return True, None, {k: value[k] for k in MEASURED if k in value}


def ref_example(value) -> tuple[bool, str | None]:
    """example.json as the examples' listing reads it."""
    if not isinstance(value, dict):
        return False, None
    bad = check_fields(value, {"metrics": ("object", False), "command": ("text", False)})
    if bad:
        return False, bad
    kinds = {
        "test_nelbo": ("number", False),
        "test_nll_iw": ("number", False),
        "float16_nelbo_change": ("number", False),
        "test_images": ("whole", False),
        "active_units": ("whole", False),
        "iw_samples": ("whole", False),
    }
    bad = check_fields(value.get("metrics", {}), kinds)
    return (False, bad) if bad else (True, None)


def ref_bundle(value) -> tuple[bool, str | None]:
    if not isinstance(value, dict):
        return False, None
    bad = check_fields(value, {"classes": ("list", True), "title": ("text", False)})
    if bad:
        return False, bad
    names = value["classes"]
    if not 1 <= len(names) <= 1000 or not all(is_text(n) for n in names):
        return False, "classes"
    return True, None


# -- damaging a file --------------------------------------------------------------------------
def dumps(value) -> bytes:
    text = json.dumps(value)
    for mark, n in DEEP.items():
        text = text.replace(json.dumps(mark), "[" * n + "0" + "]" * n)
    return text.replace(json.dumps(HUGE), '"' + "y" * (3 << 19) + '"').encode()


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


def _parent(root, path):
    node = root
    for key in path[:-1]:
        node = node[key]
    return node


SPECIAL = ("fifo", "folder", "loop", "dangling", "link to pipe", "link to good")


def hostile(base: dict, i: int, fields: tuple = ()) -> tuple[str, object, str] | None:
    """Case ``i`` of the fixed list every surface begins with (each kind of file once,
    then ``fields``: (path, value) pairs of the surface's own); None past its end."""
    first = next(iter(base))
    fixed = [
        *((lambda k=k: (k, None, k)) for k in SPECIAL),
        lambda: ("bytes", dumps("\0DEEP3000"), "3,000 deep"),
        lambda: ("bytes", dumps({**base, first: "\0DEEP40"}), f"{first} nested 40 deep"),
        lambda: ("bytes", dumps({**base, "extra": "\0DEEP10"}), "an extra field 10 deep"),
        lambda: ("bytes", dumps(base) + b" " * MAX_BYTES, "padded past 4 MiB"),
        lambda: ("bytes", dumps(base)[:-3] + b"\xff\xfe}", "not UTF-8"),
        lambda: ("bytes", dumps(base)[: len(dumps(base)) // 2], "cut short"),
        lambda: ("bytes", b"null", "null"),
        lambda: ("bytes", dumps([base]), "a list of it"),
    ]
    if i < len(fixed):
        return fixed[i]()
    if i - len(fixed) >= len(fields):
        return None
    path, v = fields[i - len(fixed)]
    value = json.loads(json.dumps(base))
    _parent(value, path)[path[-1]] = v
    return "bytes", dumps(value), f"{'.'.join(path)} = {_short(v)}"


def damage(rng: random.Random, base: dict) -> tuple[str, object, str]:
    """One damaged file: (kind, bytes or what to put in the file's place, what was done).
    A kind other than "bytes" names a special file (pipe, folder, links)."""
    r = rng.random()
    if r < 0.06:
        kind = rng.choice(SPECIAL)
        return kind, None, kind
    value = json.loads(json.dumps(base))
    if r < 0.62:  # one field changed
        paths = [p for p in _paths(value) if p]
        path = rng.choice(paths)
        parent = _parent(value, path)
        m = rng.random()
        if m < 0.7:
            parent[path[-1]] = rng.choice(SWAPS)
            what = f"{'.'.join(map(str, path))} = {_short(parent[path[-1]])}"
        elif m < 0.8 and isinstance(parent, dict):
            del parent[path[-1]]
            what = f"{'.'.join(map(str, path))} deleted"
        else:
            parent[path[-1]] = [parent[path[-1]]]
            what = f"{'.'.join(map(str, path))} in a list"
        return "bytes", dumps(value), what
    if r < 0.7:  # a field added
        target = rng.choice([p for p in _paths(value) if isinstance(_get(value, p), dict)])
        swap = rng.choice(SWAPS)
        _get(value, target)["extra"] = swap
        return "bytes", dumps(value), f"extra field in {'.'.join(map(str, target)) or 'the file'}"
    if r < 0.76:  # the whole file another value
        swap = rng.choice([[value], *SWAPS])
        return "bytes", dumps(swap), f"the file holds {_short(swap)}"
    blob = dumps(value)
    m = rng.randrange(8)
    if m == 0:
        return "bytes", blob[: rng.randrange(len(blob))], "cut short"
    if m == 1:
        b = bytearray(blob)
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
        return "bytes", bytes(b), f"bit flipped at {i}"
    if m == 2:
        i = rng.randrange(len(blob))
        bad = rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80\x80"])
        return "bytes", blob[:i] + bad + blob[i:], f"not UTF-8 at {i}"
    if m == 3:
        return "bytes", "\ufeff".encode() + blob, "a byte order mark"
    if m == 4:
        return "bytes", blob + b" " * (MAX_BYTES + 1 - len(blob)), "padded past 4 MiB"
    if m == 5:
        return "bytes", blob + b" " * 100_000, "padded 100 kB"
    if m == 6:
        return "bytes", b"", "empty"
    return "bytes", blob + b"\n", "a newline added"


def _get(root, path):
    node = root
    for key in path:
        node = node[key]
    return node


def _short(v) -> str:
    return repr(v)[:40]


def place(path: Path, kind: str, blob, good: bytes) -> None:
    """Put the damaged file (or what stands in its place) at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "bytes":
        path.write_bytes(blob)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    elif kind == "loop":
        os.symlink(path.name, path)
    elif kind == "dangling":
        os.symlink(path.name + ".gone", path)
    elif kind == "link to pipe":
        os.mkfifo(path.with_name(path.name + ".pipe"))
        os.symlink(path.name + ".pipe", path)
    else:  # a link to a good file
        path.with_name(path.name + ".good").write_bytes(good)
        os.symlink(path.name + ".good", path)


def expected_value(kind: str, blob, good: bytes):
    """(True, value) where the file's contents pass the reader, else (False, None)."""
    if kind == "link to good":
        return ref_value(good)
    if kind != "bytes":
        return False, None
    return ref_value(blob)


# -- running ----------------------------------------------------------------------------------
@contextlib.contextmanager
def deadline(seconds: float = TIMEOUT):
    def alarm(*_):
        raise Hang

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def cli(argv: list[str]) -> tuple[int, str, str]:
    """``latent-train`` run here, its output encoded as a terminal's would be (UTF-8,
    strict on stdout): (exit code, stdout, stderr)."""
    from trainer.__main__ import main

    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="backslashreplace")
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
        out.flush()
        err.flush()
    return code, out.buffer.getvalue().decode(), err.buffer.getvalue().decode()


def snapshot(folder: Path) -> dict:
    """Every entry under ``folder``: a regular file's bytes, or what else it is."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = Path(root) / name
            if p.is_symlink():
                out[p] = ("link", os.readlink(p))
            elif p.is_file():
                out[p] = p.read_bytes()
            elif not p.is_dir():
                out[p] = "special"
    return out


def names_it(line: str, path: Path, field: str | None) -> bool:
    """Whether a message line names the file and, if one is at fault, the field."""
    rest = line.replace(str(path), "")
    return str(path) in line and (field is None or re.search(rf"\b{field}\b", rest) is not None)


def notes(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("note: ")]


class Surface:
    """One file the fuzz damages: ``base`` is its good contents; ``case`` runs one damaged
    file through what reads it and returns (outcome, detail)."""

    name = ""
    fields: tuple = ()  # (path, value) pairs each tried once, before the random cases

    def __init__(self, work: Path) -> None:
        self.work = work

    def run(self, i: int, rng: random.Random) -> tuple[str, str]:
        kind, blob, what = hostile(self.base, i, self.fields) or damage(rng, self.base)
        folder = self.work / f"case{i}"
        folder.mkdir()
        try:
            with deadline():
                outcome, detail = self.case(folder, kind, blob)
        except Hang:
            outcome, detail = "hang", ""
        except Exception as e:  # noqa: BLE001 - what the fuzz looks for
            outcome, detail = "traceback", f"{type(e).__name__}: {str(e)[:200]}"
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return outcome, f"case {i} ({what}): {detail}"


# run.json: a project's runs --------------------------------------------------------------
def run_record(rid: str, name: str) -> dict:
    return {
        "id": rid, "name": name, "source": "opened", "checkpoint": f"/nowhere/{name}.safetensors",
        "created": f"2026-01-0{GOOD_IDS.index(rid) + 1 if rid in GOOD_IDS else 3} 10:00:00",
        "data": "shapes (1,200 images)",
        "model": {"model": "vae", "arch": "mlp", "latent_dim": 2, "hidden": 32,
                  "image_shape": [1, 28, 28], "likelihood": "bernoulli", "gaussian_std": None,
                  "num_classes": 0},
        "train": {"epochs": 2, "batch_size": 64, "lr": 0.002, "beta": 1.0, "warmup_epochs": 0.0,
                  "seed": 0, "device": "cpu"},
        "epochs": 2, "steps": 38, "curve": [[1, 120.5], [2, 110.25]],
        "metrics": {"test_nelbo": 110.25, "test_nll_iw": 105.5, "active_units": 2,
                    "iw_samples": 50},
        "film": 0,
    }  # fmt: skip


def _same(a, b) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


class RunFile(Surface):
    name = "run.json"
    base = run_record(FUZZ_ID, "fuzzed")
    fields = (
        (("id",), GOOD_IDS[0]),  # a run's folder copied
        (("created",), 5),
        (("model",), 5),
        (("metrics", "test_nelbo"), "x"),
        (("metrics", "test_nelbo"), True),
        (("name",), "\ud800"),
        (("curve",), [[1, "x"]]),
        (("checkpoint",), "a\0b"),
    )

    def case(self, folder: Path, kind: str, blob) -> tuple[str, str]:
        from trainer.runs import Project, differing, table

        project = folder / "project"
        for rid in GOOD_IDS:
            f = project / "runs" / rid / "run.json"
            f.parent.mkdir(parents=True)
            f.write_text(json.dumps(run_record(rid, f"good {rid[-1]}")))
        target = project / "runs" / FUZZ_ID / "run.json"
        good = dumps(self.base)
        place(target, kind, blob, good)
        ok, value = expected_value(kind, blob, good)
        valid, field = ref_run(value, FUZZ_ID) if ok else (False, None)
        before = snapshot(project)
        p = Project(project)
        recs = p.runs()
        table(recs)
        differing(recs)
        code, out, err = cli(["runs", "--project", str(project)])
        if snapshot(project) != before:
            return "data lost", "listing the runs changed the project's files"
        ids = [r.id for r in recs]
        if not all(g in ids for g in GOOD_IDS) or not all(f"good {g[-1]}" in out for g in GOOD_IDS):
            return "data lost", f"the good runs are not all listed: {ids}"
        if code != 0:
            return "silent wrong", f"latent-train runs ended with {code}: {err[-200:]}"
        listed = [r for r in recs if not (r.id in GOOD_IDS and r.name == f"good {r.id[-1]}")]
        if valid:
            if len(listed) != 1 or p.problems or notes(err):
                return "refused good", f"a good run.json not listed: {p.problems} {err[-200:]}"
            rec = listed[0]
            defaults = {"curve": [], "metrics": {}, "film": 0}
            for k in (
                "id",
                "name",
                "source",
                "checkpoint",
                "created",
                "data",
                "model",
                "train",
                "epochs",
                "steps",
                "curve",
                "metrics",
                "film",
            ):
                if not _same(getattr(rec, k), value.get(k, defaults.get(k))):
                    return "silent wrong", f"{k} is {getattr(rec, k)!r}, not {value.get(k)!r}"
            return "clean", "listed"
        # a listed run of another's folder: what its Remove deletes
        for rec in listed:
            p.remove(rec.id)
        for rid in GOOD_IDS:
            if not (project / "runs" / rid / "run.json").is_file():
                return "data lost", f"removing the damaged run removed {rid}"
        if listed:
            return "silent wrong", f"listed a damaged run.json ({field} at fault)"
        said = [x for x in p.problems if str(target) in x]
        cli_said = notes(err)
        if len(said) != 1 or len(cli_said) != 1 or len(p.problems) != 1:
            return "silent wrong", f"not said once: {p.problems} / {cli_said}"
        if not (names_it(said[0], target, field) and names_it(cli_said[0], target, field)):
            return "silent wrong", f"the message does not name {field}: {said[0][:300]}"
        if "\n" in said[0]:
            return "silent wrong", "a message of more than one line"
        return "clean", "refused"


# metrics.json, evaluation.json: a latent-train --out folder added --------------------------
_CHECKPOINT: dict[str, bytes] = {}


def tiny_checkpoint(data_spec=None) -> bytes:
    """A small trained VAE's checkpoint (8x8 images, 3 classes' worth of data)."""
    key = repr(data_spec)
    if key in _CHECKPOINT:
        return _CHECKPOINT[key]
    import torch

    from trainer.checkpoint import save_checkpoint
    from trainer.config import ModelConfig, TrainConfig
    from trainer.data import ImageData
    from trainer.loop import Trainer
    from trainer.models import build_model

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (24, 1, 8, 8), generator=g).to(torch.uint8)
    y = torch.arange(24) % 3
    data = ImageData("fuzz", x[:16], x[16:], y[:16], y[16:], ["a", "b", "c"])
    mc = ModelConfig(model="vae", latent_dim=2, hidden=8, image_shape=(1, 8, 8))
    tc = TrainConfig(epochs=1, batch_size=8, device="cpu", seed=0)
    torch.manual_seed(0)
    trainer = Trainer(build_model(mc), data, tc, device="cpu")
    trainer.fit(epochs=1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.safetensors"
        save_checkpoint(
            path,
            trainer.model,
            tc,
            data_spec,
            ["a", "b", "c"],
            trainer.history,
            epochs_done=trainer.epochs_done,
            step=trainer.step,
        )
        _CHECKPOINT[key] = path.read_bytes()
    return _CHECKPOINT[key]


def _curve_nelbo(blob: bytes) -> float:
    from trainer.checkpoint import load_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.safetensors"
        path.write_bytes(blob)
        return float(load_checkpoint(path).history.epochs[-1]["test_nelbo"])


class AddedFile(Surface):
    """A file of measured numbers beside a checkpoint that ``runs --add`` adds."""

    within: str | None = None  # the object example.json keeps them in
    other: tuple[str, dict] | None = None  # a good file added beside it

    def case(self, folder: Path, kind: str, blob) -> tuple[str, str]:
        from trainer.runs import Project

        run = folder / "run"
        run.mkdir()
        ck = run / self.checkpoint
        ck.write_bytes(tiny_checkpoint())
        target = run / self.file
        good = dumps(self.base)
        place(target, kind, blob, good)
        kept = {}
        if self.other is not None:
            (run / self.other[0]).write_text(json.dumps(self.other[1]))
            kept = {k: v for k, v in self.other[1].items() if k in MEASURED}
        ok, value = expected_value(kind, blob, good)
        valid, field, numbers = ref_measured(value, self.within) if ok else (False, None, {})
        before = snapshot(run)
        project = folder / "project"
        added = run if self.checkpoint != "model.safetensors" else ck  # a folder, or a file
        code, _out, err = cli(["runs", "--project", str(project), "--add", str(added)])
        if snapshot(run) != before:
            return "data lost", "adding the run changed its files"
        if code != 0:
            return "refused good", f"the run was not added (exit {code}): {err[-300:]}"
        recs = Project(project).runs()
        if len(recs) != 1:
            return "silent wrong", f"{len(recs)} runs after adding one"
        want = {"test_nelbo": _curve_nelbo(tiny_checkpoint())}
        if self.file == "evaluation.json":  # metrics.json first, then the evaluation
            want.update(kept)
            want.update(numbers)
        else:
            want.update(numbers)
            want.update(kept)
        said = notes(err)
        if not _same(recs[0].metrics, want):
            return "silent wrong", f"metrics {recs[0].metrics}, not {want}"
        if valid:
            return ("clean", "added") if not said else ("silent wrong", f"noted {said}")
        if len(said) != 1:
            return "silent wrong", f"not said once: {said}"
        if not names_it(said[0], target, field):
            return "silent wrong", f"the note does not name {field}: {said[0][:300]}"
        return "clean", "added without its numbers"


METRICS = {
    "test_nelbo": 101.5,
    "test_recon": 90.25,
    "test_kl": 11.25,
    "test_nll_iw": 99.75,
    "active_units": 2,
    "iw_samples": 50,
    "checkpoint_step": 4,
    "files": {"checkpoint.safetensors": {"bytes": 1, "sha256": "0" * 64}},
}
EVALUATION = {
    "checkpoint": "/x/checkpoint.safetensors",
    "checkpoint_step": 4,
    "dataset": "shapes",
    "test_nelbo": 102.0,
    "test_recon": 91.0,
    "test_kl": 11.0,
    "kl_per_dim": [5.5, 5.5],
    "active_units": 2,
    "test_nll_iw": 100.5,
    "iw_samples": 100,
}
EXAMPLE_INFO = {
    "name": "mnist-vae-2d",
    "title": "MNIST digits: 2-D VAE",
    "line": "a line",
    "bundle": "mnist",
    "command": "latent-train train --epochs 1",
    "epochs": 1,
    "metrics": {
        "test_images": 2000,
        "test_nelbo": 140.5,
        "test_recon": 130.0,
        "test_kl": 10.5,
        "float16_nelbo_change": 0.0001,
        "active_units": 2,
        "kl_per_dim": [5.0, 5.5],
        "test_nll_iw": 137.25,
        "iw_samples": 1000,
        "seconds_iw": 3.5,
    },
    "model_bytes": 12345,
}


class MetricsFile(AddedFile):
    name, file, checkpoint, base = "metrics.json", "metrics.json", "checkpoint.safetensors", METRICS
    other = ("evaluation.json", {"test_nll_iw": 100.5, "iw_samples": 100})
    fields = ((("test_nelbo",), "x"), (("test_nll_iw",), True), (("active_units",), -1))


class EvaluationFile(AddedFile):
    name, file, checkpoint = "evaluation.json", "evaluation.json", "checkpoint.safetensors"
    base, other = EVALUATION, ("metrics.json", {"test_nelbo": 101.5, "active_units": 2})
    fields = ((("test_nll_iw",), "x"), (("iw_samples",), 2.5))


class ExampleFile(AddedFile):
    name, file, checkpoint = "example.json (runs --add)", "example.json", "model.safetensors"
    base, within = EXAMPLE_INFO, "metrics"
    fields = ((("metrics",), [1]), (("metrics", "test_nelbo"), "x"))


# example.json: the bundled examples listed ------------------------------------------------
class ExampleListing(Surface):
    name, base = "example.json (examples)", EXAMPLE_INFO
    fields = ((("metrics", "test_nelbo"), "x"), (("command",), 5))

    def case(self, folder: Path, kind: str, blob) -> tuple[str, str]:
        ex = folder / "assets" / "examples" / "mnist-vae-2d"
        ex.mkdir(parents=True)
        (ex / "model.safetensors").write_bytes(b"a model")
        target = ex / "example.json"
        good = dumps(self.base)
        place(target, kind, blob, good)
        ok, value = expected_value(kind, blob, good)
        valid, field = ref_example(value) if ok else (False, None)
        before = snapshot(folder)
        old = os.environ.get("LATENT_EXPLORER_ASSETS")
        os.environ["LATENT_EXPLORER_ASSETS"] = str(folder / "assets")
        try:
            code, out, err = cli(["examples"])
        finally:
            if old is None:
                del os.environ["LATENT_EXPLORER_ASSETS"]
            else:
                os.environ["LATENT_EXPLORER_ASSETS"] = old
        if snapshot(folder) != before:
            return "data lost", "listing the examples changed their files"
        if code != 0 or "mnist-vae-2d" not in out:
            return "silent wrong", f"the example is not listed (exit {code}): {err[-300:]}"
        said = notes(err)
        if valid:
            nelbo = value.get("metrics", {}).get("test_nelbo")
            score = f"{nelbo:6.1f}" if isinstance(nelbo, float) else None
            if said or (score is not None and score not in out):
                return "silent wrong", f"listed as {out.strip()!r}, noted {said}"
            return "clean", "listed"
        if len(said) != 1 or not names_it(said[0], target, field):
            return "silent wrong", f"not said once, naming {field}: {said} / {out.strip()!r}"
        return "clean", "listed without its numbers"


# bundle.json: an example's test images, read by evaluate -------------------------------------
def bundle_files(root: Path) -> Path:
    """A bundled test set "fz" of 16 images of 8x8 (3 classes) in ``root``; its folder."""
    import torch

    from trainer.data import ImageData
    from trainer.examples import write_bundle

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (16, 1, 8, 8), generator=g).to(torch.uint8)
    y = torch.arange(16) % 3
    data = ImageData("fz", x[:0], x, y[:0], y, ["a", "b", "c"])
    return write_bundle("fz", data, root)


class BundleFile(Surface):
    name = "bundle.json"
    base = {
        "title": "fz",
        "classes": ["a", "b", "c"],
        "images": 16,
        "origin": "made here",
        "licence": "none",
    }
    fields = ((("classes",), "abc"), (("title",), 5), (("classes",), [1, 2, 3]))

    def case(self, folder: Path, kind: str, blob) -> tuple[str, str]:
        from trainer.data import EXAMPLE, DataSpec

        root = folder / "assets" / "examples"
        data = bundle_files(root)
        target = data / "bundle.json"
        target.unlink()
        good = dumps(self.base)
        place(target, kind, blob, good)
        ok, value = expected_value(kind, blob, good)
        valid, field = ref_bundle(value) if ok else (False, None)
        # a model named as the example's (in its folder): its data is the bundle
        model = folder / "model.safetensors"
        model.write_bytes(tiny_checkpoint(DataSpec(source=EXAMPLE, bundle="fz")))
        before = snapshot(root)
        old = os.environ.get("LATENT_EXPLORER_ASSETS")
        os.environ["LATENT_EXPLORER_ASSETS"] = str(folder / "assets")
        try:
            code, _out, err = cli(
                [
                    "evaluate",
                    "--checkpoint",
                    str(model),
                    "--iw-samples",
                    "2",
                    "--device",
                    "cpu",
                    "--out",
                    str(folder / "e.json"),
                ]
            )
        finally:
            if old is None:
                del os.environ["LATENT_EXPLORER_ASSETS"]
            else:
                os.environ["LATENT_EXPLORER_ASSETS"] = old
        if snapshot(root) != before:
            return "data lost", "evaluating changed the bundled files"
        errors = [x for x in err.splitlines() if x.startswith("latent-train: error:")]
        fits = valid and len(value["classes"]) >= 3  # the labels are 0..2
        if fits:
            if code != 0 or not (folder / "e.json").is_file():
                return "refused good", f"a good bundle.json refused: {err[-300:]}"
            return "clean", "evaluated"
        if code == 0:
            return "silent wrong", f"evaluated on a damaged bundle.json ({field} at fault)"
        if code != 2 or len(errors) != 1 or "Traceback" in err:
            return "silent wrong", f"not one line and exit 2 (exit {code}): {err[-300:]}"
        if valid:  # too few classes for the labels: the labels' file says so
            return "clean", "refused (labels)"
        if not names_it(errors[0], target, field):
            return "silent wrong", f"the error does not name {field}: {errors[0][:300]}"
        return "clean", "refused"


SURFACES = (RunFile, MetricsFile, EvaluationFile, ExampleFile, ExampleListing, BundleFile)


def run_fuzz(work: Path, surface, cases: int | None = None, seed: int = SEED):
    s = surface(work)
    # once with its good file, untimed: the imports and the small checkpoints the cases
    # share take seconds on a busy machine (an import cut short by the alarm would break
    # every case after it)
    folder = work / "warm-up"
    folder.mkdir()
    s.case(folder, "bytes", dumps(s.base))
    shutil.rmtree(folder)
    rng = random.Random(f"{seed}/{s.name}")
    return [s.run(i, rng) for i in range(cases if cases is not None else CASES[s.name])]


def tally(results) -> dict[str, int]:
    counts = Counter(outcome for outcome, _ in results)
    return {"cases": len(results), **{k: counts[k] for k in OUTCOMES}}


needs_posix = pytest.mark.skipif(
    not (hasattr(signal, "setitimer") and hasattr(os, "mkfifo")),
    reason="needs SIGALRM for its hang guard, and named pipes",
)


@needs_posix
@pytest.mark.parametrize("surface", SURFACES, ids=[s.name for s in SURFACES])
def test_damaged_json_files_are_read_right_or_said_in_one_line(tmp_path, surface):
    results = run_fuzz(tmp_path, surface)
    bad = [(o, d) for o, d in results if o != "clean"]
    assert not bad, f"{len(bad)} of {len(results)} bad, e.g. {bad[:5]}"
    details = Counter(d.split(": ", 1)[1].split(" (", 1)[0] for _o, d in results)
    # the fuzz is of no use unless it both reads good files and refuses damaged ones
    refused = sum(
        n
        for d, n in details.items()
        if d.startswith(("refused", "added without", "listed without"))
    )
    assert refused >= len(results) // 5 and len(results) - refused >= len(results) // 10, details


if __name__ == "__main__":
    import torch

    torch.set_num_threads(2)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for surface in SURFACES:
            work = Path(tmp) / surface.__name__
            work.mkdir()
            results = run_fuzz(work, surface)
            rows[surface.name] = tally(results)
            for o, d in results:
                if o != "clean" and "-v" in sys.argv:
                    print(f"  {o}: {d}", file=sys.stderr)
    names = list(rows)
    print("| outcome | " + " | ".join(names) + " | all |")
    print("|---|" + "---:|" * (len(names) + 1))
    for key in ("cases", *OUTCOMES):
        vals = [rows[n][key] for n in names]
        print(f"| {key} | " + " | ".join(map(str, vals)) + f" | {sum(vals)} |")
