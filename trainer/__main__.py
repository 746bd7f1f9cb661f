"""``python -m trainer``: the ``latent-train`` command line (see :mod:`trainer.cli`)."""

from __future__ import annotations

import os
import sys

from trainer.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
