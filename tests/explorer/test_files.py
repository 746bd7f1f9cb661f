"""Keep and share: exports, checkpoints, settings, first launch and the command line."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from explorer_helpers import SHAPES, train
from PIL import Image
from PySide6.QtCore import QSettings

import explorer.window as app_mod
from explorer.widgets.views import EXPORT_MIN_SIDE, PAD
from trainer.loop import bf16_problem


@pytest.fixture
def trained(qtbot, window):
    train(qtbot, window, epochs=1)
    return window


@pytest.mark.parametrize("name", ["manifold", "samples", "reconstructions", "interpolation"])
def test_export_png_has_the_expected_pixel_size(qtbot, trained, tmp_path, name):
    """Exports are magnified by the smallest whole number that makes the longer side
    at least EXPORT_MIN_SIDE (600) pixels, so that a 28-pixel grid is usable on a slide."""
    win = trained
    view = win.views[name]
    view.refresh(force=True)
    path = tmp_path / f"{name}.png"
    assert win.export_view(name, path)
    n, _c, h, w = view.images.shape
    ncol = view.ncol
    nrow = -(-n // ncol)
    base = (ncol * (w + PAD) + PAD, nrow * (h + PAD) + PAD)  # the grid at 1x
    with Image.open(path) as im:
        size = im.size
    scale = size[0] // base[0]
    assert size == (scale * base[0], scale * base[1])
    assert max(size) >= EXPORT_MIN_SIDE
    assert scale == 1 or (scale - 1) * max(base) < EXPORT_MIN_SIDE  # no bigger than needed
    assert "Saved" in win.banner.text


def test_export_manifold_size_follows_n(qtbot, trained, tmp_path):
    trained.grid_n.setValue(7)
    assert trained.export_view("manifold", tmp_path / "m.png")
    with Image.open(tmp_path / "m.png") as im:
        assert im.size == (3 * (7 * (28 + PAD) + PAD),) * 2  # 212 px at 1x: saved at 3x
    trained.grid_n.setValue(30)
    assert trained.export_view("manifold", tmp_path / "m30.png")
    with Image.open(tmp_path / "m30.png") as im:
        assert im.size == (30 * (28 + PAD) + PAD,) * 2  # 902 px: already big enough


def test_export_class_row_for_cvae(qtbot, window, tmp_path):
    train(qtbot, window, epochs=1, model="cvae")
    assert window.export_view("class row", tmp_path / "row.png")
    with Image.open(tmp_path / "row.png") as im:
        # 152 x 32 at 1x, QA found it too small for slides: now 4x, every pixel a 4x4 block
        assert im.size == (4 * (5 * (28 + PAD) + PAD), 4 * (28 + 2 * PAD))
        a = np.asarray(im.convert("L")).astype(int)
    blocks = a.reshape(a.shape[0] // 4, 4, a.shape[1] // 4, 4)
    assert (blocks == blocks[:, :1, :, :1]).all()
    assert a.std() > 5  # real images, not padding only


def test_export_gif_and_csv(qtbot, trained, tmp_path):
    win = trained
    win.interp.steps.setValue(5)
    assert win.export_gif(tmp_path / "walk.gif")
    with Image.open(tmp_path / "walk.gif") as im:
        assert im.format == "GIF" and im.n_frames >= 5
    assert win.export_csv(tmp_path / "h.csv")
    rows = list(csv.DictReader(open(tmp_path / "h.csv")))
    assert len(rows) >= len(win.session.history.steps)
    assert any(r["test_nelbo"] for r in rows)


def test_export_to_unwritable_place_shows_message(qtbot, trained, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert not trained.export_view("manifold", blocker / "sub" / "m.png")
    assert trained.banner.level == "error" and "m.png" in trained.banner.text


def test_checkpoint_round_trip_and_continue(qtbot, make_window, settings_path, tmp_path):
    win = make_window()
    win.panel.latent.setValue(3)
    train(qtbot, win, epochs=1)
    path = win.save_checkpoint(tmp_path / "model")
    assert path == tmp_path / "model.safetensors" and path.exists()
    weights = {k: v.clone() for k, v in win.session.model.state_dict().items()}
    n_steps = len(win.session.history.steps)

    other = tmp_path / "other.ini"
    s = QSettings(str(other), QSettings.IniFormat)
    s.setValue("train/source", "shapes")
    s.setValue("train/shapes_count", 200)
    s.sync()
    win2 = make_window(other)
    assert win2.open_checkpoint(path), win2.banner.history
    for k, v in win2.session.model.state_dict().items():
        torch.testing.assert_close(v, weights[k])
    assert win2.panel.latent.value() == 3
    assert len(win2.session.history.steps) == n_steps
    assert win2.plots.point_count() == len(win2.session.history.steps)
    # the checkpoint's data (1000 shapes) is loaded again, then training continues from it
    qtbot.waitUntil(lambda: not win2.busy and len(win2.session.data.train_x) > 200, timeout=20000)
    assert win2.session.epochs_done == 1
    win2.panel.more_epochs.setValue(1)
    assert win2.start_training(resume=True)
    qtbot.waitUntil(lambda: bool(win2.run.outcomes) and not win2.busy, timeout=30000)
    assert win2.run.outcomes[-1].error is None and win2.session.epochs_done == 2


def test_a_checkpoints_precision_and_data_memory_are_kept_to_continue_it(
    qtbot, window, tmp_path, monkeypatch
):
    """Opening a run trained in bf16 with --data-memory (which has no field in the panel)
    keeps both for its next run; opening another run resets them."""
    import explorer.widgets.train_panel as panel_mod
    from trainer.checkpoint import save_checkpoint

    monkeypatch.setattr(panel_mod, "bf16_problem", lambda device: None)  # a bf16 machine
    from trainer.config import ModelConfig, TrainConfig
    from trainer.data import DataSpec
    from trainer.models import build_model

    spec = DataSpec("shapes", shapes_count=200)
    model = build_model(ModelConfig(latent_dim=2, hidden=16))
    tc = TrainConfig(epochs=1, precision="bf16", data_memory=0.5)
    special = save_checkpoint(tmp_path / "bf16.safetensors", model, tc, data_spec=spec)
    plain = save_checkpoint(tmp_path / "fp32.safetensors", model, TrainConfig(), data_spec=spec)
    assert window.open_checkpoint(special), window.banner.history
    got = window.panel.train_config()
    assert (got.precision, got.data_memory) == ("bf16", 0.5)
    assert window.panel.precision.currentText() == "bfloat16 (mixed)"
    qtbot.waitUntil(lambda: not window.busy, timeout=20000)  # its data has arrived
    assert window.open_checkpoint(plain), window.banner.history
    got = window.panel.train_config()
    assert (got.precision, got.data_memory) == ("fp32", None)


def test_bfloat16_is_offered_only_where_the_device_has_it(window, monkeypatch, tmp_path):
    import explorer.widgets.train_panel as panel_mod

    panel = window.panel
    item = panel.precision.model().item(panel.precision.findData("bf16"))
    monkeypatch.setattr(panel_mod, "bf16_problem", lambda device: None)
    panel._device_changed()
    panel.precision.setCurrentIndex(panel.precision.findData("bf16"))
    assert item.isEnabled() and panel.train_config().precision == "bf16"
    s = QSettings(str(tmp_path / "panel.ini"), QSettings.IniFormat)
    panel.save_settings(s)
    monkeypatch.setattr(panel_mod, "bf16_problem", lambda device: "this CPU has none")
    panel._device_changed()  # another device chosen: greyed out, float32 chosen, and why
    assert not item.isEnabled() and panel.train_config().precision == "fp32"
    assert "Not here: this CPU has none." in panel.precision.toolTip()
    panel.load_settings(s)  # remembered as bf16, but not on this machine
    assert panel.train_config().precision == "fp32"
    monkeypatch.setattr(panel_mod, "bf16_problem", lambda device: None)
    panel.load_settings(s)
    assert panel.train_config().precision == "bf16"


@pytest.mark.skipif(
    bf16_problem(torch.device("cpu")) is not None, reason="this CPU has no bfloat16 instructions"
)
def test_a_bf16_streamed_run_continued_in_the_window_says_how_it_trained(qtbot, window, tmp_path):
    from trainer.checkpoint import save_checkpoint
    from trainer.config import ModelConfig, TrainConfig
    from trainer.data import DataSpec
    from trainer.models import build_model

    spec = DataSpec("shapes", shapes_count=300)
    model = build_model(ModelConfig(latent_dim=2, hidden=16))
    tc = TrainConfig(epochs=1, precision="bf16", data_memory=0)
    path = save_checkpoint(tmp_path / "bf16.safetensors", model, tc, data_spec=spec)
    assert window.open_checkpoint(path), window.banner.history
    qtbot.waitUntil(lambda: not window.busy, timeout=20000)
    window.panel.more_epochs.setValue(1)
    assert window.start_training(resume=True)
    qtbot.waitUntil(lambda: bool(window.run.outcomes) and not window.busy, timeout=30000)
    fit = window.run.outcomes[-1].fit
    assert fit.bf16 and fit.streamed
    assert " on cpu in bfloat16, its batches streamed to it (" in window.status_run.text()


@pytest.mark.parametrize(
    "content, words",
    [(b"not a checkpoint at all", "not a"), (b"", "not a checkpoint"), (None, "no such file")],
)
def test_bad_checkpoint_shows_message_and_app_stays_usable(qtbot, window, tmp_path, content, words):
    win = window
    path = tmp_path / "broken.safetensors"
    if content is not None:
        path.write_bytes(content)
    model_before = win.session.model
    assert not win.open_checkpoint(path)
    assert win.banner.isVisible() and win.banner.level == "error"
    assert "broken.safetensors" in win.banner.text and words in win.banner.text
    assert win.session.model is model_before
    # still usable: the sliders still drive the image and training still starts
    before = win.preview.array.copy()
    win.sliders.set_value(0, 1.0)
    assert not np.allclose(before, win.preview.array)
    train(qtbot, win, epochs=1)
    assert win.run.outcomes[-1].error is None


def test_settings_persist_between_runs(qtbot, make_window, settings_path):
    win = make_window()
    win.panel.latent.setValue(5)
    win.panel.lr.setText("0.002")
    win.panel.model.setCurrentIndex(win.panel.model.findData("cvae"))
    win.grid_n.setValue(13)
    win.tabs.setCurrentIndex(2)
    win.plots.log_box.setChecked(True)
    win.resize(1400, 860)
    win.close()
    win2 = make_window()
    assert win2.panel.latent.value() == 5
    assert win2.panel.lr.text() == "0.002"
    assert win2.panel.model.currentData() == "cvae"
    assert win2.panel.source.currentData() == "shapes"
    assert win2.grid_n.value() == 13
    assert win2.tabs.currentIndex() == 2
    assert win2.plots.log_box.isChecked()
    # the offscreen screen is small, so Qt clamps the size itself; the geometry is stored
    stored = QSettings(str(settings_path), QSettings.IniFormat).value("window/geometry")
    assert stored is not None and len(bytes(stored)) > 0


def _remembered_mnist(tmp_path) -> Path:
    """Settings that chose MNIST on a machine that has not downloaded it (the first launch
    itself opens a bundled example: tests/explorer/test_examples.py)."""
    path = tmp_path / "mnist.ini"
    s = QSettings(str(path), QSettings.IniFormat)
    s.setValue("train/shapes_count", SHAPES)
    s.setValue("train/source", "mnist")
    s.sync()
    return path


def test_remembered_mnist_offline_falls_back_and_says_so_once(
    qtbot, make_window, tmp_path, monkeypatch
):
    monkeypatch.setattr(app_mod, "is_cached", lambda source: False)
    monkeypatch.setattr(app_mod, "debian_fashion_available", lambda: False)
    win = make_window(_remembered_mnist(tmp_path))
    assert win.panel.source.currentData() == "shapes"
    infos = [t for lvl, t in win.banner.history if "MNIST" in t]
    assert len(infos) == 1 and "internet" in infos[0]
    assert win.session.data is not None and win.session.data.name == "shapes"
    assert win.panel.start_btn.isEnabled(), (win.run.state, win.banner.history)


def test_offline_fallback_prefers_installed_fashion_mnist(
    qtbot, make_window, tmp_path, monkeypatch
):
    monkeypatch.setattr(app_mod, "is_cached", lambda source: source != "mnist")
    monkeypatch.setattr(app_mod, "debian_fashion_available", lambda: True)
    monkeypatch.setattr(app_mod.RunController, "load_data", lambda self, *a, **k: True)
    win = make_window(_remembered_mnist(tmp_path), wait_data=False)
    assert win.panel.source.currentData() == "fashion-mnist"
    assert "Fashion-MNIST" in win.banner.text


def test_download_failure_message_speaks_of_the_window(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    from explorer.worker import message_for_window
    from trainer.data import DataError, DataSpec, load_data

    def offline(*a, **k):
        raise RuntimeError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(tvd, "MNIST", offline)
    monkeypatch.setenv("LATENT_EXPLORER_DATA", str(tmp_path))
    with pytest.raises(DataError) as e:
        load_data(DataSpec("mnist"))
    assert "--dataset shapes" in str(e.value)  # the command line keeps its flags
    msg = message_for_window(e.value)
    assert "--dataset" not in msg and "Shapes (built in)" in msg and "could not download" in msg


def _run_cli(args, tmp_path, timeout=120):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path / "cfg"))
    return subprocess.run(
        [sys.executable, "-m", "explorer", "--settings", str(tmp_path / "s.ini"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=Path(__file__).resolve().parents[2],
    )


def test_screenshot_flag_writes_a_png(tmp_path):
    shot = tmp_path / "shot.png"
    r = _run_cli(["--screenshot", str(shot), "--dataset", "shapes", "--size", "1200x800"], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    with Image.open(shot) as im:
        assert im.size == (1200, 800)
        # a real render, not a blank image
        assert np.asarray(im.convert("L")).std() > 10


def test_quit_after_exits(tmp_path):
    r = _run_cli(["--quit-after", "300", "--dataset", "shapes"], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "s.ini").exists()  # settings were written on the way out
