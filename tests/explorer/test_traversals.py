"""The Traversals tab: rows ordered by KL, collapsed dimensions marked, a click moves z,
live during training, PNG and GIF export."""

from __future__ import annotations

import numpy as np
from PIL import Image

from trainer import examples as ex


def _open(qtbot, win, name):
    assert win.open_checkpoint(ex.example_path(name))
    qtbot.waitUntil(lambda: not win.busy and win.session.kl_per_dim is not None, timeout=10000)
    win.tabs.setCurrentIndex(5)
    assert win.traversals.refresh(force=True)
    return win.traversals.traversal


def test_rows_follow_kl_and_collapsed_dimensions_are_marked(qtbot, window):
    t = _open(qtbot, window, "fashion-vae-20d")
    kl = window.session.kl_per_dim
    assert len(t.dims) == 20 and sorted(t.dims) == list(range(20))
    assert list(t.kl) == sorted(kl, reverse=True)  # most informative first
    collapsed = int((kl < 0.01).sum())
    assert sum(t.collapsed) == collapsed > 0 and t.collapsed[-1] and not t.collapsed[0]
    labels = [item.toPlainText() for item in window.traversals.labels]
    assert len(labels) == 20 and labels[0] == f"z{t.dims[0]} · {t.kl[0]:.2f} nats"
    assert sum("collapsed" in s for s in labels) == collapsed
    # what is shown: collapsed rows faded to grey, the others keep their black background
    arr = window.traversals.item.image
    h = window.traversals.images.shape[-2]
    last = arr[-h - 2 + 3 : -2 - 3, 5 : h - 3]  # inside the first cell of the last row
    first = arr[5 : h - 3, 5 : h - 3]  # and of the first row
    assert last.min() > 0.3 and first.min() < 0.05


def test_a_2d_model_has_two_rows_and_a_click_moves_z(qtbot, window):
    t = _open(qtbot, window, "mnist-vae-2d")
    assert len(t.dims) == 2 and t.columns == 11
    s = window.session
    before = window.preview.array.copy()
    renders = window.traversals.renders
    window.traversals.click_cell(0, 10)
    assert float(s.z[t.dims[0]]) == float(t.values[10]) and float(s.z[t.dims[1]]) == 0.0
    assert window.traversals.dirty  # the other rows are held at the new z: re-decoded
    window.tick()
    assert not np.allclose(before, window.preview.array, atol=1e-3)
    assert window.traversals.renders == renders + 1
    window.trav_columns.setValue(7)
    assert window.traversals.refresh(force=True) and window.traversals.traversal.columns == 7


def test_a_conditional_model_traverses_under_the_chosen_class(qtbot, window):
    _open(qtbot, window, "mnist-cvae-2d")
    a = window.traversals.images.copy()
    window.preview.classes.setCurrentIndex(7)
    window.traversals.refresh(force=True)
    assert not np.allclose(a, window.traversals.images, atol=1e-3)


def test_traversals_export_png_and_gif(qtbot, window, tmp_path):
    _open(qtbot, window, "mnist-vae-20d")
    assert window.export_view("traversals", tmp_path / "t.png")
    with Image.open(tmp_path / "t.png") as im:
        assert im.size[1] >= 20 * 30  # a row per dimension
    assert window.export_traversal_gif(tmp_path / "t.gif")
    with Image.open(tmp_path / "t.gif") as g:
        assert g.n_frames == 11 + 9
    assert not window.export_traversal_gif(tmp_path / "t.png")  # a GIF must be .gif
    assert ".gif" in window.banner.text


def test_traversals_update_live_during_training(qtbot, window):
    window.tabs.setCurrentIndex(5)
    window.tick()
    before = window.traversals.renders
    window.panel.epochs.setValue(500)  # stopped below
    assert window.start_training()
    qtbot.waitUntil(
        lambda: window.run.running and window.traversals.renders > before + 2, timeout=60000
    )
    window.run.stop()
    qtbot.waitUntil(lambda: not window.busy, timeout=30000)
