"""The bundled examples in the window: a first launch opens the MNIST 2-D VAE, File ▸
Examples lists and opens every one, and an example's file is never written."""

from __future__ import annotations

import numpy as np
import pytest
from explorer_helpers import SHAPES, train
from PySide6.QtCore import QSettings, Qt

import explorer.window as app_mod
from trainer import examples as ex
from trainer.data import EXAMPLE


def _fresh(tmp_path):
    """Settings with nothing remembered (the shapes count only keeps a later Train quick)."""
    path = tmp_path / "fresh.ini"
    QSettings(str(path), QSettings.IniFormat).setValue("train/shapes_count", SHAPES)
    return path


def test_first_launch_opens_the_mnist_example_offline(qtbot, make_window, tmp_path, monkeypatch):
    monkeypatch.setattr(app_mod, "is_cached", lambda source: False)  # no MNIST, no network
    monkeypatch.setattr(app_mod, "debian_fashion_available", lambda: False)
    win = make_window(_fresh(tmp_path))
    s = win.session
    assert s.example and s.source == ex.example_path(ex.FIRST)
    assert s.data_spec.source == EXAMPLE and len(s.data.test_x) == 2000
    assert s.data.class_names == [str(d) for d in range(10)]
    assert s.epochs_done == 50 and len(s.history.epochs) == 50  # the curves are there
    assert not s.unsaved  # nothing to ask about on quit
    # the latent map shows the coloured test digits
    qtbot.waitUntil(
        lambda: s.test_latents is not None and len(s.test_latents) == 2000, timeout=10000
    )
    assert len(set(s.test_labels.tolist())) == 10
    spread = s.test_latents.std(0)
    assert (spread > 0.3).all()  # an organised plane, not a collapsed blob
    # the manifold shows digits: dark background, bright strokes, cells that differ
    win.manifold.refresh(force=True)
    grid = win.manifold.images
    assert grid.shape[0] == win.grid_n.value() ** 2
    assert grid.mean() < 0.3 and grid.max() > 0.9 and grid.std(0).mean() > 0.05
    # the data to train on stays a real, offline choice, and the data line says so
    assert win.panel.source.currentData() == "shapes"
    text = win.panel.data_info.text()
    assert "bundled" in text and "the built-in shapes" in text and "from scratch" in text
    assert win.panel.start_btn.isEnabled() and win.panel.continue_btn.isEnabled()
    assert any("Opened the example" in t for _, t in win.banner.history)
    # dragging works: the current z moves and the decoded image follows
    before = win.preview.array.copy()
    s.set_z(np.array([1.5, -1.0], dtype=np.float32))
    win.tick()
    assert not np.allclose(before, win.preview.array, atol=1e-3)


def test_train_from_an_example_starts_from_scratch_on_the_chosen_data(
    qtbot, make_window, tmp_path, monkeypatch
):
    monkeypatch.setattr(app_mod, "is_cached", lambda source: False)
    monkeypatch.setattr(app_mod, "debian_fashion_available", lambda: False)
    win = make_window(_fresh(tmp_path))
    assert win.session.example
    train(qtbot, win, epochs=1)
    s = win.session
    assert not s.example and s.data_spec.source == "shapes" and s.epochs_done == 1
    assert len(s.data.train_x) > 0 and s.data.num_classes == 5
    assert ex.example_path(ex.FIRST).is_file()


def test_the_gallery_lists_and_opens_every_example(qtbot, window):
    dlg = window.show_examples()
    assert dlg is not None and dlg.isVisible()
    listed = [dlg.list.item(i).data(Qt.UserRole) for i in range(dlg.list.count())]
    assert listed == ex.names()
    for i in range(dlg.list.count()):
        item = dlg.list.item(i)
        assert not item.icon().isNull() and item.toolTip()  # a thumbnail and its line
    dlg.list.setCurrentRow(2)
    assert dlg.open_btn.isEnabled() and ex.recipe(listed[2]).title in dlg.line.text()
    for name in ex.names():
        dlg = window.show_examples()
        assert dlg.open_example(name)
        qtbot.waitUntil(lambda: not window.busy, timeout=10000)
        s = window.session
        r = ex.recipe(name)
        assert s.example and s.source.parent.name == name
        assert s.data_spec.bundle == r.bundle and len(s.data.train_x) == 0
        assert s.model_config.model == r.args[1]
        assert s.latent_dim == int(r.args[3])
        window.recon.refresh(force=True)  # its own test images, closely reconstructed
        im, side = window.recon.images, window.recon.side  # rows of inputs, then their recon.
        pairs = im.reshape(side, 2, side, *im.shape[1:])
        a = pairs[:, 0].reshape(side * side, -1)
        b = pairs[:, 1].reshape(side * side, -1)
        a, b = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
        corr = (a * b).sum(1) / np.maximum(
            np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12
        )
        assert corr.mean() > 0.65, (name, corr.mean())
        if s.model.is_variational:  # an autoencoder's samples are the lesson, not images
            window.samples.refresh(force=True)
            imgs = window.samples.images
            assert imgs.max() > 0.8 and imgs.std(0).mean() > 0.03, name  # not a grey blur


def test_an_example_is_read_only_and_saving_makes_a_copy(qtbot, window, tmp_path):
    path = ex.example_path("shapes-vae-10d")
    before = path.read_bytes()
    assert window.open_checkpoint(path)
    qtbot.waitUntil(lambda: not window.busy, timeout=10000)
    assert window.session.example
    assert window.save_checkpoint(path) is None
    assert "read-only" in window.banner.text
    assert path.read_bytes() == before
    assert not window.places.start("checkpoints").startswith(str(ex.examples_dir()))  # elsewhere
    copy = window.save_checkpoint(tmp_path / "mine.safetensors")
    assert copy is not None and not window.session.example
    # the copy keeps the bundled images as its data: it reopens the same way
    assert window.open_checkpoint(copy)
    qtbot.waitUntil(lambda: not window.busy, timeout=10000)
    assert window.session.data_spec.source == EXAMPLE and len(window.session.data.test_x) == 1200


def test_examples_menu_waits_for_training_to_stop(qtbot, window):
    window.start_training()
    qtbot.waitUntil(lambda: window.run.running, timeout=20000)
    assert window.show_examples() is None
    assert "Stop training" in window.banner.text
    window.run.stop()
    qtbot.waitUntil(lambda: not window.busy, timeout=30000)


@pytest.mark.parametrize("name", ["mnist-ae-2d"])
def test_an_autoencoder_example_shows_why_it_cannot_be_sampled(qtbot, window, name):
    """Its codes lie far from N(0, I): the encoded test set is not standard normal."""
    assert window.open_checkpoint(ex.example_path(name))
    qtbot.waitUntil(lambda: not window.busy, timeout=10000)
    s = window.session
    s.refresh_test_latents(force=True)
    z = s.test_latents
    assert not s.model.is_variational
    assert np.abs(z.mean(0)).max() > 0.5 or np.abs(np.log(z.std(0))).max() > 0.5


def test_each_model_opens_with_its_own_view_and_words(qtbot, window):
    """A panned map fits the next model's codes again; an autoencoder has no KL to order
    the sliders by; the example's message stays until training starts."""
    assert window.open_checkpoint(ex.example_path("mnist-vae-2d"))
    qtbot.waitUntil(lambda: not window.busy, timeout=10000)
    window.map.plot.getPlotItem().setRange(xRange=(-9, -6), yRange=(-9, -6), padding=0)
    window.map.auto_fit = False  # as a pan by the user leaves it
    assert window.open_checkpoint(ex.example_path("mnist-ae-2d"))
    qtbot.waitUntil(
        lambda: not window.busy and window.session.test_latents is not None, timeout=10000
    )
    assert window.map.auto_fit
    window.session.refresh_test_latents(force=True)
    (x0, x1), _ = window.map.plot.getPlotItem().viewRange()
    assert x1 - x0 > 6  # the autoencoder's codes spread far wider than the view left behind
    assert not window.sliders.order_box.isEnabled()
    window.plots.refresh()
    assert "autoencoder has no KL" in window.plots.dim_plot.empty_text.textItem.toPlainText()
    assert window.banner.isVisible() and "Opened the example" in window.banner.text
    assert window.banner.topic == "example"  # not one of the topics hidden after 10 s
    window.panel.epochs.setValue(1)
    assert window.start_training()
    assert not window.banner.isVisible() or "Opened the example" not in window.banner.text
    qtbot.waitUntil(lambda: not window.busy, timeout=60000)
