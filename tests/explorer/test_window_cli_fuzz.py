"""A seeded hostile-command-line test of ``latent-explorer``: every command line it draws
either opens the window as asked or is refused, before any window, with exit code 2 and one
line on stderr naming the option at fault.

The command lines, drawn with a fixed seed: the data options (``--images``, ``--labels``,
``--root``) with each source or none (the window would load its remembered data and ignore
them), with or without a checkpoint; IDX labels without their images; every number option
(``--quit-after``, ``--latent``, ``--epochs``, ``--tab``, ``--grid``, ``--size``) given what is
no number it takes; and good command lines, which must open the window.

The window is a stand-in that records what the command line set on it: a command line that
opens it has been accepted (and its IDX images must come with their own labels or none, not
the remembered ones). ``python tests/explorer/test_window_cli_fuzz.py`` prints the tally, with
OMP_NUM_THREADS tried in fresh processes too (a window that trains, where a crash can be seen).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

if __name__ == "__main__":  # run as a script: this checkout's packages, not an installed copy
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

SEED = 20261125
CASES = 300
TIMEOUT = 30.0
OUTCOMES = (
    "clean",
    "refused a good line",
    "unclear refusal",
    "traceback",
    "hang",
    "crash",
    "silent wrong",
)
TAKES = {
    "mnist": (),
    "fashion-mnist": (),
    "kmnist": (),
    "shapes": (),
    "idx": ("--images", "--labels"),
    "folder": ("--root",),
}  # the window's data options
DATA_OPTIONS = ("--images", "--labels", "--root")
VALUES = {"--images": "images.gz", "--labels": "labels.gz", "--root": "pictures"}
NUMBERS = {
    "--quit-after": "5000",
    "--latent": "2",
    "--epochs": "3",
    "--tab": "4",
    "--grid": "12",
    "--size": "1200x800",
}
HOSTILE = (
    "nan",
    "inf",
    "-inf",
    "1e400",
    "2.5",
    "-1",
    str(2**70),
    str(2**40),
    "ten",
    "",
    "0x10",
    "1e3",
)
HOSTILE_SIZE = (
    "0x0",
    "nanxnan",
    "infx800",
    "99999999x800",
    "1480x920x3",
    "",
    "axb",
    "-1x-1",
    "1e3x1e3",
    "16385x500",
    "800",
)


@dataclass
class Case:
    kind: str
    argv: list[str]
    fault: str | None
    outcome: str = ""
    detail: str = ""


def _data(rng: random.Random) -> Case:
    source = rng.choice(
        (None, None, "mnist", "fashion-mnist", "kmnist", "shapes", "idx", "idx", "folder")
    )
    given = [o for o in DATA_OPTIONS if rng.random() < 0.4]
    if rng.random() < 0.15:  # IDX labels without their images
        source, given = "idx", ["--labels"]
    checkpoint = ["model.safetensors"] if rng.random() < 0.3 else []
    argv = [*checkpoint, *(["--dataset", source] if source else [])]
    for o in given:
        argv += [o, VALUES[o]]
    if rng.random() < 0.3:
        argv.append("--train")
    takes = TAKES[source] if source else ()
    fault = next((o for o in given if o not in takes), None)
    kind = "option that does not apply"
    if fault is None and "--labels" in given and "--images" not in given:
        fault, kind = "--labels", "labels without their images"
    return Case(kind, argv, fault)


def _number(pair: tuple[str, str]) -> Case:
    option, bad = pair
    return Case("number it cannot take", ["--dataset", "shapes", option, bad], option)


def _good(rng: random.Random) -> Case:
    argv = ["--dataset", rng.choice(("shapes", "idx", "folder"))]
    if argv[1] == "idx":
        argv += ["--images", VALUES["--images"]]
        argv += ["--labels", VALUES["--labels"]] if rng.random() < 0.5 else []
    elif argv[1] == "folder":
        argv += ["--root", VALUES["--root"]]
    for option, good in NUMBERS.items():
        if rng.random() < 0.4:
            argv += [option, good]
    return Case("good line", argv, None)


def draw(n: int = CASES, seed: int = SEED) -> list[Case]:
    """Data and good command lines drawn at random; the numbers' (option, value) pairs each
    in turn, in a shuffled order."""
    rng = random.Random(seed)
    pairs = [(o, v) for o in NUMBERS for v in (HOSTILE_SIZE if o == "--size" else HOSTILE)]
    rng.shuffle(pairs)
    numbers = itertools.cycle(pairs)
    cases = []
    for _ in range(n):
        kind = rng.choices(("data", "number", "good"), (50, 35, 15))[0]
        cases.append(
            _data(rng)
            if kind == "data"
            else _good(rng)
            if kind == "good"
            else _number(next(numbers))
        )
    return cases


# -- a case -----------------------------------------------------------------------------------
class _Opened(Exception):
    """The window was built and started: the command line was accepted."""


class _Hang(Exception):
    pass


def _on_alarm(signum, frame):
    raise _Hang


def _run_case(case: Case, folder: Path) -> None:
    import explorer.window as window_mod
    from explorer import app

    argv = [a if a not in VALUES.values() else str(folder / a) for a in case.argv]
    windows: list[mock.MagicMock] = []

    def window(*args, **kwargs):
        windows.append(mock.MagicMock(name="window"))
        return windows[-1]

    real_start = app.start

    def start(*args, **kwargs):
        real_start(*args, **kwargs)
        raise _Opened

    err, code, opened = io.StringIO(), None, False
    patches = [
        mock.patch.object(window_mod, "MainWindow", window),
        mock.patch.object(app, "make_splash", mock.MagicMock()),
        mock.patch.object(app.theme, "apply", lambda qapp: None),  # (restyles every widget)
        mock.patch.object(app, "start", start),
    ]
    guard = hasattr(signal, "setitimer")
    try:
        with contextlib.ExitStack() as stack:
            for p in patches:
                stack.enter_context(p)
            if guard:
                signal.setitimer(signal.ITIMER_REAL, TIMEOUT)
            try:
                with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                    code = app.main(argv)
            finally:
                if guard:
                    signal.setitimer(signal.ITIMER_REAL, 0)
    except _Opened:
        opened = True
    except SystemExit as e:
        code = e.code
    except _Hang:
        case.outcome, case.detail = "hang", f"over {TIMEOUT:.0f} s"
        return
    except BaseException as e:  # noqa: BLE001 (any other is a traceback)
        case.outcome, case.detail = "traceback", f"{type(e).__name__}: {e}"[:200]
        return
    _judge(case, code, opened, err.getvalue(), windows[-1] if windows else None, argv)


def _judge(case: Case, code, opened: bool, err: str, win, argv: list[str]) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    if case.fault is None:
        if not opened:
            case.outcome, case.detail = "refused a good line", f"exit {code}: {err[-200:]}"
        elif "--images" in argv and "--labels" not in argv and not _cleared(win):
            case.outcome, case.detail = "silent wrong", "the remembered labels were kept"
        else:
            case.outcome = "clean"
    elif opened:
        case.outcome, case.detail = "silent wrong", f"{case.fault} ignored"
    elif (
        code == 2
        and len(lines) == 1
        and lines[0].startswith("latent-explorer: error:")
        and case.fault in lines[0]
    ):
        case.outcome, case.detail = "clean", lines[0]
    else:
        case.outcome, case.detail = "unclear refusal", f"exit {code}: {err.strip()[-200:]}"


def _cleared(win) -> bool:
    """Whether the labels field was emptied (IDX images given without labels)."""
    return any(c.args == ("",) for c in win.panel.labels.setText.call_args_list)


def run_fuzz(folder: Path, n: int = CASES, seed: int = SEED) -> list[Case]:
    old = signal.signal(signal.SIGALRM, _on_alarm) if hasattr(signal, "SIGALRM") else None
    try:
        cases = draw(n, seed)
        for case in cases:
            _run_case(case, folder)
    finally:
        if hasattr(signal, "SIGALRM"):
            signal.signal(signal.SIGALRM, old)
    return cases


def run_environment(name: str, value: str, folder: Path, root: Path) -> Case:
    """The window trains one epoch on the shapes and exits (--screenshot) with ``name=value``:
    it must not crash, and must say what it did with the variable."""
    case = Case("thread variable", [f"{name}={value}", "--train"], name)
    env = dict(
        os.environ,
        **{name: value},
        PYTHONPATH=str(root),
        QT_QPA_PLATFORM="offscreen",
        XDG_CONFIG_HOME=str(folder / "config"),
    )
    argv = [
        sys.executable,
        "-m",
        "explorer",
        "--settings",
        str(folder / "s.ini"),
        "--no-restore",
        "--dataset",
        "shapes",
        "--epochs",
        "1",
        "--train",
        "--screenshot",
        str(folder / "shot.png"),
    ]
    try:
        r = subprocess.run(argv, env=env, cwd=root, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        case.outcome, case.detail = "hang", "over 300 s"
        return case
    if r.returncode < 0:
        case.outcome, case.detail = "crash", f"signal {signal.Signals(-r.returncode).name}"
    elif "Traceback" in r.stderr:
        case.outcome, case.detail = "traceback", r.stderr[-200:]
    elif r.returncode != 0:
        case.outcome, case.detail = "refused a good line", r.stderr[-200:]
    elif name not in r.stderr:
        case.outcome, case.detail = "silent wrong", f"{name}={value[:12]} not mentioned"
    else:
        case.outcome = "clean"
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


def test_every_window_command_line_opens_as_asked_or_is_refused_naming_the_option(tmp_path):
    """QA: --images with --dataset shapes (or with no --dataset) was ignored, --labels was
    paired with remembered images, --quit-after 2**40 ended in a traceback."""
    cases = run_fuzz(tmp_path)
    bad = [c for c in cases if c.outcome != "clean"]
    report = (
        tally(cases)
        + "\n"
        + "\n".join(f"{c.outcome}: {' '.join(c.argv)}: {c.detail}" for c in bad[:15])
    )
    assert not bad, report
    kinds = Counter(c.kind for c in cases)
    assert len(kinds) == 4 and min(kinds.values()) >= 15, report
    assert sum(c.fault is None for c in cases) >= 60, report


if __name__ == "__main__":
    root = Path(__file__).resolve().parents[2]
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        cases = run_fuzz(Path(d))
        cases += [
            run_environment(k, v, Path(d) / f"env{i}", root)
            for i, (k, v) in enumerate(
                [("OMP_NUM_THREADS", "99999"), ("OMP_NUM_THREADS", "9" * 40)]
            )
        ]
        print(tally(cases))
        print(f"{time.perf_counter() - t:.1f} s")
        for c in cases:
            if c.outcome != "clean":
                print(f"{c.outcome}: {c.kind}: {' '.join(c.argv)[:200]}: {c.detail}")
    sys.exit(0)
