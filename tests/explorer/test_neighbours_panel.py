"""The "Nearest training images" panel under the current z: it follows z, a click moves z to
a neighbour's code, it exports, and it says which images it searched."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from explorer import exports
from trainer import examples as ex


def _indexed(qtbot, win):
    nb = win.neighbours
    if nb.index is None:
        nb.build()
    qtbot.waitUntil(lambda: nb.index is not None and not nb.building, timeout=20000)
    qtbot.waitUntil(lambda: nb.found is not None, timeout=5000)
    return nb


def test_the_panel_follows_z_and_a_click_jumps_to_a_neighbours_code(qtbot, window):
    s = window.session
    nb = _indexed(qtbot, window)
    panel = window.neighbours_panel
    assert nb.index.source == "train" and len(nb.index) == len(s.data.train_x)
    assert panel.heading.text() == "Nearest training images"
    assert "Among" in panel.status.text() and "training images" in panel.status.text()
    # z moved to a training image's own code: its nearest image by code is that image
    row = 11
    code = s.encode(s.data.train_x[row : row + 1])[0]
    before = nb.searches
    s.set_z(code)
    qtbot.waitUntil(lambda: nb.searches > before, timeout=3000)
    qtbot.waitUntil(lambda: np.allclose(nb.found.z, code), timeout=3000)
    assert nb.found.latent.distances[0] < 1e-5
    assert torch.equal(nb.index.images[int(nb.found.latent.rows[0])], s.data.train_x[row])
    buttons = panel.buttons["latent"]
    assert sum(b.isVisible() for b in buttons) == nb.k
    assert buttons[0].text() == "0.00" and not buttons[0].icon().isNull()
    # a drag: many moves at once are searched at most once per throttle, the last one always
    before = nb.searches
    for t in np.linspace(0, 1, 30):
        s.set_z(code * (1 - t) + 0.5 * t)
    qtbot.waitUntil(lambda: np.allclose(nb.found.z, s.z.numpy()), timeout=3000)
    assert nb.searches - before < 10
    # a click on a neighbour by pixels moves z to that image's code
    target = int(nb.found.pixels.rows[2])
    panel.buttons["pixels"][2].click()
    want = s.encode(s.data.train_x[target : target + 1])[0]
    assert np.allclose(s.z.numpy(), want, atol=1e-6)


def test_new_weights_leave_the_index_stale_until_it_is_rebuilt(qtbot, window):
    s = window.session
    nb = _indexed(qtbot, window)
    weights = {k: v + 0.01 for k, v in s.model.state_dict().items()}
    s.load_weights(weights)
    assert nb.stale and "earlier weights" in window.neighbours_panel.status.text()
    assert nb.build()
    qtbot.waitUntil(lambda: not nb.building and not nb.stale, timeout=20000)
    assert "earlier weights" not in window.neighbours_panel.status.text()


def test_export_writes_the_query_and_both_rows(qtbot, window, tmp_path):
    nb = window.neighbours
    assert nb.export_problem() is not None  # nothing yet: said before any dialog
    _indexed(qtbot, window)
    path = tmp_path / "nn.png"
    assert exports.export_neighbours(window, path)
    with Image.open(path) as im:
        w, h = im.size
    assert w > (nb.k + 1) * 28 * 3 and h > 2 * 28 * 3
    assert not exports.export_neighbours(window, tmp_path / "nn.txt")  # said, not raised


def test_an_example_without_training_images_says_it_searches_test_images(qtbot, window):
    assert window.open_checkpoint(ex.example_path("mnist-cvae-2d"))
    qtbot.waitUntil(lambda: not window.busy, timeout=10000)
    s = window.session
    nb = _indexed(qtbot, window)
    assert nb.index.source == "test"
    s.set_class(3)
    qtbot.waitUntil(lambda: nb.found is not None and nb.found.cls == 3, timeout=3000)
    heading = window.neighbours_panel.heading.text()
    assert heading.startswith("Nearest test images of class")
    assert "no training images" in window.neighbours_panel.status.text()
    assert (nb.index.labels[nb.found.latent.rows] == 3).all()  # the class it decodes with
    assert (nb.index.labels[nb.found.pixels.rows] == 3).all()


def test_the_bookmark_keeps_k_and_refuses_what_does_not_fit(qtbot, window):
    nb = window.neighbours
    nb.restore({"k": 9})
    assert nb.bookmark() == {"k": 9} and window.neighbours_panel.k.value() == 9
    for bad in (0, 99, "6", True, 2.5):
        try:
            nb.restore({"k": bad})
        except ValueError as e:
            assert "neighbours.k" in str(e)
        else:
            raise AssertionError(f"k = {bad!r} was taken")


def test_a_run_drops_the_index_of_the_model_before_and_indexes_its_own_when_it_ends(qtbot, window):
    from explorer_helpers import train

    nb = _indexed(qtbot, window)
    before = nb.index
    train(qtbot, window, epochs=1)
    # the new model's index is built by itself once its weights are still
    qtbot.waitUntil(
        lambda: nb.index is not None and nb.index is not before and not nb.stale, timeout=30000
    )
    assert nb.index.fits(nb.key()) and nb.found is not None
    assert nb.index.key[0] == window.session.model_serial


def test_indexing_shows_progress_and_cancel_stops_it(qtbot, window, monkeypatch):
    import time

    from trainer.neighbours import NeighbourIndex

    real = NeighbourIndex.build.__func__

    def slow(cls, model, data, split="train", progress=None, **kw):
        def step(fraction, text):
            time.sleep(0.02)
            progress(fraction, text)

        return real(cls, model, data, split, batch=10, progress=step, **kw)

    monkeypatch.setattr(NeighbourIndex, "build", classmethod(slow))
    nb, panel = window.neighbours, window.neighbours_panel
    nb._drop()
    assert nb.build()
    qtbot.waitUntil(lambda: nb.fraction > 0, timeout=5000)
    assert panel.progress.isVisible() and panel.cancel.isVisible()
    assert "Indexing the images to search" in panel.status.text()
    panel.cancel.click()
    qtbot.waitUntil(lambda: not nb.runner.running, timeout=5000)
    assert nb.index is None and panel.status.text() == "Indexing cancelled."
    assert not panel.progress.isVisible()
