"""A user's own model kept as a run of the project (File ▸ Save): its weights and where its
code is (FILE.py:FUNCTION and a hash of the file), or its ONNX pair copied; opening the run
from the Runs tab runs that code again and restores the weights; a model given from Python
is refused, saying why."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from explorer_helpers import user_vae_source

from explorer import actions, app, own_model
from trainer.foreign import ForeignModel
from trainer.runs import RUN_FILE, Project, read_run

USER_FILE = user_vae_source(2)


@pytest.fixture
def project(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    monkeypatch.setenv("LATENT_EXPLORER_PROJECT", str(folder))
    return folder


def _images(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "images.npz"
    np.savez(path, x=(rng.random((60, 12, 12)) < 0.3).astype(np.uint8) * 255)
    return path


def _start(qtbot, tmp_path, argv, name="s.ini"):
    args = app.build_parser().parse_args([*argv, "--settings", str(tmp_path / name)])
    app.check_args(app.build_parser(), args)
    assert app.read_own_model(args) is None
    win = app.start(args)
    qtbot.addWidget(win)
    win.ask_on_close = False
    return win


def _said(win, fragment):
    return any(fragment in text for _lvl, text in win.banner.history)


def test_a_users_model_is_kept_as_a_run_and_reopened_with_its_weights(qtbot, tmp_path, project):
    f = tmp_path / "my_vae.py"
    f.write_text(USER_FILE)
    images = _images(tmp_path)
    argv = ["--model", f"{f}:build", "--dataset", "npz", "--images", str(images)]
    win = _start(qtbot, tmp_path, argv)
    qtbot.waitUntil(lambda: isinstance(win.session.model, ForeignModel), timeout=20000)
    with torch.no_grad():  # weights of its own, not what build() makes
        win.session.model.module.dec.weight.fill_(0.05)
    z = torch.tensor([[0.3, -0.7]])
    want = win.session.model.decode_image(z)
    kept = actions.save_checkpoint_dialog(win)  # File ▸ Save: no file dialog, a run
    assert kept is not None and kept.name == "model.safetensors"
    assert _said(win, "Opening the run runs that code again")
    rec = read_run(kept.parent / RUN_FILE)
    assert rec.source == "own" and rec.own["spec"] == f"{f}:build"
    assert len(rec.own["sha256"]) == 64 and rec.own["data"]["source"] == "npz"
    assert rec.model["arch"] == "foreign" and rec.model["latent_dim"] == 2

    other = _start(qtbot, tmp_path, [], name="t.ini")
    qtbot.waitUntil(lambda: not other.busy, timeout=20000)
    assert other.runs_view.opener(str(kept))
    qtbot.waitUntil(lambda: isinstance(other.session.model, ForeignModel), timeout=20000)
    got = other.session.model.decode_image(z)
    assert torch.allclose(got, want, atol=1e-6)
    assert _said(other, "ran its code again") and _said(other, "restored its weights")
    assert other.projects.current_id == rec.id

    # the file changed since: said, and the weights still go into what it builds
    f.write_text(USER_FILE + "\n# edited\n")
    assert own_model.open_path(other, str(kept))
    qtbot.waitUntil(lambda: _said(other, "has changed since the run was kept"), timeout=20000)
    # a file that is gone: one line
    f.unlink()
    assert not own_model.open_path(other, str(kept))
    assert _said(other, "cannot be opened") and _said(other, "my_vae.py")


def test_a_model_given_from_python_is_refused_as_a_run(qtbot, window, project):
    from explorer.api import wrap

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(2, 2)

        def encode(self, x):
            return x.flatten(1)[:, :2]

        def decode(self, z):
            return torch.zeros(len(z), *window.session.data.image_shape)

    assert window.run.open_model(wrap(Tiny(), window.session.data), window.session.data)
    assert actions.save_checkpoint_dialog(window) is None
    assert _said(window, "given from Python") and _said(window, "could not be reopened")
    assert Project(project).runs() == []


def test_an_onnx_pair_is_copied_into_its_run(qtbot, tmp_path, project):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from trainer.config import ModelConfig
    from trainer.models import LatentModel
    from trainer.onnx_pair import export_onnx_pair

    torch.manual_seed(0)
    net = LatentModel(ModelConfig(latent_dim=2, hidden=16, image_shape=(1, 12, 12))).eval()
    pair = tmp_path / "pair"
    export_onnx_pair(net, pair)
    argv = ["--model", str(pair), "--dataset", "npz", "--images", str(_images(tmp_path))]
    win = _start(qtbot, tmp_path, argv)
    qtbot.waitUntil(lambda: isinstance(win.session.model, ForeignModel), timeout=20000)
    kept = actions.save_checkpoint_dialog(win)
    assert kept is not None and kept.name == "onnx"
    assert sorted(p.name for p in kept.iterdir()) == ["decoder.onnx", "encoder.onnx", "model.json"]
    assert json.loads((kept.parent / RUN_FILE).read_text())["own"]["onnx"] == "onnx"
    for p in pair.iterdir():
        p.unlink()  # the run holds its own copy
    assert own_model.open_path(win, str(kept))
    qtbot.waitUntil(lambda: _said(win, "read its ONNX pair"), timeout=20000)


def test_the_model_box_shows_a_users_model_instead_of_the_panels_settings(qtbot, tmp_path):
    from trainer.examples import example_path

    f = tmp_path / "my_vae.py"
    f.write_text(USER_FILE)
    argv = ["--model", f"{f}:build", "--dataset", "npz", "--images", str(_images(tmp_path))]
    win = _start(qtbot, tmp_path, argv)
    qtbot.waitUntil(lambda: isinstance(win.session.model, ForeignModel), timeout=20000)
    p = win.panel
    form = p._model_form
    assert p.own_info.isVisibleTo(win) and "my_vae.py:build" in p.own_info.text()
    assert "latent size 2" in p.own_info.text() and "logits (Bernoulli)" in p.own_info.text()
    assert str(f) in p.own_info.toolTip()
    hidden = (p.model, p.arch, p.latent, p.hidden, p.likelihood, p.gauss_std)
    assert not any(form.isRowVisible(w) for w in hidden)
    assert form.isRowVisible(p.beta)  # Train weighs the user's model's KL by it
    # another model on screen: the panel's settings are back
    assert win.open_checkpoint(example_path("mnist-vae-2d"))
    qtbot.waitUntil(lambda: not isinstance(win.session.model, ForeignModel), timeout=20000)
    assert not p.own_info.isVisibleTo(win)
    assert all(form.isRowVisible(w) for w in hidden[:5])


def test_a_users_model_trained_here_is_kept_as_its_run_and_continued_in_it(
    qtbot, tmp_path, project
):
    f = tmp_path / "my_vae.py"
    f.write_text(USER_FILE)
    argv = ["--model", f"{f}:build", "--dataset", "npz", "--images", str(_images(tmp_path))]
    win = _start(qtbot, tmp_path, argv)
    qtbot.waitUntil(lambda: isinstance(win.session.model, ForeignModel), timeout=20000)
    for n, resume in ((1, False), (2, True)):
        before = len(win.run.outcomes)
        win.panel.epochs.setValue(1)
        win.panel.more_epochs.setValue(1)
        assert win.start_training(resume=resume), win.banner.history
        qtbot.waitUntil(lambda b=before: len(win.run.outcomes) > b and not win.busy, timeout=60000)
        runs = Project(project).runs()
        assert len(runs) == 1, [r.name for r in runs]  # continued: the same run
        rec = runs[0]
        assert rec.source == "own" and rec.epochs == n and len(rec.curve) == n
        assert rec.steps == win.session.step > 0 and win.projects.current_id == rec.id
    # the kept weights are the trained ones
    from trainer.user_code import read_weights

    kept = read_weights(Path(rec.checkpoint))
    now = win.session.model.module.state_dict()
    assert all(torch.equal(kept[k], now[k].cpu()) for k in now)


def test_a_view_of_a_users_model_trained_here_names_its_runs_weights(qtbot, tmp_path, project):
    from explorer.bookmarks import ViewError, read_view

    f = tmp_path / "my_vae.py"
    f.write_text(USER_FILE)
    argv = ["--model", f"{f}:build", "--dataset", "npz", "--images", str(_images(tmp_path))]
    win = _start(qtbot, tmp_path, argv)
    qtbot.waitUntil(lambda: isinstance(win.session.model, ForeignModel), timeout=20000)
    win.panel.epochs.setValue(1)
    assert win.start_training()
    qtbot.waitUntil(lambda: bool(win.run.outcomes) and not win.busy, timeout=60000)
    rec = Project(project).runs()[0]
    view = win.bookmarks.collect()
    assert view.model["weights"] == rec.checkpoint and view.model["own"] == f"{f}:build"
    win.projects.current_id = None  # (no run holds these weights)
    with pytest.raises(ViewError, match="keep it as a run first"):
        win.bookmarks.collect()
    win.projects.current_id = rec.id
    path = own_model_view(win, tmp_path)
    assert read_view(path).model["weights"] == rec.checkpoint


def own_model_view(win, tmp_path):
    from explorer import bookmarks

    return bookmarks.save_view(win, win.bookmarks.collect(), tmp_path / "trained.json")


def _train(win, qtbot, resume: bool) -> None:
    before = len(win.run.outcomes)
    win.panel.epochs.setValue(1)
    win.panel.more_epochs.setValue(1)
    assert win.start_training(resume=resume), win.banner.history
    qtbot.waitUntil(lambda: len(win.run.outcomes) > before and not win.busy, timeout=60000)


def test_a_users_model_reopened_from_its_run_has_its_training_and_continues(
    qtbot, tmp_path, project
):
    """Train, Keep in project, quit, reopen the run: the curve, epochs, steps, β and the
    optimiser's state come back, the runs table shows them, and Continue goes on with it."""
    from trainer.runs import table

    f = tmp_path / "my_vae.py"
    f.write_text(USER_FILE)
    argv = ["--model", f"{f}:build", "--dataset", "npz", "--images", str(_images(tmp_path))]
    win = _start(qtbot, tmp_path, argv)
    qtbot.waitUntil(lambda: isinstance(win.session.model, ForeignModel), timeout=20000)
    win.panel.beta.setText("0.5")
    _train(win, qtbot, resume=False)
    assert win.status_run.text().startswith("Finished 1 epoch: "), win.status_run.text()
    steps = win.session.step
    kept = actions.save_checkpoint_dialog(win)
    assert kept is not None
    [rec] = Project(project).runs()
    assert rec.epochs == 1 and rec.train["beta"] == 0.5 and rec.steps == steps
    row = table([rec])[0]
    assert row[4] == "0.5" and row[5] == "1", row

    other = _start(qtbot, tmp_path, [], name="t.ini")
    qtbot.waitUntil(lambda: not other.busy, timeout=20000)
    assert other.runs_view.opener(str(kept))
    qtbot.waitUntil(lambda: isinstance(other.session.model, ForeignModel), timeout=20000)
    qtbot.waitUntil(lambda: not other.busy, timeout=20000)
    s = other.session
    assert s.epochs_done == 1 and s.step == steps and len(s.history.epochs) == 1
    assert s.train_config.beta == 0.5 and s.optimizer_state is not None
    assert "as your code made it" not in s.trained_text() and not s.unsaved
    assert other.panel.beta.text() == "0.5"
    assert other.panel.continue_btn.isEnabled()
    assert other.projects.current_id == rec.id
    _train(other, qtbot, resume=True)
    assert s.epochs_done == 2 and len(s.history.epochs) == 2
    # continued: the same run (beside the example the window opened with)
    [again] = [r for r in Project(project).runs() if r.source == "own"]
    assert again.id == rec.id and again.epochs == 2 and again.steps == s.step > steps


def test_keep_in_project_names_itself_and_updates_the_same_run(qtbot, tmp_path, project):
    from trainer.examples import example_path

    f = tmp_path / "my_vae.py"
    f.write_text(USER_FILE)
    argv = ["--model", f"{f}:build", "--dataset", "npz", "--images", str(_images(tmp_path))]
    win = _start(qtbot, tmp_path, argv)
    qtbot.waitUntil(lambda: isinstance(win.session.model, ForeignModel), timeout=20000)
    assert win.act_save.text() == own_model.KEEP_TEXT
    first = actions.save_checkpoint_dialog(win)
    assert _said(win, "Kept your model as run")
    _train(win, qtbot, resume=True)
    second = actions.save_checkpoint_dialog(win)
    assert second == first and _said(win, "Updated run")
    [rec] = Project(project).runs()
    assert rec.epochs == 1 and rec.steps == win.session.step > 0
    assert win.open_checkpoint(example_path("mnist-vae-2d"))
    qtbot.waitUntil(lambda: not isinstance(win.session.model, ForeignModel), timeout=20000)
    assert win.act_save.text() == own_model.SAVE_TEXT
