"""``latent-train runs``: the runs kept in a project folder, side by side, and the settings
that differ between them; ``--add`` brings in runs trained elsewhere."""

from __future__ import annotations

import sys
from pathlib import Path

from ._checks import UserError, check_path


def add_options(r) -> None:
    r.add_argument(
        "--project", metavar="DIR", help="the project folder (default: the window's default)"
    )
    r.add_argument(
        "--add",
        nargs="+",
        metavar="PATH",
        help="add latent-train --out folders or checkpoint files as runs",
    )


def run(args) -> int:
    from ..files import printable
    from ..runs import HEADERS, Project, RunsError, differing, table

    project = Project(args.project)
    for path in args.add or []:
        check_path("--add", path)
        p = Path(path)
        try:
            rec = project.add_folder(p) if p.is_dir() else project.add_file(p)
        except RunsError as e:
            raise UserError(str(e)) from None
        for note in project.notes:  # a metrics file that could not be used
            print(f"note: {note}", file=sys.stderr)
        print(f"added {printable(rec.name)} ({rec.id})", file=sys.stderr)
    runs = project.runs()
    for problem in project.problems:
        print(f"note: {problem}", file=sys.stderr)
    if not runs:
        print(f"no runs in {project.folder} yet", file=sys.stderr)
        return 0
    rows = [HEADERS, *table(runs)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS))]
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    diff = differing(runs)
    if diff:
        print(
            printable(
                "settings that differ: "
                + "; ".join(f"{k} " + " / ".join(map(str, v)) for k, v in diff.items())
            )
        )
    return 0
