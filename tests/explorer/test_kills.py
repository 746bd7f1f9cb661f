"""Kill -9 at any moment never leaves a broken checkpoint or recovery file."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from PySide6.QtCore import QSettings

from explorer.recovery import orphans
from trainer.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[2]

WRITER = """
import sys
from trainer.checkpoint import save_trainer
from trainer.config import TrainConfig
from trainer.data import DataSpec, load_data
from trainer.loop import Trainer, model_config_for
from trainer.models import build_model

data = load_data(DataSpec("shapes", shapes_count=300))
t = Trainer(build_model(model_config_for(data, latent_dim=8, hidden=600)), data,
            TrainConfig(epochs=1, device="cpu"))
t.fit()
print("ready", flush=True)
while True:  # the same atomic write every autosave and every save makes
    save_trainer(sys.argv[1], t, None, data.class_names)
"""


def test_a_kill_during_checkpoint_writes_leaves_the_old_or_the_new_file(tmp_path):
    path = tmp_path / "ck.safetensors"
    rng = random.Random(0)
    for trial in range(4):
        p = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        assert p.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.6))  # somewhere in a write, or between two
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
        assert load_checkpoint(path).epochs_done == 1, f"trial {trial}"
    leftovers = [f for f in tmp_path.iterdir() if f.name != "ck.safetensors"]
    assert all(f.name.endswith(".tmp") for f in leftovers)  # never mistaken for a checkpoint


def test_a_killed_window_leaves_its_model_for_the_next_one(qtbot, make_window, tmp_path):
    """kill -9 during training: the next launch offers the autosaved model."""
    share = tmp_path / "share"
    ini = tmp_path / "s.ini"
    s = QSettings(str(ini), QSettings.IniFormat)
    s.setValue("train/shapes_count", 1000)
    s.sync()
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_DATA_HOME=str(share))
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "explorer",
            "--settings",
            str(ini),
            "--dataset",
            "shapes",
            "--epochs",
            "100000",
            "--train",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    folder = share / "latent-explorer" / "recovery"
    t0 = time.perf_counter()
    while not list(folder.glob("recovery-*.safetensors")) and time.perf_counter() - t0 < 120:
        assert p.poll() is None, p.stderr.read()[-2000:]
        time.sleep(0.2)
    time.sleep(random.Random(1).uniform(0.0, 1.0))
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    found = orphans(folder)
    assert len(found) == 1 and load_checkpoint(found[0]).epochs_done >= 1
    win = make_window(recovery=folder)
    qtbot.waitUntil(lambda: win.banner.topic == "recovery", timeout=5000)
    [b for b in win.banner.action_buttons if b.text() == "Open it"][0].click()
    qtbot.waitUntil(lambda: not win.busy, timeout=20000)
    assert win.session.epochs_done >= 1 and win.session.unsaved
    assert not orphans(folder)  # it is this window's now


def test_autosave_keeps_to_its_interval(qapp, tmp_path, monkeypatch):
    """At the first epoch's end, at the last snapshot, and between them no more often than
    ``autosave_every`` (tiny epochs would otherwise write the file many times a second)."""
    from explorer.worker import TrainingWorker, TrainJob
    from trainer.config import TrainConfig
    from trainer.data import DataSpec
    from trainer.loop import TrainControl

    saves = []
    monkeypatch.setattr(TrainingWorker, "_save", lambda self, tr, path: saves.append(tr.step))
    job = TrainJob(
        data_spec=DataSpec("shapes", shapes_count=200),
        model_kwargs={"latent_dim": 2},
        train_config=TrainConfig(epochs=6, batch_size=64, device="cpu"),
        autosave=tmp_path / "r.safetensors",
        autosave_every=1000.0,
    )
    TrainingWorker(job, TrainControl()).run()  # on this thread: no need for another
    steps_per_epoch = 3  # 160 training images, batch 64
    assert saves == [steps_per_epoch, 6 * steps_per_epoch]  # first epoch, last snapshot
