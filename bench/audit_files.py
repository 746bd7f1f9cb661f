"""The fault audit of checkpoints and outputs: the seeded fuzz surfaces of the test suite
(tests/trainer/test_checkpoint_fuzz.py, test_output_fuzz.py) run against this tree's engine
and, with --commit, against an older one, as a table of faults.

    python bench/audit_files.py                 # this tree
    python bench/audit_files.py --commit 83aec09 # that commit's trainer/ beside this tree's

Each surface runs in its own process, so that a crash (a signal, a hard exit) is counted as
one, not lost. Columns: cases; clean (loaded right, written right, or refused with the
engine's own error); traceback (any other exception); hang; crash; silent wrong (a
checkpoint loaded with other values than were written, or unusable; an output said to be
written that is not where it was asked); data lost (a device, pipe, socket, link or input
replaced); refused good (a good file or path refused, loud but wrong).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests" / "trainer"
COLUMNS = (
    "cases",
    "clean",
    "traceback",
    "hang",
    "crash",
    "silent wrong",
    "data lost",
    "refused good",
)
SURFACES = {  # module: {its outcome: a column}
    "test_checkpoint_fuzz": {
        "loaded": "clean",
        "refused": "clean",
        "refused valid": "refused good",
        "other exception": "traceback",
        "hang": "hang",
        "silent wrong": "silent wrong",
    },
    "test_output_fuzz": {
        "clean": "clean",
        "refused a good path": "refused good",
        "traceback": "traceback",
        "hang": "hang",
        "silent wrong": "silent wrong",
        "data lost": "data lost",
    },
}
TITLES = {"test_checkpoint_fuzz": "checkpoints (2)", "test_output_fuzz": "outputs (1)"}

CHILD = """
import json, sys, tempfile, collections
from pathlib import Path
sys.path[:0] = [{engine!r}, {tests!r}]
import trainer
assert trainer.__file__.startswith({engine!r}), trainer.__file__
module = __import__({module!r})
with tempfile.TemporaryDirectory() as d:
    cases = module.run_fuzz(Path(d))
out = collections.Counter(c.outcome for c in cases)
by = collections.defaultdict(collections.Counter)
for c in cases:
    by[getattr(c, "category", None) or getattr(c, "surface", "")][c.outcome] += 1
print("RESULT " + json.dumps({{"all": out, "by": by}}))
"""


def run_surface(engine: Path, module: str, timeout: float) -> dict:
    """The outcome counts of one fuzz surface against the engine in ``engine``."""
    code = CHILD.format(engine=str(engine), tests=str(TESTS), module=module)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONDONTWRITEBYTECODE="1")
    try:
        p = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=tempfile.gettempdir(),
        )
    except subprocess.TimeoutExpired:
        return {"hang": 1}
    line = next((x for x in p.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        sys.stderr.write(p.stderr[-2000:])
        return {"crash": 1}
    return json.loads(line[len("RESULT ") :])


def row(counts: dict, module: str) -> dict:
    out = dict.fromkeys(COLUMNS, 0)
    for outcome, n in counts.items():
        column = outcome if outcome in ("crash", "hang") else SURFACES[module][outcome]
        out[column] += n
    out["cases"] = sum(counts.values())
    return out


def table(rows: list[tuple[str, dict]]) -> str:
    head = "| surface | " + " | ".join(COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 1)]
    for name, r in rows:
        lines.append(f"| {name} | " + " | ".join(str(r[c]) for c in COLUMNS) + " |")
    return "\n".join(lines)


def engine_of(commit: str, into: Path) -> Path:
    """``commit``'s trainer/ package, unpacked into ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit, "trainer"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--commit", help="also audit this commit's engine (before)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per surface")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        engines = [("this tree", ROOT)]
        if args.commit:
            engines.insert(0, (args.commit, engine_of(args.commit, Path(d))))
        for title, engine in engines:
            rows = []
            total = dict.fromkeys(COLUMNS, 0)
            for module in SURFACES:
                result = run_surface(engine, module, args.timeout)
                counts = result.get("all", result)
                r = row(counts, module)
                rows.append((TITLES[module], r))
                for k in COLUMNS:
                    total[k] += r[k]
                for part, c in sorted(result.get("by", {}).items()):
                    rows.append((f"  {part}", row(c, module)))
            rows.append(("all", total))
            print(f"\n{title}\n")
            print(table(rows))


if __name__ == "__main__":
    main()
