"""Shared test setup. Qt must run headless and never touch the user's settings, so both
are arranged here, before any test module imports Qt."""

import os
import sys
import tempfile
from pathlib import Path

# pytest puts tests/ on sys.path for this file; tests/trainer and tests/explorer would then
# shadow the real packages as namespace packages. The repository root must come first.
_ROOT = str(Path(__file__).resolve().parents[1])
if sys.path[:1] != [_ROOT]:
    sys.path.insert(0, _ROOT)

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# QSettings (and anything else following XDG) writes under a throw-away folder
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="latent-explorer-test-config-")
os.environ.setdefault("LATENT_EXPLORER_DATA", tempfile.mkdtemp(prefix="latent-explorer-test-data-"))
