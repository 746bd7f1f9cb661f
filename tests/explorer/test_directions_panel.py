"""The Directions panel under the Arithmetic view: directions from two classes, from two
selections kept from the map and from the arithmetic's b → a; a slider moving z along one;
a sweep exported; two offered as the map's axes; a bookmark of them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from trainer import examples as ex
from trainer.directions import mean_difference

ARITHMETIC_TAB = 7


@pytest.fixture
def win(qtbot, window):
    assert window.open_checkpoint(ex.example_path("mnist-vae-20d"))
    qtbot.waitUntil(lambda: not window.busy, timeout=10000)
    window.tabs.setCurrentIndex(ARITHMETIC_TAB)
    return window


def _codes(s, rows):
    return s.encode(s.data.test_x[torch.as_tensor(rows)])


def test_a_direction_from_two_classes_and_its_slider_moves_z(qtbot, win):
    s, panel, dirs = win.session, win.directions_panel, win.directions
    assert panel.isVisible() and panel.class_btn.isEnabled()
    assert not panel.attr_btn.isEnabled()  # MNIST has no attributes
    panel.class_a.setCurrentIndex(3)
    panel.class_b.setCurrentIndex(8)
    panel.class_btn.click()
    assert len(dirs) == 1
    d = dirs.items[0]
    rows = np.asarray(s.test_index)
    labels = s.data.test_y[torch.from_numpy(rows)].numpy()
    want = mean_difference(_codes(s, rows[labels == 8]), _codes(s, rows[labels == 3])).numpy()
    assert np.allclose(d.vector, want, atol=1e-5)
    assert (d.source, d.target) == ("class 3", "class 8")
    assert d.source_size == int((labels == 3).sum()) and d.target_size == int((labels == 8).sum())
    assert panel.list.count() == 1 and "class 3" in panel.list.item(0).text()
    assert "Added class 3" in panel.status.text()
    # the new direction is selected: one slider, and it moves z; the image follows
    assert list(panel.sliders) == [0]
    slider, value = panel.sliders[0]
    z0 = s.z.clone()
    image0 = s.decode_current()
    slider.setValue(100)  # +1 whole direction
    assert torch.allclose(s.z, z0 + torch.from_numpy(d.vector), atol=1e-6)
    assert value.text() == "+1.00 ×" and dirs.amounts == [1.0]
    win.tick()
    assert not np.allclose(s.decode_current(), image0)
    slider.setValue(-50)
    assert torch.allclose(s.z, z0 - 0.5 * torch.from_numpy(d.vector), atol=1e-5)
    # z moved some other way: the amounts start again from 0 there
    s.set_z(torch.zeros(s.latent_dim))
    assert dirs.amounts == [0.0] and slider.value() == 0


def test_a_direction_from_two_kept_selections(qtbot, win):
    s, panel, dirs = win.session, win.directions_panel, win.directions
    panel.keep_a.click()  # nothing selected yet: said, nothing kept
    assert dirs.kept["A"] is None and "Nothing is selected" in panel.status.text()
    s.selection.set([1, 2, 3])
    panel.keep_a.click()
    panel.kept_btn.click()  # B not kept yet
    assert len(dirs) == 0 and "Keep a selection as group B first" in panel.status.text()
    s.selection.set([10, 20])
    panel.keep_b.click()
    assert "A: 3 images · B: 2 images" in panel.kept_label.text()
    panel.kept_btn.click()
    d = dirs.items[0]
    want = mean_difference(_codes(s, [10, 20]), _codes(s, [1, 2, 3])).numpy()
    assert np.allclose(d.vector, want, atol=1e-5)
    assert (d.source_size, d.target_size) == (3, 2)
    # the arithmetic's b → a is a direction too: z_a - z_b
    v = win.arithmetic
    v.index[0].setValue(5)
    v.index[1].setValue(9)
    panel.keep_arithmetic.click()
    d2 = dirs.items[1]
    codes = _codes(s, [5, 9])
    assert np.allclose(d2.vector, codes[0] - codes[1], atol=1e-5)
    assert (d2.source, d2.target) == ("image #9", "image #5")


def test_kept_groups_that_are_the_same_or_overlap_are_said(qtbot, win):
    s, panel, dirs = win.session, win.directions_panel, win.directions
    s.selection.set([1, 2, 3])
    panel.keep_a.click()
    panel.keep_b.click()  # the same images: refused, said
    panel.kept_btn.click()
    assert len(dirs) == 0 and "Groups A and B are the same 3 images" in panel.status.text()
    # B still holds A's images: they are left out of B, and the panel says how many
    s.selection.set([1, 2, 3, 10, 20])
    panel.keep_b.click()
    panel.kept_btn.click()
    d = dirs.items[0]
    assert (d.source_size, d.target_size) == (3, 2)
    want = mean_difference(_codes(s, [10, 20]), _codes(s, [1, 2, 3])).numpy()
    assert np.allclose(d.vector, want, atol=1e-5)
    assert "share 3 images: left out of B" in panel.status.text()
    # each group is named once, with its size once
    assert d.describe().startswith("selection A (3 codes) → selection B (2 codes)")
    assert "images)" not in panel.list.item(0).text()


def test_export_a_sweep_and_ask_for_map_axes(qtbot, win, tmp_path):
    s, panel, dirs = win.session, win.directions_panel, win.directions
    assert panel.export_problem() == "There is no direction to sweep yet: add one first."
    assert not win.export_sweep(tmp_path / "none.png")  # said, nothing written
    assert not (tmp_path / "none.png").exists()
    panel.class_a.setCurrentIndex(3)
    panel.class_b.setCurrentIndex(8)
    panel.class_btn.click()
    panel.steps.setValue(5)
    assert win.export_sweep(tmp_path / "sweep.png")
    with Image.open(tmp_path / "sweep.png") as im:
        assert im.size[0] >= 600 and im.size[0] > 4 * im.size[1]  # a row, magnified
    assert win.export_sweep(tmp_path / "sweep.gif")
    with Image.open(tmp_path / "sweep.gif") as im:
        assert im.n_frames == 5 + 3  # forth and back
    # the sweep starts at the mean of class 3 and ends at the mean of class 8
    codes = dirs.sweep_codes(0, 5, (0.0, 1.0))
    rows = np.asarray(s.test_index)
    labels = s.data.test_y[torch.from_numpy(rows)].numpy()
    assert np.allclose(codes[0], _codes(s, rows[labels == 3]).mean(0), atol=1e-5)
    assert np.allclose(codes[-1], _codes(s, rows[labels == 8]).mean(0), atol=1e-5)
    # two directions: the map is asked to use them as its axes
    panel.class_a.setCurrentIndex(1)
    panel.class_b.setCurrentIndex(7)
    panel.class_btn.click()
    panel.list.selectAll()
    assert panel.axes_btn.isEnabled() and len(panel.sliders) == 2
    assert not dirs.use_as_axes([0])  # one is no plane
    got = []
    dirs.axes_requested.connect(lambda u, v: got.append((u, v)))
    with qtbot.waitSignal(dirs.axes_requested, timeout=1000):
        panel.axes_btn.click()
    assert np.array_equal(got[0][0], dirs.items[0].vector)
    assert np.array_equal(got[0][1], dirs.items[1].vector)
    # the window's map takes them: its custom plane, spanned by the two directions
    m = win.map_state
    assert m.method == "custom"
    assert np.array_equal(m.custom_axes[0], dirs.items[0].vector)
    assert np.array_equal(m.custom_axes[1], dirs.items[1].vector)
    # its axes carry the directions' names, and the panel says where the map is
    qtbot.waitUntil(lambda: m.points is not None and not m.busy, timeout=10000)
    assert m.points.projection.names == ("class 3 → class 8", "class 1 → class 7 (orthogonal part)")
    assert "The map's axes: class 3 → class 8 across" in panel.status.text()
    assert "see the Explore tab" in panel.status.text()
    # with nothing listening, it is said, not pretended
    dirs.axes_requested.disconnect()
    assert not dirs.use_as_axes([0, 1])
    assert "cannot take directions as its axes" in panel.status.text()
    # a sweep of two directions at once is not one sweep
    assert "Select one direction" in panel.export_problem()


def test_bookmark_and_restore(qtbot, win):
    dirs, panel = win.directions, win.directions_panel
    panel.class_btn.click()  # class 0 to class 1
    panel.sliders[0][0].setValue(50)
    saved = json.loads(json.dumps(dirs.bookmark()))
    assert saved["directions"][0]["amount"] == 0.5
    dirs.clear()
    assert len(dirs) == 0 and panel.list.count() == 0
    dirs.restore(saved)
    assert len(dirs) == 1 and dirs.amounts == [0.5] and panel.list.count() == 1
    assert np.allclose(dirs.items[0].vector, saved["directions"][0]["vector"])
    bad = json.loads(json.dumps(saved))
    bad["directions"][0]["vector"] = [0.0] * 3
    with pytest.raises(ValueError, match=r"directions\[0\]\.vector: has 3 values; .* has 20"):
        dirs.restore(bad)
    bad["directions"][0]["vector"] = saved["directions"][0]["vector"]
    bad["directions"][0]["amount"] = "far"
    with pytest.raises(ValueError, match=r"directions\[0\]\.amount: expected a finite number"):
        dirs.restore(bad)
    with pytest.raises(ValueError, match="directions: expected a list"):
        dirs.restore({})
    assert len(dirs) == 1  # a refused bookmark changed nothing


def test_another_latent_size_drops_the_directions(qtbot, win):
    dirs, panel = win.directions, win.directions_panel
    panel.class_btn.click()
    assert len(dirs) == 1
    assert win.open_checkpoint(ex.example_path("mnist-vae-2d"))
    qtbot.waitUntil(lambda: not win.busy, timeout=10000)
    assert len(dirs) == 0 and "latent has 2" in panel.status.text()


def test_a_direction_from_an_attribute_and_from_two(qtbot, win):
    from trainer.data.arrays import Attributes

    s, panel, dirs = win.session, win.directions_panel, win.directions
    n = len(s.data.test_x)
    table = torch.from_numpy(np.random.default_rng(0).random((n, 2)) < 0.4)
    s.data.attributes = Attributes(["Smiling", "Young"], table[:0], table)
    s.dataChanged.emit()
    assert panel.attr_btn.isEnabled() and panel.attr_a.count() == 2
    panel.attr_a.setCurrentText("Young")
    panel.attr_btn.click()  # against its absence
    rows = np.asarray(s.test_index)
    young = table[torch.from_numpy(rows), 1].numpy()
    want = mean_difference(_codes(s, rows[young]), _codes(s, rows[~young])).numpy()
    d = dirs.items[0]
    assert np.allclose(d.vector, want, atol=1e-5)
    assert (d.source, d.target) == ("not Young", "Young")
    panel.attr_b.setCurrentIndex(panel.attr_b.findData("Smiling"))
    panel.attr_btn.click()  # from the smiling faces to the young ones
    smiling = table[torch.from_numpy(rows), 0].numpy()
    want = mean_difference(_codes(s, rows[young]), _codes(s, rows[smiling])).numpy()
    assert np.allclose(dirs.items[1].vector, want, atol=1e-5)
    panel.attr_b.setCurrentIndex(panel.attr_b.findData("Young"))
    panel.attr_btn.click()
    assert len(dirs) == 2 and "the same" in panel.status.text()
