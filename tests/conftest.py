"""Shared test setup. Qt must run headless and never touch the user's settings, so both
are arranged here, before any test module imports Qt."""

import os
import sys
import tempfile
from pathlib import Path

import pytest

# pytest puts tests/ on sys.path for this file; tests/trainer and tests/explorer would then
# shadow the real packages as namespace packages. The repository root must come first.
_ROOT = str(Path(__file__).resolve().parents[1])
if sys.path[:1] != [_ROOT]:
    sys.path.insert(0, _ROOT)

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# QSettings, recovery files (and anything else following XDG) go to throw-away folders
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="latent-explorer-test-config-")
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="latent-explorer-test-share-")
os.environ.setdefault("LATENT_EXPLORER_DATA", tempfile.mkdtemp(prefix="latent-explorer-test-data-"))


@pytest.fixture(scope="session")
def _empty_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("empty")


@pytest.fixture(scope="session")
def program_env(tmp_path_factory):
    """The environment for tests that run whole programs in fresh interpreters: ours, with
    one bytecode cache they share (where PYTHONDONTWRITEBYTECODE is set, each would compile
    torch's modules again: seconds each)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(tmp_path_factory.mktemp("pycache"))
    return env


@pytest.fixture(autouse=True)
def _bare_machine(_empty_dir, monkeypatch):
    """Every test sees a machine without Debian's Fashion-MNIST, whatever is installed here;
    a test that wants it builds its own files and points DEBIAN_FASHION at them."""
    import trainer.data.downloads

    monkeypatch.setattr(trainer.data.downloads, "DEBIAN_FASHION", _empty_dir)


def pytest_sessionfinish(session, exitstatus):
    """A worker thread that outlived its window (a test closed it mid-load) gets time to
    end; Python's teardown must not destroy it while it runs (Qt would abort the run)."""
    worker = sys.modules.get("explorer.worker")
    if worker is not None and worker.leftover_threads():
        worker.wind_down(int(exitstatus), timeout_ms=60000)
