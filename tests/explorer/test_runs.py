"""Runs side by side: every run trained, checkpoint opened or --out folder added is kept in
the project folder; runs overlay their curves, say which settings differ, open in the
explorer, carry what Evaluate measured, and are still there in the next session."""

from __future__ import annotations

import pytest
from explorer_helpers import train
from PySide6.QtCore import QSettings

from trainer import examples as ex
from trainer.__main__ import main as cli
from trainer.runs import Project


@pytest.fixture
def win(make_window, settings_path, tmp_path):
    s = QSettings(str(settings_path), QSettings.IniFormat)
    s.setValue("runs/project", str(tmp_path / "project"))
    s.sync()
    return make_window()


def test_a_trained_run_and_opened_files_are_kept(qtbot, win, tmp_path):
    train(qtbot, win, epochs=2)
    recs = win.projects.records
    assert len(recs) == 1 and recs[0].source == "trained" and recs[0].epochs == 2
    assert [e for e, _ in recs[0].curve] == [1, 2] and win.projects.current_id == recs[0].id
    assert win.session.unsaved  # the project's copy is no file of the user's: quit still asks
    for name in ("mnist-vae-2d", "mnist-vae-20d", "mnist-vae-2d"):  # the same file: one run
        assert win.open_checkpoint(ex.example_path(name))
        qtbot.waitUntil(lambda: not win.busy, timeout=10000)
    assert [r.source for r in win.projects.records] == ["trained", "opened", "opened"]
    assert win.runs_view.table.rowCount() == 3
    # opening a run kept here (a run trained in the window too) adds nothing
    win.runs_view.select([recs[0].id])
    win.runs_view.open_selected()
    qtbot.waitUntil(lambda: not win.busy, timeout=10000)
    assert len(win.projects.records) == 3 and win.projects.current_id == recs[0].id
    # the project is a folder: the next session (or the CLI) finds the same runs
    again = Project(tmp_path / "project").runs()
    assert [r.id for r in again] == [r.id for r in win.projects.records]


def test_runs_overlay_their_curves_say_what_differs_and_open(qtbot, win, tmp_path):
    for name in ("mnist-vae-2d", "mnist-vae-20d"):
        assert win.open_checkpoint(ex.example_path(name))
        qtbot.waitUntil(lambda: not win.busy, timeout=10000)
    ids = [r.id for r in win.projects.records]
    view = win.runs_view
    view.select(ids)
    assert set(view.curves) == set(ids)
    assert "latent 2 / 20" in view.diff.text() and "epochs" not in view.diff.text()
    assert win.export_runs(tmp_path / "runs.png")
    from PIL import Image

    with Image.open(tmp_path / "runs.png") as im:
        assert im.size[0] >= 1200
    assert not win.export_runs(tmp_path / "runs.jpg") and ".png" in win.banner.text
    view.select(ids[:1])
    view.open_selected()
    qtbot.waitUntil(lambda: not win.busy, timeout=10000)
    assert win.session.latent_dim == 2 and win.projects.current_id == ids[0]


def test_the_question_before_dropping_a_trained_model_says_the_run_is_kept(qtbot, win, asked):
    train(qtbot, win, epochs=1)
    assert win.open_checkpoint(ex.example_path("mnist-vae-2d"))
    assert asked.questions and asked.kept == win.projects.folder
    from explorer.dialogs import question

    box = question(None, "open it", "2-D VAE", kept=win.projects.folder)
    assert "stays among the runs" in box.informativeText()


def test_evaluate_results_are_kept_with_the_run(qtbot, win, tmp_path):
    assert win.open_checkpoint(ex.example_path("mnist-vae-2d"))
    qtbot.waitUntil(lambda: not win.busy, timeout=10000)
    win.eval_controls.k.setValue(5)
    assert win.evaluate()
    qtbot.waitUntil(lambda: not win.evaluation.running, timeout=60000)
    rec = win.projects.get(win.projects.current_id)
    assert rec.metrics["test_nll_iw"] == pytest.approx(win.evaluation.result["test_nll_iw"])
    cells = [win.runs_view.table.item(0, c).text() for c in range(8)]
    assert cells[7] == f"{rec.metrics['test_nll_iw']:.2f}"


def test_latent_train_out_folders_are_runs_too(qtbot, win, tmp_path, capsys):
    out = tmp_path / "cli-run"
    assert cli(["train", "--dataset", "shapes", "--shapes-count", "300", "--epochs", "1",
                "--latent-dim", "3", "--out", str(out)]) == 0  # fmt: skip
    rec = win.projects.add_folder(out)
    assert rec is not None and rec.source == "folder" and rec.model["latent_dim"] == 3
    assert "test_nelbo" in rec.metrics
    assert cli(["runs", "--project", str(tmp_path / "project")]) == 0
    assert "cli-run" in capsys.readouterr().out
    assert win.projects.add_folder(tmp_path) is None  # not a run folder: said, not raised
    assert "checkpoint.safetensors" in win.banner.text
    assert cli(["runs", "--project", str(tmp_path / "project"), "--add", str(tmp_path)]) == 2
    assert "has no checkpoint.safetensors" in capsys.readouterr().err
