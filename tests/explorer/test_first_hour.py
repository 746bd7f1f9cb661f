"""A new user's first hour: one run state every label reads, nothing lost, plain words.

Each test drives the window the way the new-user tour did and checks what a person sees.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from explorer_helpers import train
from PySide6.QtCore import QPoint, QSettings, Qt
from PySide6.QtGui import QFontMetrics
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QFileDialog

import explorer.worker as worker_mod
from explorer import dialogs
from explorer.run import RunState
from trainer.checkpoint import load_checkpoint
from trainer.loop import Trainer, TrainingDiverged


def _start_long_run(qtbot, win, epochs=10_000):
    win.panel.epochs.setValue(epochs)
    assert win.start_training()
    qtbot.waitUntil(lambda: win.run.latest is not None, timeout=20000)


def _wait_idle(qtbot, win, timeout=20000):
    qtbot.waitUntil(lambda: not win.busy, timeout=timeout)


# -- one owner of the run's state -------------------------------------------------------------
def test_data_error_goes_away_once_other_data_trains(qtbot, window, tmp_path):
    """QA: "Could not load this data (see the message below)" stayed after switching to
    Shapes and training."""
    win = window
    p = win.panel
    p.source.setCurrentIndex(p.source.findData("folder"))
    p.root.setText(str(tmp_path / "missing"))
    p.dataSpecChanged.emit()
    qtbot.waitUntil(lambda: win.banner.level == "error" and not win.busy, timeout=10000)
    assert "Could not load" in p.data_info.text() and win.banner.isVisible()
    p.source.setCurrentIndex(p.source.findData("shapes"))  # and straight to Train
    train(qtbot, win, epochs=1)
    assert "Could not load" not in p.data_info.text()
    assert p.data_info.text().startswith("800 train / 200 test")
    assert not win.banner.isVisible() or win.banner.level != "error"


def test_a_diverged_run_shows_its_own_kl_not_the_previous_runs(qtbot, window, monkeypatch):
    """QA: after a divergence, a 2-D model's KL plot still said "4/4 active"."""
    win = window
    win.panel.latent.setValue(4)
    train(qtbot, win, epochs=1)
    assert "/4 active" in win.plots.dim_plot.getPlotItem().titleLabel.text

    class Diverging(Trainer):
        def fit(self, *args, **kwargs):
            raise TrainingDiverged(
                "training diverged at step 3 (loss nan); the model was "
                "restored to the end of epoch 0."
            )

    monkeypatch.setattr(worker_mod, "Trainer", Diverging)
    win.panel.latent.setValue(2)
    assert win.start_training()
    _wait_idle(qtbot, win)
    win.tick()
    assert win.run.state is RunState.DIVERGED
    assert win.session.latent_dim == 2 and len(win.plots.kl_dims) == 2
    assert "/2 active" in win.plots.dim_plot.getPlotItem().titleLabel.text
    assert win.panel.progress.format().startswith("diverged")


def test_opening_a_checkpoint_clears_the_previous_runs_numbers(qtbot, window, tmp_path):
    """QA: after opening a checkpoint, the Run box showed the previous run's numbers."""
    win = window
    train(qtbot, win, epochs=1)
    path = win.save_checkpoint(tmp_path / "one")
    train(qtbot, win, epochs=2)
    assert "step" in win.panel.progress_info.text()
    assert win.open_checkpoint(path)
    _wait_idle(qtbot, win)
    assert win.run.state is RunState.READY
    assert win.panel.progress.format() == "idle"
    assert win.panel.progress_info.text() == "Opened one.safetensors: 1 epoch trained."
    assert win.status_run.text() == ""  # no summary of a run this model did not have


def test_stop_says_the_same_epochs_everywhere(qtbot, window):
    """QA: Stop showed "epoch 27/80 · done" while the status bar said "Stopped: 26 epochs"."""
    win = window
    _start_long_run(qtbot, win, epochs=300)
    qtbot.waitUntil(lambda: win.session.epochs_done >= 1, timeout=20000)
    win.run.stop()
    assert win.run.state is RunState.STOPPING
    _wait_idle(qtbot, win)
    done = win.session.epochs_done
    assert win.run.state is RunState.STOPPED
    assert win.panel.progress.format() == f"stopped after {done} of 300 epochs"
    assert win.status_run.text().startswith(f"Stopped after {done} of 300 epochs: ")
    assert "done" not in win.panel.progress.format()


def test_train_says_preparing_at_once(qtbot, window):
    """QA: the first Train looked dead for seconds: "idle / Press Train to start" while
    Pause and Stop were already enabled."""
    win = window
    win.panel.epochs.setValue(1)
    assert win.start_training()
    p = win.panel  # before any event is processed
    assert p.progress.format() == "preparing…" and p.progress.maximum() == 0
    assert p.progress_info.text() != "Press Train to start."
    assert p.stop_btn.isEnabled() and not p.pause_btn.isEnabled() and not p.start_btn.isEnabled()
    _wait_idle(qtbot, win, 60000)


def test_continue_offers_what_a_stopped_run_left(qtbot, window):
    """QA: Continue after a stop added the full Epochs count again (26 done, target 106)."""
    win = window
    _start_long_run(qtbot, win, epochs=60)
    qtbot.waitUntil(lambda: win.session.epochs_done >= 1, timeout=20000)
    win.run.stop()
    _wait_idle(qtbot, win)
    done = win.session.epochs_done
    assert win.panel.more_epochs.value() == 60 - done
    assert "more epochs" in win.panel.continue_btn.toolTip() or win.panel.more_epochs.isVisible()
    win.panel.more_epochs.setValue(1)
    assert win.start_training(resume=True)
    _wait_idle(qtbot, win, 60000)
    assert win.session.epochs_done == done + 1
    assert win.panel.progress.format() == f"epoch {done + 1}/{done + 1}  ·  finished"


# -- nothing lost -----------------------------------------------------------------------------
def test_closing_during_training_asks_and_cancel_keeps_working(qtbot, window, asked):
    win = window
    _start_long_run(qtbot, win)
    qtbot.waitUntil(lambda: win.session.unsaved, timeout=20000)
    asked.answer = dialogs.CANCEL
    win.close()
    assert asked.questions and asked.questions[-1][0] == "quit"
    assert win.isVisible() and win.run.state is RunState.TRAINING
    asked.answer = dialogs.DISCARD
    win.close()
    assert not win.isVisible() and not win.run.trainer_runner.alive


def test_closing_during_training_can_save_the_model(qtbot, window, asked, tmp_path, monkeypatch):
    win = window
    _start_long_run(qtbot, win)
    qtbot.waitUntil(lambda: win.session.epochs_done >= 1, timeout=20000)
    target = tmp_path / "kept.safetensors"
    monkeypatch.setattr(
        QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(target), ""))
    )
    asked.answer = dialogs.SAVE
    win.close()
    assert not win.isVisible()
    ck = load_checkpoint(target)
    assert ck.epochs_done == win.session.epochs_done >= 1
    assert ck.optimizer_state is not None and ck.step == win.session.step


def test_train_on_an_unsaved_model_asks_first(qtbot, window, asked, tmp_path, monkeypatch):
    win = window
    train(qtbot, win, epochs=1)
    assert win.session.unsaved and "not saved" in win.status_model.text()
    weights = {k: v.clone() for k, v in win.session.model.state_dict().items()}
    asked.answer = dialogs.CANCEL
    assert not win.start_training()
    assert asked.questions[-1][0] == "train a new model"
    assert all(torch.equal(v, weights[k]) for k, v in win.session.model.state_dict().items())
    # saved models are not asked about
    monkeypatch.setattr(
        QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(tmp_path / "m"), ""))
    )
    asked.answer = dialogs.SAVE
    n = len(asked.questions)
    train(qtbot, win, epochs=1)
    assert len(asked.questions) == n + 1 and (tmp_path / "m.safetensors").exists()


def test_saving_mid_run_keeps_the_optimizer_state(qtbot, window, tmp_path):
    win = window
    _start_long_run(qtbot, win)
    path = win.save_checkpoint(tmp_path / "mid")
    qtbot.waitUntil(lambda: path.exists(), timeout=10000)
    qtbot.waitUntil(lambda: "Saved" in win.banner.text, timeout=10000)
    ck = load_checkpoint(path)
    assert ck.optimizer_state is not None and ck.optimizer_state["state"]
    assert ck.step > 0 and len(ck.optimizer_state["state"]) == len(list(ck.model.parameters()))
    win.run.stop()
    _wait_idle(qtbot, win)


def test_two_epochs_equal_one_plus_save_open_and_one_more(qtbot, make_window, tmp_path):
    """Continue after opening a checkpoint resumes exactly: the same weights as a run that
    never stopped (same seed), to float tolerance."""
    straight = make_window()
    train(qtbot, straight, epochs=2)
    expected = {k: v.clone() for k, v in straight.session.model.state_dict().items()}
    straight.close()

    first = make_window()
    train(qtbot, first, epochs=1)
    path = first.save_checkpoint(tmp_path / "half")
    first.close()
    again = make_window()
    assert again.open_checkpoint(path)
    _wait_idle(qtbot, again)
    again.panel.more_epochs.setValue(1)
    assert again.start_training(resume=True)
    _wait_idle(qtbot, again, 60000)
    assert again.session.epochs_done == 2
    for k, v in again.session.model.state_dict().items():
        torch.testing.assert_close(v, expected[k], rtol=1e-5, atol=1e-6)


def test_autosave_is_offered_after_a_crash_and_opens_unsaved(qtbot, make_window, tmp_path):
    """A window that dies leaves its recovery file; the next window offers it."""
    folder = tmp_path / "recovery"
    win = make_window(recovery=folder)
    win.run.autosave_every = 0
    train(qtbot, win, epochs=2)
    assert win.recovery.path.exists()  # autosaved at the epoch ends
    epochs = win.session.epochs_done
    win.recovery._lock.unlock()  # as if the process had been killed: nobody holds it
    win.recovery._lock = None
    win.ask_on_close = False
    win.hide()
    again = make_window(recovery=folder)
    qtbot.waitUntil(lambda: again.banner.topic == "recovery", timeout=5000)
    text = again.banner.text
    assert "did not close normally last time. The model it was training was autosaved at" in text
    assert text.endswith(": open it to save it or to train it further."), text
    opened = [b for b in again.banner.action_buttons if b.text() == "Open it"]
    opened[0].click()
    _wait_idle(qtbot, again)
    assert again.session.epochs_done == epochs and again.session.unsaved
    assert again.recovery.path.exists()  # protected until the user saves it


def test_a_recovered_model_continues_its_run(qtbot, make_window, tmp_path):
    """A model recovered after a kill, continued, became a second run beside its own (its
    film not carried on), and another run was marked as the current one."""
    folder = tmp_path / "recovery"
    win = make_window(recovery=folder)
    win.projects.set_folder(tmp_path / "project")
    win.run.autosave_every = 0
    train(qtbot, win, epochs=2)
    qtbot.waitUntil(lambda: len(win.projects.records) == 1, timeout=10000)
    rid = win.projects.records[0].id
    assert win.projects.current_id == rid
    win.recovery._lock.unlock()  # as if the process had been killed
    win.recovery._lock = None
    win.ask_on_close = False
    win.hide()
    again = make_window(recovery=folder)
    again.projects.set_folder(tmp_path / "project")
    qtbot.waitUntil(lambda: again.banner.topic == "recovery", timeout=5000)
    [b for b in again.banner.action_buttons if b.text() == "Open it"][0].click()
    _wait_idle(qtbot, again)
    assert again.projects.current_id == rid  # the run it is (the bold row)
    frames = len(win.projects.project.film(win.projects.get(rid)))
    assert frames > 0 and len(again.film.current()) == frames  # its film came back
    assert again.start_training(resume=True, epochs=1)
    _wait_idle(qtbot, again)
    qtbot.waitUntil(lambda: again.projects.get(rid).epochs == 3, timeout=10000)
    assert [r.id for r in again.projects.records] == [rid]  # one run, not two
    assert again.projects.get(rid).film > frames  # its film carried on


# -- words and small surprises ----------------------------------------------------------------
def test_window_messages_name_the_windows_fields_and_go_away(qtbot, window, tmp_path):
    """QA: "--dataset idx needs --images FILE" in the window, and it stayed."""
    win = window
    p = win.panel
    p.source.setCurrentIndex(p.source.findData("idx"))
    p.dataSpecChanged.emit()
    assert "Data ▸ Images" in win.banner.text and "--" not in win.banner.text
    images = tmp_path / "img.idx"  # 20 blank 28x28 images in the IDX format
    images.write_bytes(
        bytes([0, 0, 8, 3]) + np.array([20, 28, 28], ">u4").tobytes() + bytes(20 * 784)
    )
    p.images.setText(str(images))
    p.dataSpecChanged.emit()
    _wait_idle(qtbot, win)
    assert not win.banner.isVisible()
    assert p.data_info.text().startswith("16 train / 4 test")


@pytest.mark.parametrize(
    "typed, value, words",
    [
        ("1000", 256, "Latent size must be 1 to 256; 1000 was changed to 256."),
        ("0", 1, "Latent size must be 1 to 256; 0 was changed to 1."),
    ],
)
def test_out_of_range_numbers_are_clamped_with_a_message(qtbot, window, typed, value, words):
    """QA: latent size 0 silently became 2, and typing 1000 left 100."""
    box = window.panel.latent
    box.setFocus()
    box.lineEdit().selectAll()
    QTest.keyClicks(box, typed)
    assert box.lineEdit().text() == typed  # every digit was taken
    QTest.keyClick(box, Qt.Key_Return)
    assert box.value() == value
    assert window.banner.text == words


def test_space_in_a_number_field_pauses(qtbot, window):
    """QA: Space typed into a focused text field instead of pausing."""
    win = window
    _start_long_run(qtbot, win)
    win.activateWindow()
    win.panel.lr.setFocus()
    QTest.keyClick(win.panel.lr, Qt.Key_Space)
    assert win.run.state is RunState.PAUSED
    assert win.panel.lr.text() == "1e-3"
    win.run.stop()
    _wait_idle(qtbot, win)


def test_clicking_a_plot_takes_the_focus_from_a_text_field(qtbot, window):
    """QA: clicking a plot did not take focus from a text field."""
    win = window
    win.activateWindow()
    win.panel.lr.setFocus()
    assert win.focusWidget() is win.panel.lr
    view = win.map.plot
    QTest.mouseClick(view.viewport(), Qt.LeftButton, Qt.NoModifier, QPoint(20, 20))
    assert win.focusWidget() is not win.panel.lr


def test_kl_labels_of_a_100_d_latent_do_not_overlap(qtbot, window):
    """QA: with a 100-D latent the KL bar labels overlapped."""
    plots = window.plots
    window.session.set_kl(np.linspace(0, 1, 100))
    plots.refresh()
    ticks = plots.dim_plot.getPlotItem().getAxis("bottom")._tickLevels[0]
    xs = [x for x, _ in ticks]
    vb = plots.dim_plot.getPlotItem().getViewBox()
    px_per_bar = vb.width() / (vb.viewRange()[0][1] - vb.viewRange()[0][0])
    widest = max(QFontMetrics(plots.font()).horizontalAdvance(t) for _, t in ticks)
    assert (xs[1] - xs[0]) * px_per_bar >= widest
    assert 2 < len(ticks) <= 100


def test_the_message_bar_does_not_squeeze_the_settings(qtbot, window):
    """QA: the message bar pushed the left panel into a scroll bar."""
    win = window
    win.resize(1480, 920)
    qtbot.wait(50)
    before = win.left.height()
    win.show_message("A long message " * 30, "error")
    qtbot.wait(50)
    assert win.left.height() == before


# -- found by a second new-user tour ----------------------------------------------------------
def test_a_settings_error_goes_away_once_the_setting_is_fixed(qtbot, window):
    win = window
    win.panel.lr.setText("abc")
    assert not win.start_training()
    assert win.banner.level == "error" and "learning rate" in win.banner.text.lower()
    win.panel.lr.setText("1e-3")
    win.panel.lr.editingFinished.emit()
    assert not win.banner.isVisible()


def test_open_while_training_says_so_before_any_file_dialog(qtbot, window, monkeypatch):
    def no_dialog(*a, **k):
        raise AssertionError("a file dialog opened although nothing can be opened now")

    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(no_dialog))
    win = window
    _start_long_run(qtbot, win)
    win.open_checkpoint_dialog()
    assert "Stop training before opening" in win.banner.text
    win.run.stop()
    _wait_idle(qtbot, win)
    assert not win.banner.isVisible()  # the run has stopped: the warning is done


def test_continue_after_a_stop_inside_an_epoch_counts_steps_right(qtbot, window):
    """QA: Stop inside epoch 9, Continue: epoch 9 started again while the step counter ran
    on ("step 4,036/9,617"), and the summary counted the model's steps, not the run's."""
    win = window
    _start_long_run(qtbot, win, epochs=4)
    spe = -(-800 // 128)  # 800 training shapes, batch 128
    qtbot.waitUntil(lambda: win.session.step >= spe + 2, timeout=20000)
    win.run.stop()
    _wait_idle(qtbot, win)
    stopped_at = win.session.step
    assert win.session.epochs_done == stopped_at // spe
    summary = win.status_run.text()
    assert f": {stopped_at:,} steps of training in" in summary  # this run's (the first)
    win.panel.more_epochs.setValue(4 - win.session.epochs_done)
    assert win.start_training(resume=True)
    qtbot.waitUntil(lambda: win.run.latest is not None, timeout=20000)
    assert win.run.latest.total_steps == 4 * spe  # not 4 epochs' worth from the stop
    _wait_idle(qtbot, win, 60000)
    assert win.session.step == 4 * spe and win.session.epochs_done == 4
    assert f": {4 * spe - stopped_at:,} steps of training in" in win.status_run.text()


def test_the_question_holds_the_run_while_it_is_open(qtbot, window, asked):
    """QA: the Ctrl+Q question said "6 epochs" while training went on to 15 behind it."""
    win = window
    _start_long_run(qtbot, win)
    qtbot.waitUntil(lambda: win.session.unsaved, timeout=20000)
    asked.answer = dialogs.CANCEL
    asked.probe = lambda: win.run.state
    win.close()
    assert asked.seen == [RunState.PAUSED]
    assert win.run.state is RunState.TRAINING  # Cancel: it goes on
    win.run.stop()
    _wait_idle(qtbot, win)


def test_continue_and_the_train_menu_follow_the_run(qtbot, window):
    win = window
    p = win.panel
    assert not p.continue_btn.isEnabled() and not win.act_continue.isEnabled()  # untrained
    _start_long_run(qtbot, win)
    assert not win.act_continue.isEnabled() and win.act_stop.isEnabled()
    win.run.stop()
    _wait_idle(qtbot, win)
    assert p.continue_btn.isEnabled() and win.act_continue.isEnabled()
    assert not win.act_stop.isEnabled()


def test_the_kl_title_goes_with_the_model(qtbot, window):
    win = window
    train(qtbot, win, epochs=1)
    title = win.plots.dim_plot.getPlotItem().titleLabel
    assert "active" in title.text
    win.session.adopt(win.session.model_config)  # another, untrained model
    win.plots.refresh()
    assert "active" not in title.text


def test_the_question_says_where_an_earlier_save_is(qtbot, tmp_path):
    """QA: a model saved to a file and trained further was said to be "in no file"."""
    box = dialogs.question(None, "quit", "2-D VAE trained 10 epochs on MNIST", tmp_path / "a.st")
    qtbot.addWidget(box)
    assert "trained further since it was saved to a.st" in box.informativeText()
    box = dialogs.question(None, "quit", "2-D VAE trained 10 epochs on MNIST")
    qtbot.addWidget(box)
    assert "is not saved in any file" in box.informativeText()


def test_choosing_good_data_again_clears_a_failed_load(qtbot, window, tmp_path):
    """QA: after a failed folder and back to the loaded data, "Could not load this data"
    and "failed" stayed until the next Train."""
    win = window
    p = win.panel
    p.source.setCurrentIndex(p.source.findData("folder"))
    p.root.setText(str(tmp_path / "missing"))
    p.dataSpecChanged.emit()
    _wait_idle(qtbot, win)
    assert win.start_training()  # tries the missing folder again
    _wait_idle(qtbot, win)
    assert win.run.state is RunState.FAILED
    p.source.setCurrentIndex(p.source.findData("shapes"))
    _wait_idle(qtbot, win)
    assert win.run.state is RunState.READY
    assert "Could not load" not in p.data_info.text() and p.progress.format() == "idle"


def test_a_long_load_shows_how_far_it_has_got(qtbot, make_window, tmp_path):
    ini = tmp_path / "big.ini"
    s = QSettings(str(ini), QSettings.IniFormat)
    s.setValue("train/source", "shapes")
    s.setValue("train/shapes_count", 100000)
    s.sync()
    win = make_window(ini, wait_data=False)
    seen = []
    bar = win.panel.progress
    win.run.changed.connect(  # after the panel has rendered the status
        lambda st: seen.append((st.state.value, st.progress, bar.format(), bar.value()))
    )
    qtbot.waitUntil(lambda: win.session.data is not None and not win.busy, timeout=60000)
    loading = [(p, text, v) for state, p, text, v in seen if state == "loading" and p is not None]
    assert loading and all(0 < p <= 1 for p, _, _ in loading), seen[:5]
    p, text, value = loading[-1]
    assert text == f"loading data… {p:.0%}" and value == round(1000 * p)


def test_a_message_keeps_a_file_name_it_starts_with(window):
    """The message bar capitalised every message: "pipe.png: …" showed as "Pipe.png: …"."""
    window.show_message("pipe.png: is not a file (a named pipe)", "error")
    assert window.banner.text.startswith("pipe.png: is not a file")
    window.show_message("--images does not apply to --dataset shapes", "error")
    assert window.banner.text.startswith("--images")
    window.show_message("the final test -ELBO is far worse", "warning")
    assert window.banner.text.startswith("The final test")


@pytest.mark.parametrize(
    "typed, value, words",
    [
        ("6", 4.0, "z0 must be -4.00 to 4.00; 6.00 was changed to 4.00."),
        ("-5.5", -4.0, "z0 must be -4.00 to 4.00; -5.50 was changed to -4.00."),
    ],
)
def test_a_latent_typed_out_of_range_is_clamped_with_a_message(qtbot, window, typed, value, words):
    """A z of 6 typed into a slider's box was dropped without a word."""
    box = window.sliders.rows[0][2]
    box.setFocus()
    box.lineEdit().selectAll()
    QTest.keyClicks(box, typed)
    assert box.lineEdit().text() == typed
    QTest.keyClick(box, Qt.Key_Return)
    assert box.value() == value and window.session.z[0].item() == pytest.approx(value)
    assert window.banner.text == words
