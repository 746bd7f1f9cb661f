"""Closing the window at any moment ends the process cleanly and quickly.

Qt aborts a process whose running QThread is destroyed ("QThread: Destroyed while thread is
still running", exit 134). These tests close windows while data loads and in the first
second of a run, with a busy thread beside them, in a child process whose exit code is the
verdict.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CLOSER = r"""
import json, random, sys, threading, time
import numpy as np
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication
from explorer import theme
from explorer.window import MainWindow
from explorer.worker import leftover_threads, wind_down

ini, rounds, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
app = QApplication([])
theme.apply(app)
busy = threading.Event()

def spin():  # a busy neighbour: numpy work on another thread, all the time
    a = np.random.default_rng(0).random((300, 300))
    while not busy.is_set():
        a = np.tanh(a @ a.T / 300.0)
        sum(range(20000))  # and some pure Python, which holds the GIL

threading.Thread(target=spin, daemon=True).start()
rng = random.Random(seed)

def pump(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.005)

results = []
for i in range(rounds):
    case = ("loading", "train")[i % 2]
    s = QSettings(ini, QSettings.IniFormat)
    s.setValue("train/source", "shapes")
    s.setValue("train/shapes_count", 200000 if case == "loading" else 6000)
    s.setValue("train/epochs", 3)
    s.sync()
    win = MainWindow(QSettings(ini, QSettings.IniFormat))
    win.ask_on_close = False
    win.show()
    if case == "train":
        t0 = time.perf_counter()
        while win.busy and time.perf_counter() - t0 < 60:
            pump(0.02)
        win.start_training()
        wait = 0.0 if i % 4 == 1 else rng.uniform(0.0, 1.0)  # at once: while it is set up
    else:
        wait = rng.uniform(0.0, 1.0)
    pump(wait)
    state = win.run.state.value
    t0 = time.perf_counter()
    win.close()
    closed = time.perf_counter() - t0
    win.deleteLater()
    app.processEvents()
    results.append({"case": case, "after": round(wait, 3), "state": state,
                    "close_s": round(closed, 3), "left": leftover_threads()})
print(json.dumps(results), flush=True)
busy.set()
sys.exit(wind_down(0, 0))
"""


def _run_closer(tmp_path: Path, rounds: int, seed: int) -> tuple[list[dict], str]:
    env = dict(
        os.environ,
        QT_QPA_PLATFORM="offscreen",
        XDG_DATA_HOME=str(tmp_path / "share"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        OMP_NUM_THREADS="1",
    )
    p = subprocess.run(
        [sys.executable, "-c", CLOSER, str(tmp_path / "s.ini"), str(rounds), str(seed)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert p.returncode == 0, f"exit {p.returncode}: {p.stderr[-2000:]}"
    assert "Destroyed while thread" not in p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1]), p.stderr


def test_closing_during_loading_and_the_first_second_of_a_run_exits_cleanly(tmp_path):
    rounds = int(os.environ.get("CLOSE_ROUNDS", 12))
    results, _ = _run_closer(tmp_path, rounds=rounds, seed=7)
    print(json.dumps(results, indent=0))
    assert len(results) == rounds
    states = {(r["case"], r["state"]) for r in results}
    assert {("loading", "loading"), ("train", "preparing"), ("train", "training")} <= states
    assert all(r["left"] == 0 for r in results), "a worker outlived its window"
    slow = [r for r in results if r["close_s"] > 2.5]
    assert not slow, f"closing took longer than 2 s (+ slack): {slow}"


@pytest.mark.parametrize("quit_after", [1500])
def test_the_app_quits_cleanly_while_a_large_dataset_loads(tmp_path, quit_after):
    """The report's repro: 300,000 shapes still being made when the window closes."""
    ini = tmp_path / "s.ini"
    ini.write_text("[train]\nsource=shapes\nshapes_count=300000\n")
    env = dict(
        os.environ,
        QT_QPA_PLATFORM="offscreen",
        XDG_DATA_HOME=str(tmp_path / "share"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        HOME=str(tmp_path),
    )
    t0 = time.perf_counter()
    p = subprocess.run(
        [sys.executable, "-m", "explorer", "--settings", str(ini), "--quit-after", str(quit_after)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    took = time.perf_counter() - t0
    assert p.returncode == 0, p.stderr[-2000:]
    assert "Destroyed while thread" not in p.stderr
    assert took < 60
    # what the user keeps was written before the process ended: the settings
    assert "shapes_count=300000" in ini.read_text()


def test_stop_while_a_run_is_set_up_ends_it_before_its_first_step(qtbot, window, monkeypatch):
    """Stop during set-up: no 'finished' run of 0 epochs, the model the window had stays."""
    import explorer.worker as worker_mod

    real = worker_mod.model_config_for

    def slow(*args, **kwargs):  # a set-up step that takes a while (a big model, a slow disk)
        time.sleep(0.5)
        return real(*args, **kwargs)

    monkeypatch.setattr(worker_mod, "model_config_for", slow)
    model_before = window.session.model
    assert window.start_training()
    assert window.run.state.value == "preparing"
    window.run.stop()
    qtbot.waitUntil(lambda: not window.busy, timeout=20000)
    assert window.run.outcomes[-1].kind == "cancelled"
    assert window.run.state.value == "ready"
    assert window.run.status.detail == "Stopped before the first step."
    assert window.session.model is model_before and window.session.step == 0
