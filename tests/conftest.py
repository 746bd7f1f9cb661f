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

# Under pytest-xdist (`-n 2`), each worker trains on cores of its own: two workers whose torch
# threads all spin on every core lose far more than they gain. Set before torch is imported, so
# its thread pool (and trainer.loop.threads.usable_cores) sees only the worker's cores.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if _WORKER.startswith("gw") and hasattr(os, "sched_setaffinity"):
    _cores = sorted(os.sched_getaffinity(0))
    _n, _i = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")), int(_WORKER[2:])
    os.sched_setaffinity(0, _cores[_i::_n] if _n <= len(_cores) else [_cores[_i % len(_cores)]])
# QSettings, recovery files (and anything else following XDG) go to throw-away folders
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="latent-explorer-test-config-")
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="latent-explorer-test-share-")
# The data folder (downloads, decoded caches): the one given, else a throw-away one per
# process (pytest-xdist's workers inherit the first process's environment: each makes its own).
if os.environ.get("LATENT_EXPLORER_DATA") in (None, os.environ.get("_LATENT_EXPLORER_TEST_DATA")):
    os.environ["LATENT_EXPLORER_DATA"] = tempfile.mkdtemp(prefix="latent-explorer-test-data-")
    os.environ["_LATENT_EXPLORER_TEST_DATA"] = os.environ["LATENT_EXPLORER_DATA"]


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
