"""A seeded hostile-command-line test of ``latent-train``: every command line it draws
either runs as asked or is refused with exit code 2 and one line on stderr naming the
option at fault; never a traceback, a hang, an option silently ignored or an input changed.

The command lines, drawn with a fixed seed over every command:

- an option that does not apply: a data option the source does not read (``train`` with
  each source or none, ``evaluate`` with ``--dataset`` or with its checkpoint's source), the
  KL options for a plain autoencoder, ``--dims`` with ``--plane pca``, ``examples``' rebuild
  options without ``--rebuild``, a data option for a command without data;
- a number option given what is no number it takes: nan, inf, -inf, 1e400, a huge or a
  negative whole number, a fraction for a whole number, words, nothing;
- ``evaluate`` of a checkpoint with IDX files of its own, given images without labels or
  labels without images (a conditional model and a plain one);
- the same command lines with options that do apply and numbers in range, which must run.

Data loading is stubbed: a command that reaches it has accepted its command line (a run).
Each case ends clean (refused as it should, or run as it should), or it is a fault: refused
a good line, an unclear refusal (exit code 2 without one line naming the option), a
traceback, a hang, silent wrong (an option ignored: the command ran or exited 0), or data lost
(an input is not what it was). ``python tests/trainer/test_cli_fuzz.py`` prints the tally,
with the thread variables (OMP_NUM_THREADS, MKL_NUM_THREADS) tried in fresh processes too,
where a crash (a signal) can be seen.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import random
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

if __name__ == "__main__":  # run as a script: this checkout's packages, not an installed copy
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np
import torch

SEED = 20261124
CASES = 400
TIMEOUT = 30.0  # seconds a case may take before it counts as a hang
OUTCOMES = (
    "clean",
    "refused a good line",
    "unclear refusal",
    "traceback",
    "hang",
    "crash",
    "silent wrong",
    "data lost",
)
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

# which data options each source reads: the rule, written out here independently of the code
TAKES = {
    "mnist": (),
    "fashion-mnist": (),
    "kmnist": (),
    "shapes": ("--image-size", "--shapes-count", "--test-fraction"),
    "idx": ("--images", "--labels", "--test-fraction"),
    "folder": ("--root", "--image-size", "--background", "--test-fraction"),
}
SOURCES = tuple(TAKES)
DATA_OPTIONS = (
    "--images",
    "--labels",
    "--root",
    "--image-size",
    "--shapes-count",
    "--background",
    "--test-fraction",
)


# -- the setting ------------------------------------------------------------------------------
def _write_idx(images: Path, labels: Path, seed: int, n: int = 64, side: int = 8) -> None:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, side, side), dtype=np.uint8)
    images.write_bytes(
        gzip.compress(struct.pack(">BBBB3I", 0, 0, 8, 3, n, side, side) + x.tobytes())
    )
    y = (np.arange(n) % 4).astype(np.uint8)
    labels.write_bytes(gzip.compress(struct.pack(">BBBBI", 0, 0, 8, 1, n) + y.tobytes()))


@dataclass
class Setting:
    folder: Path
    files: dict  # name -> path: images, labels, images2, labels2, root, cvae, vae

    def __getitem__(self, name: str) -> str:
        return str(self.files[name])


def _setting(folder: Path) -> Setting:
    """IDX images and labels (two pairs), an image folder, and two checkpoints: a 2-D
    conditional VAE trained on the first IDX pair, a 2-D VAE trained on 8x8 shapes."""
    from PIL import Image

    from trainer.__main__ import main

    f = {}
    for k in ("", "2"):
        f[f"images{k}"], f[f"labels{k}"] = folder / f"images{k}.gz", folder / f"labels{k}.gz"
        _write_idx(f[f"images{k}"], f[f"labels{k}"], seed=len(k))
    f["root"] = folder / "pictures"
    for c in ("a", "b"):
        (f["root"] / c).mkdir(parents=True)
        for i in range(3):
            Image.new("L", (8, 8), 40 * i).save(f["root"] / c / f"{i}.png")
    runs = {
        "cvae": [
            "--dataset",
            "idx",
            "--images",
            f["images"],
            "--labels",
            f["labels"],
            "--model",
            "cvae",
        ],
        "vae": ["--dataset", "shapes", "--shapes-count", "100", "--image-size", "8"],
    }
    for name, data in runs.items():
        out = folder / f"run-{name}"
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            assert main(["train", *map(str, data), *TINY, "--out", str(out)]) == 0
        f[name] = out / "checkpoint.safetensors"
    return Setting(folder, f)


# -- the command lines ------------------------------------------------------------------------
@dataclass
class Case:
    kind: str
    argv: list[str]  # "{out}" stands for the case's own output
    fault: str | None  # the option the refusal must name; None: a good command line
    outcome: str = ""
    detail: str = ""


def _files(s: Setting, source: str | None, rng: random.Random) -> list[str]:
    """The options a source needs: its files."""
    if source == "idx":
        return [
            "--images",
            s["images2"],
            *(["--labels", s["labels2"]] if rng.random() < 0.7 else []),
        ]
    if source == "folder":
        return ["--root", s["root"]]
    return []


def _value(option: str, s: Setting) -> list[str]:
    """A good value for a data option."""
    return [
        option,
        {
            "--images": s["images2"],
            "--labels": s["labels2"],
            "--root": s["root"],
            "--image-size": "16",
            "--shapes-count": "100",
            "--background": "black",
            "--test-fraction": "0.25",
        }[option],
    ]


def _dataset(source: str | None) -> list[str]:
    return ["--dataset", source] if source else []


def _train_inapplicable(s: Setting, rng: random.Random) -> Case:
    source = rng.choice((None, *SOURCES))
    base = _files(s, source, rng)
    option = rng.choice([o for o in DATA_OPTIONS if o not in base])
    fault = None if option in TAKES[source or "mnist"] else option
    argv = ["train", *_dataset(source), *base, *_value(option, s), *TINY, "--out", "{out}"]
    return Case("option that does not apply", argv, fault)


def _evaluate_data(s: Setting, rng: random.Random) -> Case:
    """``evaluate`` with data options: the checkpoint's source or another, and one more
    option; or IDX files, the images, the labels or both."""
    ck = rng.choice(("cvae", "vae"))
    own = "idx" if ck == "cvae" else "shapes"
    mix = rng.random() < 0.3
    if mix:
        source = rng.choice((None, "idx"))
        base = rng.choice((_value("--images", s), _value("--labels", s)))
    else:
        source = rng.choice((None, None, *SOURCES))
        base = _files(s, source, rng)
    extra = [o for o in DATA_OPTIONS if o not in base]
    given = [o for o in base if o.startswith("--")]
    if not mix and rng.random() < 0.8:
        option = rng.choice(extra)
        given.append(option)
        base += _value(option, s)
    argv = [
        "evaluate",
        "--checkpoint",
        s[ck],
        *_dataset(source),
        *base,
        "--iw-samples",
        "2",
        "--limit",
        "8",
        "--device",
        "cpu",
        "--out",
        "{out}.json",
    ]
    effective = source or own
    fault = next((o for o in DATA_OPTIONS if o in given and o not in TAKES[effective]), None)
    kind = "option that does not apply"
    if fault is None and effective == "idx" and ("--images" in given or "--labels" in given):
        kind = "images and labels of two sources"
        if "--labels" in given and "--images" not in given:
            fault = "--labels" if own == "idx" else "--images"  # (--dataset idx needs --images)
        elif "--images" in given and "--labels" not in given and ck == "cvae":
            fault = "--labels"
    return Case(kind, argv, fault)


# number options: (command, option, kind, a good value); kind "int", "float" or "z" (any sign)
NUMBERS = [
    ("train", "--latent-dim", "int", "2"), ("train", "--hidden", "int", "16"),
    ("train", "--gaussian-std", "float", "0.5"), ("train", "--epochs", "int", "1"),
    ("train", "--batch-size", "int", "32"), ("train", "--lr", "float", "0.01"),
    ("train", "--beta", "float", "2"), ("train", "--warmup-epochs", "float", "0.5"),
    ("train", "--seed", "int", "3"), ("train", "--data-memory", "float", "64"),
    ("train", "--threads", "int", "1"), ("train", "--film-memory", "float", "16"),
    ("train", "--film-fps", "float", "12"), ("train", "--film-size", "int", "160"),
    ("train", "--image-size", "int", "16"), ("train", "--test-fraction", "float", "0.3"),
    ("train", "--shapes-count", "int", "100"),
    ("evaluate", "--iw-samples", "int", "2"), ("evaluate", "--prior-samples", "int", "3"),
    ("evaluate", "--limit", "int", "8"), ("evaluate", "--seed", "int", "1"),
    ("evaluate", "--test-fraction", "float", "0.3"),
    ("evaluate", "--image-size", "int", "8"), ("evaluate", "--shapes-count", "int", "50"),
    ("sample", "--n", "int", "4"), ("sample", "--nrow", "int", "2"),
    ("sample", "--seed", "int", "2"), ("sample", "--scale", "int", "1"),
    ("manifold", "--n", "int", "3"), ("manifold", "--dims", "int", "1"),
    ("manifold", "--scale", "int", "1"),
    ("traverse", "--columns", "int", "9"), ("traverse", "--kl-images", "int", "0"),
    ("traverse", "--scale", "int", "1"), ("traverse", "--z", "z", "-1.5"),
    ("posterior", "--dims", "int", "1"), ("posterior", "--scale", "int", "1"),
    ("arithmetic", "--a", "int", "3"), ("arithmetic", "--scale", "int", "1"),
    ("examples", "--epochs", "int", "1"), ("examples", "--iw-samples", "int", "2"),
    ("map", "--limit", "int", "50"), ("map", "--seed", "int", "1"),
]  # fmt: skip
HOSTILE = {
    "int": ("nan", "inf", "-inf", "1e400", "2.5", "-1", str(2**70), "ten", "", "0x10", "1e3"),
    "float": (
        "nan",
        "inf",
        "-inf",
        "1e400",
        "-1e400",
        "-1",
        "1e300",
        "NaN",
        "Infinity",
        "",
        "half",
        "1,5",
    ),
    "z": ("nan", "inf", "-inf", "1e400", "-1e400", "1e300", "-1e300", "NaN", "", "zero"),
}


def _base(command: str, s: Setting) -> list[str]:
    """A good command line for ``command``."""
    ck = ["--checkpoint", s["vae"]]
    return {
        "train": ["train", "--dataset", "shapes", *TINY, "--out", "{out}"],
        "evaluate": ["evaluate", *ck, "--iw-samples", "2", "--limit", "8", "--device", "cpu",
                     "--out", "{out}.json"],
        "sample": ["sample", *ck, "--n", "4", "--out", "{out}.png"],
        "manifold": ["manifold", *ck, "--n", "3", "--out", "{out}.png"],
        "traverse": ["traverse", *ck, "--kl-images", "0", "--columns", "7", "--out", "{out}.png"],
        "posterior": ["posterior", *ck, "--out", "{out}.png"],
        "arithmetic": ["arithmetic", *ck, "--a", "0", "--b", "1", "--c", "2", "--out",
                       "{out}.png"],
        "examples": ["examples", "--rebuild", "--into", "{out}"],
        "map": ["map", *ck, "--method", "pca", "--limit", "60", "--out", "{out}.png"],
    }[command]  # fmt: skip


def _with(argv: list[str], option: str, values: list[str]) -> list[str]:
    """``argv`` with ``option`` given ``values`` (replacing it if there), and what it needs."""
    if option in argv:
        i = argv.index(option)
        argv = argv[:i] + argv[i + 2 :]
    film = ["--film", "{out}.gif"]
    needs = {
        "--gaussian-std": ["--likelihood", "gaussian"],
        "--film-memory": film,
        "--film-fps": film,
        "--film-size": film,
    }
    return [*argv, *needs.get(option, []), option, *values]


def _number(s: Setting, rng: random.Random) -> Case:
    z = [n for n in NUMBERS if n[1] == "--z"]
    command, option, kind, good = rng.choice(z if rng.random() < 0.15 else NUMBERS)
    bad = rng.choice(HOSTILE[kind])
    count = 2 if option in ("--dims", "--z") else 1
    values = [good] * count
    values[rng.randrange(count)] = bad
    return Case("number it cannot take", _with(_base(command, s), option, values), option)


def _good_number(s: Setting, rng: random.Random) -> Case:
    command, option, kind, good = rng.choice([n for n in NUMBERS if n[0] != "examples"])
    values = ["0", "1"] if option == "--dims" else ["-1.5", "2.5"] if option == "--z" else [good]
    return Case("good line", _with(_base(command, s), option, values), None)


def _other_inapplicable(s: Setting, rng: random.Random) -> Case:
    pick = rng.randrange(5)
    if pick == 0:
        model = rng.choice(("vae", "cvae", "ae"))
        option, value = rng.choice((("--beta", "2"), ("--warmup-epochs", "1")))
        argv = _with(_base("train", s), "--model", [model]) + [option, value]
        return Case("option that does not apply", argv, option if model == "ae" else None)
    if pick in (1, 2):
        command = "manifold" if pick == 1 else "posterior"
        plane = rng.choice(("dims", "pca"))
        argv = [*_base(command, s), "--plane", plane, "--dims", "1", "0"]
        return Case("option that does not apply", argv, "--dims" if plane == "pca" else None)
    if pick == 3:
        option, value = rng.choice((("--iw-samples", "5"), ("--epochs", "2"), ("--only", "x")))
        return Case("option that does not apply", ["examples", option, value], option)
    command = rng.choice(("sample", "manifold", "traverse", "posterior", "arithmetic"))
    option = rng.choice(DATA_OPTIONS)  # a command without data options
    return Case("option that does not apply", [*_base(command, s), *_value(option, s)], option)


def draw(s: Setting, n: int = CASES, seed: int = SEED) -> list[Case]:
    rng = random.Random(seed)
    makers = [
        (_train_inapplicable, 25),
        (_evaluate_data, 25),
        (_number, 35),
        (_other_inapplicable, 8),
        (_good_number, 10),
    ]
    makers_, weights = zip(*makers, strict=True)
    return [rng.choices(makers_, weights)[0](s, rng) for _ in range(n)]


# -- a case -----------------------------------------------------------------------------------
class _Reached(Exception):
    """Data loading was reached: the command accepted its command line."""


class _Hang(Exception):
    pass


def _on_alarm(signum, frame):
    raise _Hang


def _fingerprint(s: Setting) -> dict:
    """What the inputs hold (every file of the setting but the runs' outputs)."""
    found = {}
    for p in sorted(s.folder.rglob("*")):
        if p.is_file() and not p.is_relative_to(s.folder / "cases"):
            found[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return found


def _run_case(case: Case, s: Setting, case_dir: Path) -> None:
    import trainer.data
    from trainer.__main__ import main

    case_dir.mkdir(parents=True)
    argv = [a.replace("{out}", str(case_dir / "out")) for a in case.argv]
    before = _fingerprint(s)
    err, reached, code = io.StringIO(), False, None
    real, threads = trainer.data.load_data, torch.get_num_threads()

    def stub(spec, progress=None):
        raise _Reached

    trainer.data.load_data = stub
    guard = hasattr(signal, "setitimer")
    try:
        if guard:
            signal.setitimer(signal.ITIMER_REAL, TIMEOUT)
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = main(argv)
        finally:
            if guard:
                signal.setitimer(signal.ITIMER_REAL, 0)
    except _Reached:
        reached = True
    except SystemExit as e:
        code = e.code
    except _Hang:
        case.outcome, case.detail = "hang", f"over {TIMEOUT:.0f} s"
        return
    except BaseException as e:  # noqa: BLE001 (any other is a traceback)
        case.outcome, case.detail = "traceback", f"{type(e).__name__}: {e}"[:200]
        return
    finally:
        trainer.data.load_data = real
        torch.set_num_threads(threads)
    if _fingerprint(s) != before:
        case.outcome, case.detail = "data lost", "an input changed"
        return
    _judge(case, code, reached, err.getvalue())


def _judge(case: Case, code, reached: bool, err: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    ran = reached or code == 0
    if "Traceback" in err:
        case.outcome, case.detail = "traceback", err[-200:]
    elif case.fault is None:
        case.outcome = "clean" if ran else "refused a good line"
        case.detail = "" if ran else f"exit {code}: {err.strip()[-200:]}"
    elif ran:
        case.outcome, case.detail = "silent wrong", f"{case.fault} ignored"
    elif (
        code == 2
        and len(lines) == 1
        and lines[0].startswith("latent-train: error:")
        and case.fault in lines[0]
    ):
        case.outcome, case.detail = "clean", lines[0]
    else:
        case.outcome, case.detail = "unclear refusal", f"exit {code}: {err.strip()[-200:]}"


def run_fuzz(folder: Path, n: int = CASES, seed: int = SEED) -> list[Case]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    old = signal.signal(signal.SIGALRM, _on_alarm) if hasattr(signal, "SIGALRM") else None
    try:
        s = _setting(folder)
        cases = draw(s, n, seed)
        for i, case in enumerate(cases):
            _run_case(case, s, folder / "cases" / f"c{i}")
    finally:
        if hasattr(signal, "SIGALRM"):
            signal.signal(signal.SIGALRM, old)
        torch.set_num_threads(threads)
    return cases


# -- thread variables, in fresh processes -----------------------------------------------------
ENVIRONMENTS = [
    ("OMP_NUM_THREADS", "99999"),
    ("OMP_NUM_THREADS", "9" * 40),
    ("MKL_NUM_THREADS", "99999"),
    ("OMP_NUM_THREADS", "lots"),
    ("OMP_NUM_THREADS", "0"),
]


def run_environment(name: str, value: str, folder: Path, root: Path) -> Case:
    """``latent-train train`` with ``name=value``: it must train (exit 0) and say on stderr
    what it did with the variable."""
    case = Case("thread variable", [f"{name}={value}", "train"], name)
    env = dict(os.environ, **{name: value}, PYTHONPATH=str(root))
    argv = [
        sys.executable,
        "-m",
        "trainer",
        "train",
        "--dataset",
        "shapes",
        "--shapes-count",
        "100",
        "--image-size",
        "8",
        "--epochs",
        "1",
        "--hidden",
        "16",
        "--latent-dim",
        "2",
        "--device",
        "cpu",
        "--out",
        str(folder),
    ]
    try:
        r = subprocess.run(argv, env=env, cwd=root, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        case.outcome, case.detail = "hang", "over 300 s"
        return case
    if r.returncode < 0:
        case.outcome = "crash"
        case.detail = f"signal {signal.Signals(-r.returncode).name}"
    elif "Traceback" in r.stderr:
        case.outcome, case.detail = "traceback", r.stderr[-200:]
    elif r.returncode != 0:
        case.outcome, case.detail = "refused a good line", r.stderr[-200:]
    elif name not in r.stderr:
        case.outcome, case.detail = "silent wrong", f"{name}={value[:12]} not mentioned"
    else:
        said = [ln for ln in r.stderr.splitlines() if name in ln]
        case.outcome, case.detail = "clean", said[0][:200]
    return case


def tally(cases: list[Case]) -> str:
    kinds = sorted({c.kind for c in cases})
    head = ["cases", *OUTCOMES]
    rows = [("all", cases), *((k, [c for c in cases if c.kind == k]) for k in kinds)]
    w = max(len(r[0]) for r in rows)
    lines = [f"{'':{w}}" + "".join(f"  {h}" for h in head)]
    for name, group in rows:
        counts = Counter(c.outcome for c in group)
        cells = [len(group), *(counts[o] for o in OUTCOMES)]
        lines.append(f"{name:{w}}" + "".join(f"  {v:>{len(h)}}" for v, h in zip(cells, head)))
    return "\n".join(lines)


def test_every_command_line_runs_as_asked_or_is_refused_naming_the_option(tmp_path):
    """QA: options that do not apply were ignored (--images with shapes, --image-size with
    IDX), evaluate took a checkpoint's labels for other images, traverse --z nan exited 0."""
    t = time.perf_counter()
    cases = run_fuzz(tmp_path)
    seconds = time.perf_counter() - t
    bad = [c for c in cases if c.outcome != "clean"]
    report = (
        tally(cases)
        + f"\n{seconds:.1f} s\n"
        + "\n".join(f"{c.outcome}: {' '.join(c.argv)[:160]}: {c.detail}" for c in bad[:15])
    )
    assert not bad, report
    assert len(cases) == CASES
    kinds = Counter(c.kind for c in cases)
    assert min(kinds.values()) >= 20, report  # every kind is tried, often
    commands = {c.argv[0] for c in cases}
    assert commands >= {
        "train",
        "evaluate",
        "sample",
        "manifold",
        "traverse",
        "posterior",
        "arithmetic",
        "examples",
    }, report
    assert sum(c.fault is None for c in cases) >= 80, report  # good lines, which must run


if __name__ == "__main__":
    root = Path(__file__).resolve().parents[2]
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        cases = run_fuzz(Path(d))
        cases += [
            run_environment(k, v, Path(d) / f"env{i}", root)
            for i, (k, v) in enumerate(ENVIRONMENTS)
        ]
        print(tally(cases))
        print(f"{time.perf_counter() - t:.1f} s")
        for c in cases:
            if c.outcome != "clean":
                print(f"{c.outcome}: {c.kind}: {' '.join(c.argv)[:200]}: {c.detail}")
    sys.exit(0)
