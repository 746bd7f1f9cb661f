"""Bookmarks: File ▸ Save view… writes the model, data, z, class, dimensions, plane,
selection and every registered owner's state to a small JSON file, and File ▸ Open view…
or ``latent-explorer VIEW.json`` reopens exactly that view; every mistake is one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from explorer_helpers import user_vae_source

from explorer import app, bookmarks
from explorer.bookmarks import ViewError, read_view
from trainer.examples import example_path
from trainer.foreign import ForeignModel

USER_FILE = user_vae_source(3)


class FakeOwner:
    """An owner of some view state, as the map or the directions panel will be."""

    def __init__(self) -> None:
        self.state = {"method": "pca", "k": 3}

    def bookmark(self) -> dict:
        return dict(self.state)

    def restore(self, d: dict) -> None:
        if not isinstance(d.get("k"), int) or d["k"] < 1:
            raise ValueError(f"'k' must be a whole number from 1, not {d.get('k')!r}")
        self.state = dict(d)


def _open_example(qtbot, win, name="mnist-vae-2d"):
    assert win.open_checkpoint(example_path(name))
    qtbot.waitUntil(lambda: win.session.source is not None and not win.busy, timeout=20000)
    qtbot.waitUntil(lambda: not win.run.loading, timeout=20000)


def test_a_view_of_an_example_reopens_exactly(qtbot, make_window, tmp_path):
    win = make_window()
    owner = FakeOwner()
    win.bookmarks.register("fake", owner)
    _open_example(qtbot, win)
    s = win.session
    s.set_z([0.75, -1.25])
    s.selection.set([3, 1, 7])
    owner.state = {"method": "umap", "k": 5}
    path = bookmarks.save_view(win, win.bookmarks.collect(), tmp_path / "view")
    assert path == tmp_path / "view.json"
    saved = json.loads(path.read_text())
    assert saved["model"] == {"example": "mnist-vae-2d"} and saved["z"] == [0.75, -1.25]
    assert saved["selection"] == [1, 3, 7] and saved["owners"]["fake"]["k"] == 5
    assert saved["data"]["source"] == "example"

    other = make_window()
    theirs = FakeOwner()
    other.bookmarks.register("fake", theirs)
    got = []
    other.bookmarks.restored.connect(got.append)
    assert bookmarks.open_view_file(other, path)
    qtbot.waitUntil(lambda: bool(got), timeout=20000)
    t = other.session
    assert t.source == example_path("mnist-vae-2d")
    assert t.z.tolist() == [0.75, -1.25] and t.selection.rows.tolist() == [1, 3, 7]
    assert theirs.state == {"method": "umap", "k": 5} and t.dims == (0, 1)


def test_an_owner_that_refuses_its_state_is_one_line_and_the_rest_is_restored(
    qtbot, make_window, tmp_path
):
    win = make_window()
    owner = FakeOwner()
    win.bookmarks.register("fake", owner)
    with pytest.raises(ValueError, match="registered already"):
        win.bookmarks.register("fake", FakeOwner())
    with pytest.raises(TypeError):
        win.bookmarks.register("nothing", object())
    _open_example(qtbot, win)
    view = win.bookmarks.collect()
    view.owners["fake"] = {"k": 0}
    view.owners["missing"] = {}
    view.z = [2.0, 0.5]
    view.selection = [2, 10**6]
    lines = win.bookmarks.apply(view)
    assert any("'fake' 'k' must be a whole number from 1" in ln for ln in lines), lines
    assert any("'missing' is not restored" in ln for ln in lines)
    assert any("'selection' names row 1000000" in ln for ln in lines)
    assert all("\n" not in ln for ln in lines)
    assert win.session.z.tolist() == [2.0, 0.5]
    said = [text for _lvl, text in win.banner.history]
    assert any("'missing' is not restored" in t for t in said)


def test_a_model_in_no_file_cannot_be_bookmarked(qtbot, window):
    assert window.session.source is None  # the new model of the panel's settings
    with pytest.raises(ViewError, match="save it first"):
        window.bookmarks.collect()
    assert bookmarks.save_view_dialog(window) is None
    assert any("save it first" in text for _lvl, text in window.banner.history)


def test_a_model_given_from_python_cannot_be_bookmarked(qtbot, window):
    from explorer.api import wrap

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(2, 2)

        def encode(self, x):
            return x.flatten(1)[:, :2]

        def decode(self, z):
            return torch.zeros(len(z), *window.session.data.image_shape)

    model = wrap(Tiny(), window.session.data)
    assert window.run.open_model(model, window.session.data)
    with pytest.raises(ViewError, match="given from Python"):
        window.bookmarks.collect()


def _user_view(tmp_path):
    f = tmp_path / "my_vae.py"
    f.write_text(USER_FILE)
    rng = np.random.default_rng(0)
    images = tmp_path / "images.npz"
    np.savez(images, x=(rng.random((60, 12, 12)) < 0.3).astype(np.uint8) * 255)
    return f, images


def _start(qtbot, tmp_path, argv):
    args = app.build_parser().parse_args([*argv, "--settings", str(tmp_path / "s.ini")])
    app.check_args(app.build_parser(), args)
    assert app.read_own_model(args) is None
    win = app.start(args)
    qtbot.addWidget(win)
    win.ask_on_close = False
    return win


def test_latent_explorer_view_json_reopens_a_users_model(qtbot, tmp_path):
    f, images = _user_view(tmp_path)
    argv = ["--model", f"{f}:build", "--dataset", "npz", "--images", str(images)]
    win = _start(qtbot, tmp_path, argv)
    qtbot.waitUntil(lambda: isinstance(win.session.model, ForeignModel), timeout=20000)
    win.session.set_z([0.5, -0.5, 1.5])
    win.session.set_dims(2, 0)
    win.session.selection.set([4, 2])
    path = bookmarks.save_view(win, win.bookmarks.collect(), tmp_path / "mine.json")
    saved = json.loads(path.read_text())
    assert saved["model"] == {"own": f"{f}:build", "output": "logits"}
    assert saved["data"]["source"] == "npz" and saved["dims"] == [2, 0]

    again = _start(qtbot, tmp_path, [str(path)])
    got = []
    again.bookmarks.restored.connect(got.append)
    qtbot.waitUntil(lambda: bool(got), timeout=20000)
    s = again.session
    assert isinstance(s.model, ForeignModel) and s.model.config.spec == f"{f}:build"
    assert s.z.tolist() == [0.5, -0.5, 1.5] and s.dims == (2, 0)
    assert s.selection.rows.tolist() == [2, 4]


def _view(tmp_path, **change):
    f, images = _user_view(tmp_path)
    d = {
        "format": "latent-explorer-view",
        "version": 1,
        "model": {"own": f"{f}:build", "output": "logits"},
        "data": {"source": "npz", "images": str(images)},
        "z": [0.0, 0.0, 0.0],
        "class": 0,
        "dims": [0, 1],
        "plane": "axes",
        "selection": [],
        "owners": {},
    }
    for k, v in change.items():
        if v is None:
            del d[k]
        else:
            d[k] = v
    path = tmp_path / "v.json"
    path.write_text(json.dumps(d))
    return path


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({}, None),
        ({"format": "something"}, "'format' must be 'latent-explorer-view'"),
        ({"version": 9}, "'version' is 9"),
        ({"model": {"checkpoint": "/nowhere/model.safetensors"}}, "nowhere/model.safetensors"),
        ({"model": {"own": "/nowhere/vae.py:build"}}, "names /nowhere/vae.py, which does not"),
        ({"model": {"example": "no-such"}}, "'model.example' 'no-such' is no bundled example"),
        ({"model": {}}, "must name one of checkpoint, example or own"),
        ({"z": [0, "x"]}, "'z[1]' must be a finite number"),
        ({"z": []}, "'z' must hold 1 to"),
        ({"dims": [0, 3]}, "'dims' must be two dimensions of the latent, 0 to 2"),
        ({"plane": "umap"}, "'plane' must be axes or pca"),
        ({"selection": [1, -2]}, "'selection' must be a list of test image rows"),
        ({"owners": {"map": 3}}, "'owners.map' must be an object"),
        ({"data": {"source": "nothing"}}, "'data'"),
        ({"data": None}, "'data' is missing"),
        ({"z": None}, "'z' is missing"),
    ],
)
def test_every_field_of_a_view_is_checked(tmp_path, change, said):
    path = _view(tmp_path, **change)
    if said is None:
        assert read_view(path).z == [0.0, 0.0, 0.0]
        return
    with pytest.raises(ViewError) as e:
        read_view(path)
    text = str(e.value)
    assert said in text and "\n" not in text and str(path) in text, text


def test_a_view_that_cannot_be_used_is_one_line_before_any_window(tmp_path, capsys):
    path = _view(tmp_path, model={"checkpoint": str(tmp_path / "gone.safetensors")})
    assert app.main([str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("latent-explorer: ") and "gone.safetensors" in err and "\n" not in err
    with pytest.raises(SystemExit):
        app.main([str(_view(tmp_path)), "--dataset", "shapes"])
    assert "is a saved view" in capsys.readouterr().err


def test_the_windows_own_views_are_kept_in_a_view(qtbot, make_window, tmp_path):
    """The map (its method and custom axes), the directions and the neighbours' k are
    registered by the window itself, and come back in another window."""
    win = make_window()
    assert set(win.bookmarks.owners) >= {"map", "directions", "neighbours"}
    _open_example(qtbot, win, "mnist-vae-20d")
    dirs = win.directions
    assert dirs.from_classes(3, 8) is not None and dirs.from_classes(1, 7) is not None
    assert dirs.use_as_axes([0, 1])  # the map takes them as its axes
    win.neighbours.set_k(5)
    path = bookmarks.save_view(win, win.bookmarks.collect(), tmp_path / "mine.json")
    saved = json.loads(path.read_text())["owners"]
    assert saved["map"]["method"] == "custom" and saved["neighbours"] == {"k": 5}
    assert [d["name"] for d in saved["directions"]["directions"]] == [d.name for d in dirs.items]

    other = make_window()
    got = []
    other.bookmarks.restored.connect(got.append)
    assert bookmarks.open_view_file(other, path)
    qtbot.waitUntil(lambda: bool(got), timeout=20000)
    m = other.map_state
    assert m.method == "custom"
    assert np.allclose(m.custom_axes[0], dirs.items[0].vector)
    assert np.allclose(m.custom_axes[1], dirs.items[1].vector)
    assert [d.name for d in other.directions.items] == [d.name for d in dirs.items]
    assert other.neighbours.k == 5


def test_a_view_keeps_the_directions_groups_and_amounts(qtbot, make_window, tmp_path):
    """The groups kept as A and B and how far z was moved along a direction come back."""
    win = make_window()
    _open_example(qtbot, win, "mnist-vae-20d")
    dirs, s = win.directions, win.session
    assert dirs.from_classes(3, 8) is not None and dirs.from_classes(1, 7) is not None
    s.selection.set([1, 2, 3])
    assert dirs.keep_selection("A")
    s.selection.set([10, 20])
    assert dirs.keep_selection("B")
    dirs.set_amount(0, 1.01)
    path = bookmarks.save_view(win, win.bookmarks.collect(), tmp_path / "mine.json")

    other = make_window()
    got = []
    other.bookmarks.restored.connect(got.append)
    assert bookmarks.open_view_file(other, path)
    qtbot.waitUntil(lambda: bool(got), timeout=20000)
    win.tick()
    other.tick()
    o = other.directions
    assert o.amounts == [1.01, 0.0]
    assert [o.kept[g][0].tolist() for g in "AB"] == [[1, 2, 3], [10, 20]]
    assert [o.kept[g][1] for g in "AB"] == ["selection A", "selection B"]
    panel = other.directions_panel
    assert "A: 3 images · B: 2 images" in panel.kept_label.text()
    assert panel.sliders[0][1].text() == "+1.01 ×"  # its slider is shown, with its amount
    # a kept group that does not fit the test set is named, and nothing changes
    bad = json.loads(path.read_text())["owners"]["directions"]
    bad["kept"]["B"]["rows"] = [10, 10**6]
    with pytest.raises(ValueError, match=r"directions\.kept\.B\.rows: image 1000000 is not"):
        o.restore(bad)
    bad["kept"] = {"C": None}
    with pytest.raises(ValueError, match="directions.kept: expected an object with groups A"):
        o.restore(bad)
    assert o.kept["B"][0].tolist() == [10, 20] and o.amounts == [1.01, 0.0]
    assert torch.allclose(other.session.z, s.z, atol=1e-6)
