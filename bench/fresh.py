"""Running a piece of code as a fresh Python would, for the benchmarks that time one."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys


def python(
    code: str, args: list[str] = (), env: dict[str, str] | None = None, here: bool = False
) -> str:
    """What ``code`` prints, run with ``args`` as its ``sys.argv[1:]`` in a fresh Python;
    with ``here``, in this process instead (``--smoke``: it spares starting a Python and
    importing torch again, and only checks that the code runs). Exits with its error."""
    if not here:
        out = subprocess.run(
            [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True
        )
        if out.returncode:
            sys.exit(out.stderr)
        return out.stdout
    argv, environ = sys.argv, dict(os.environ)
    sys.argv = ["-c", *args]
    os.environ.update(env or {})
    try:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            exec(compile(code, "<bench>", "exec"), {"__name__": "__main__"})
        return buf.getvalue()
    finally:
        sys.argv = argv
        os.environ.clear()
        os.environ.update(environ)
