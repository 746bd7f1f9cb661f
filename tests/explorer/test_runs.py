"""Runs side by side: every run trained, checkpoint opened or --out folder added is kept in
the project folder; runs overlay their curves, say which settings differ, open in the
explorer, carry what Evaluate measured, and are still there in the next session."""

from __future__ import annotations

import pytest
from explorer_helpers import train
from PySide6.QtCore import QSettings

from trainer import examples as ex
from trainer.__main__ import main as cli
from trainer.checkpoint import load_checkpoint
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
    assert (
        cli(
            [
                "train",
                "--dataset",
                "shapes",
                "--shapes-count",
                "300",
                "--epochs",
                "1",
                "--latent-dim",
                "3",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    rec = win.projects.add_folder(out)
    assert rec is not None and rec.source == "folder" and rec.model["latent_dim"] == 3
    assert "test_nelbo" in rec.metrics
    assert cli(["runs", "--project", str(tmp_path / "project")]) == 0
    assert "cli-run" in capsys.readouterr().out
    assert win.projects.add_folder(tmp_path) is None  # not a run folder: said, not raised
    assert "checkpoint.safetensors" in win.banner.text
    assert cli(["runs", "--project", str(tmp_path / "project"), "--add", str(tmp_path)]) == 2
    assert "has no checkpoint.safetensors" in capsys.readouterr().err


def _wait(qtbot, win, n: int) -> None:
    qtbot.waitUntil(lambda: len(win.run.outcomes) > n and not win.busy, timeout=60000)
    win.tick()


def test_a_stop_and_its_continues_are_one_run(qtbot, win):
    win.panel.epochs.setValue(40)
    assert win.start_training()
    qtbot.waitUntil(lambda: win.session.epochs_done >= 2, timeout=60000)
    win.run.stop()
    _wait(qtbot, win, 0)
    assert len(win.projects.records) == 1
    first = win.projects.records[0]
    stopped = first.epochs
    for k, more in enumerate((2, 3)):  # Continue, then Continue 3 more
        assert win.start_training(resume=True, epochs=more)
        _wait(qtbot, win, k + 1)
    recs = win.projects.records
    assert len(recs) == 1 and win.runs_view.table.rowCount() == 1
    rec = recs[0]
    assert rec.id == first.id == win.projects.current_id and rec.name == first.name
    assert rec.epochs == win.session.epochs_done >= stopped + 5 and rec.steps == win.session.step
    assert [e for e, _ in rec.curve] == list(range(1, rec.epochs + 1))  # the whole history
    assert win.runs_view.table.item(0, 5).text() == str(rec.epochs)
    assert load_checkpoint(rec.checkpoint).step == win.session.step  # the model as it is now
    win.runs_view.select([rec.id])
    xs, _ys = win.runs_view.curves[rec.id].getData()
    assert list(xs) == list(range(1, rec.epochs + 1)) and len(win.runs_view.curves) == 1
    # Train makes a new model: a new run
    train(qtbot, win, epochs=1)
    assert len(win.projects.records) == 2 and win.projects.records[0].epochs == rec.epochs


def test_a_continued_example_is_a_run_of_its_own_named_after_it(qtbot, win):
    assert win.open_checkpoint(ex.example_path("shapes-vae-10d"))
    qtbot.waitUntil(lambda: not win.busy, timeout=20000)
    example = win.projects.records[0]
    assert "4,800 of 6,000" in win.runs_view.table.item(0, 1).text()  # what it was trained on
    assert win.start_training(resume=True, epochs=1)
    _wait(qtbot, win, 0)
    recs = win.projects.records
    assert [r.source for r in recs] == ["opened", "trained"]
    assert recs[1].name == f"{example.name}, continued" and recs[1].epochs == example.epochs + 1
    assert recs[0].epochs == example.epochs  # the example's file is not the model any more


def test_the_film_is_kept_with_its_run_and_comes_back_with_it(qtbot, win, tmp_path):
    train(qtbot, win, epochs=2)
    frames = len(win.film.film)
    rec = win.projects.records[0]
    assert frames > 2 and rec.film == frames
    assert (tmp_path / "project" / "runs" / rec.id / "film.bin").is_file()
    assert f"{frames} frames" in win.runs_view.table.item(0, 8).text()
    # another model: its own film (none)
    assert win.open_checkpoint(ex.example_path("mnist-vae-2d"))
    qtbot.waitUntil(lambda: not win.busy, timeout=20000)
    assert win.film.film is None and "No film yet" in win.film_view.status.text()
    # the run opened again from the Runs tab brings its film back
    win.runs_view.select([rec.id])
    win.runs_view.open_selected()
    qtbot.waitUntil(lambda: not win.busy, timeout=20000)
    assert win.projects.current_id == rec.id
    assert win.film.film is not None and len(win.film.film) == frames
    assert len(win.film_view.frames) == frames and "No film yet" not in win.film_view.status.text()
    win.tabs.setCurrentWidget(win.film_view.parentWidget())
    assert win.film_view.render(force=True)
    # Continue carries it on, and the run keeps the longer film
    kept = win.film.film
    assert win.start_training(resume=True, epochs=1)
    _wait(qtbot, win, 1)
    assert win.film.film is kept and len(kept) > frames
    assert [r.film for r in win.projects.records] == [len(kept), 0]
    # a damaged film file: one message, nothing shown, the Runs tab goes on working
    path = tmp_path / "project" / "runs" / rec.id / "film.bin"
    blob = bytearray(path.read_bytes())
    blob[-10] ^= 0xFF
    path.write_bytes(bytes(blob))
    assert win.open_checkpoint(ex.example_path("mnist-vae-2d"))
    qtbot.waitUntil(lambda: not win.busy, timeout=20000)
    win.runs_view.select([rec.id])
    win.runs_view.open_selected()
    qtbot.waitUntil(lambda: not win.busy, timeout=20000)
    assert win.film.film is None and win.projects.current_id == rec.id
    qtbot.waitUntil(lambda: "checksum" in win.banner.text, timeout=5000)
    assert win.banner.level == "warning"
    assert sum("checksum" in text for _level, text in win.banner.history) == 1
    assert win.runs_view.table.rowCount() == 2
