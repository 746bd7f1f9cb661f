"""Training from the window: snapshots arrive, plots fill, controls act, errors are shown."""

from __future__ import annotations

import time

import numpy as np
from explorer_helpers import train

import explorer.worker as worker_mod
from explorer.run import RunState
from trainer.loop import Trainer, TrainingDiverged


def test_training_fills_plots_map_and_kl(qtbot, window):
    win = window
    train(qtbot, win, epochs=2)
    out = win.run.outcomes[-1]
    assert out.error is None and out.fit is not None and out.fit.epochs_done == 2
    assert win.run.snapshots > 0
    # plots received the per-step curve and one test point per epoch
    assert win.plots.point_count() >= 2
    assert len(win.plots.test_y) == 2
    xs, ys = win.plots.curves["nelbo"].getData()
    assert len(xs) == win.plots.point_count() and np.isfinite(ys).all()
    # the loss went down
    raw = win.plots.raw["nelbo"]
    assert raw[-1] < raw[0]
    # KL bars: one per latent dimension, and the sessions' history matches the trainer's
    assert win.plots.kl_dims is not None and len(win.plots.kl_dims) == win.session.latent_dim
    assert len(win.session.history.epochs) == 2 and win.session.epochs_done == 2
    # the latent map shows the encoded test subset
    assert win.map.point_count() == len(win.session.test_index) > 0
    # the progress bar says we are done
    assert "epoch 2/2" in win.panel.progress.format()
    assert win.run.state is RunState.FINISHED and not win.busy


def test_hover_readout_gives_exact_values(qtbot, window):
    train(qtbot, window, epochs=1)
    text = window.plots.describe(0)
    first = window.plots.raw["nelbo"][0]
    assert f"{first:.3f}" in text and "test −ELBO" in text


def test_views_follow_training_weights(qtbot, window):
    win = window
    before = win.preview.array.copy()
    renders = win.preview.renders
    train(qtbot, win, epochs=1)
    assert win.preview.renders > renders
    assert not np.allclose(before, win.preview.array)


def test_pause_resume_stop(qtbot, window):
    win = window
    win.panel.epochs.setValue(200)
    assert win.start_training()
    qtbot.waitUntil(lambda: win.run.latest is not None and win.run.latest.step > 0, timeout=20000)
    win.run.toggle_pause()
    assert win.run.state is RunState.PAUSED
    qtbot.waitUntil(lambda: win.run.latest is not None and win.run.latest.paused, timeout=5000)
    step = win.run.latest.step
    qtbot.wait(400)
    assert win.run.latest.step == step  # no progress while paused
    win.run.toggle_pause()
    assert win.run.state is RunState.TRAINING
    qtbot.waitUntil(lambda: win.run.latest.step > step, timeout=10000)
    win.run.stop()
    qtbot.waitUntil(lambda: win.run.state is RunState.STOPPED and not win.busy, timeout=5000)
    assert win.run.outcomes[-1].fit.stopped


def test_live_learning_rate_and_beta(qtbot, window):
    win = window
    win.panel.epochs.setValue(200)
    assert win.start_training()
    qtbot.waitUntil(lambda: win.run.latest is not None, timeout=20000)
    win.panel.lr.setText("0.0005")
    win.panel._lr_entered()
    win.panel.beta.setText("0.5")
    win.panel._beta_entered()
    qtbot.waitUntil(
        lambda: abs(win.run.latest.lr - 5e-4) < 1e-12 and abs(win.run.latest.beta - 0.5) < 1e-12,
        timeout=10000,
    )
    win.run.stop()
    qtbot.waitUntil(lambda: not win.busy, timeout=5000)


def test_continue_training_adds_epochs(qtbot, window):
    win = window
    train(qtbot, win, epochs=1)
    steps = win.session.history.last_step
    win.panel.more_epochs.setValue(1)
    assert win.start_training(resume=True)
    qtbot.waitUntil(lambda: len(win.run.outcomes) == 2 and not win.busy, timeout=30000)
    assert win.run.outcomes[-1].error is None
    assert win.session.epochs_done == 2
    assert win.session.history.last_step > steps
    assert len(win.plots.test_y) == 2  # the curves carried on, not restarted


def test_closing_mid_training_stops_the_thread_within_two_seconds(qtbot, window):
    win = window
    win.panel.epochs.setValue(10_000)
    assert win.start_training()
    qtbot.waitUntil(lambda: win.run.latest is not None, timeout=20000)
    thread = win.run.trainer_runner.thread
    assert thread is not None and thread.isRunning()
    t0 = time.perf_counter()
    win.close()
    elapsed = time.perf_counter() - t0
    assert elapsed < 2.0
    assert thread.isFinished() and not thread.isRunning()
    assert not win.run.trainer_runner.alive
    assert win.run.control.stop_requested


def test_out_of_range_setting_shows_message(qtbot, window):
    win = window
    win.panel.lr.setText("5")
    assert not win.start_training()
    assert win.banner.isVisible() and win.banner.level == "error"
    assert "learning rate" in win.banner.text.lower()
    win.panel.lr.setText("fast")
    assert not win.start_training()
    assert "learning rate must be a number" in win.banner.text.lower()
    win.panel.lr.setText("1e-3")
    assert win.start_training()  # still usable
    win.run.stop()
    qtbot.waitUntil(lambda: not win.busy, timeout=10000)


def test_impossible_model_shows_message(qtbot, window):
    win = window
    win.panel.arch.setCurrentIndex(win.panel.arch.findData("conv"))
    win.panel.image_size.setValue(40)  # conv needs 28, 32 or 64 pixels
    qtbot.waitUntil(lambda: win.session.data.image_shape[-1] == 40 and not win.busy, timeout=20000)
    assert not win.start_training()
    assert "conv" in win.banner.text


def test_diverging_run_is_reported_and_app_survives(qtbot, window, monkeypatch):
    class Diverging(Trainer):
        def fit(self, *args, **kwargs):
            raise TrainingDiverged(
                "training diverged at step 3 (loss nan); the model was "
                "restored. Try a lower learning rate."
            )

    monkeypatch.setattr(worker_mod, "Trainer", Diverging)
    win = window
    assert win.start_training()
    qtbot.waitUntil(lambda: bool(win.run.outcomes) and not win.busy, timeout=20000)
    assert win.banner.level == "error" and "diverged" in win.banner.text
    assert win.run.state is RunState.DIVERGED and win.panel.start_btn.isEnabled()
    monkeypatch.setattr(worker_mod, "Trainer", Trainer)
    train(qtbot, win, epochs=1)
    assert win.run.outcomes[-1].error is None


def test_bad_folder_is_reported(qtbot, window, tmp_path):
    win = window
    win.panel.source.setCurrentIndex(win.panel.source.findData("folder"))
    win.panel.root.setText(str(tmp_path / "nope"))
    win.panel.dataSpecChanged.emit()
    qtbot.waitUntil(lambda: win.banner.level == "error" and not win.busy, timeout=10000)
    assert "no such folder" in win.banner.text and "nope" in win.banner.text
    assert win.panel.start_btn.isEnabled()


def test_many_repaints_do_not_exhaust_singletons(qtbot, window):
    """PySide6 6.12.0 leaks references to None and True on CPython < 3.12, which aborts the
    interpreter after some thousands of repaints (pyproject.toml excludes that release):
    thousands of repaints must leave the interpreter running."""
    import sys

    win = window
    for i in range(1500):
        win.sliders.set_value(0, (i % 100) / 25 - 2)
        win.map.move_cursor((i % 50) / 25 - 1, 0.5)
        if i % 10 == 0:
            qtbot.wait(1)
    assert sys.getrefcount(None) > 1000 and sys.getrefcount(True) > 1000


def test_run_status_stays_visible_under_a_message_banner(qtbot, window):
    """QA: with the banner showing, the Run box's status text was clipped."""
    train(qtbot, window, epochs=1)
    window.show_message("A long message " * 40, "error")
    qtbot.wait(50)
    info = window.panel.progress_info
    assert info.isVisible() and info.text()
    assert info.visibleRegion().boundingRect().height() == info.height()
    # the settings scroll, the Run box does not
    assert not window.left_scroll.isAncestorOf(window.panel.run_box)


def test_status_bar_and_run_box_give_the_same_throughput(qtbot, window):
    """QA: the status bar and the Run box showed different img/s for the same run."""
    train(qtbot, window, epochs=1)
    fit = window.run.outcomes[-1].fit
    rate = f"{fit.images_per_second:,.0f} img/s on average"
    assert rate in window.status_run.text()
    assert rate in window.panel.progress_info.text()


def test_empty_plots_say_so_and_kl_axis_is_in_nats(qtbot, window):
    """QA: before training the plots showed bare 0.2-0.8 axes and "nats (x0.001)"."""
    plots = window.plots
    window.session.adopt(window.session.model_config)  # an untrained model: no curves
    plots.refresh()
    for w in (plots.loss_plot, plots.kl_plot, plots.dim_plot):
        assert w.empty_text.isVisible()
        assert not w.getPlotItem().getAxis("left").style["showValues"]
    train(qtbot, window, epochs=1)
    window.plots.refresh()
    for w in (plots.loss_plot, plots.kl_plot, plots.dim_plot):
        assert not w.empty_text.isVisible()
        assert w.getPlotItem().getAxis("left").style["showValues"]
    window.session.set_kl(np.array([2e-4, 5e-4]))  # tiny values: still plain nats
    plots.refresh()
    axis = plots.dim_plot.getPlotItem().getAxis("left")
    assert axis.autoSIPrefixScale == 1.0 and "x0.001" not in axis.labelString()
    lo, hi = plots.dim_plot.getPlotItem().vb.viewRange()[1]
    assert abs(lo) < 1e-9 and hi > 0


def test_workers_are_destroyed_on_the_gui_thread(qtbot, window):
    """A worker destroyed in its own thread takes the GIL inside Qt's destructor while
    holding Qt's connection lock: with the GUI thread holding the GIL and waiting for that
    lock, the two deadlock (a test run hung so). Workers must die on the GUI thread."""
    import threading

    from PySide6.QtCore import Qt

    win = window
    where = []
    runner = win.run.trainer_runner
    real_start = runner.start

    def start(worker, connect=None):
        worker.destroyed.connect(
            lambda *_: where.append(threading.get_ident()), Qt.DirectConnection
        )
        real_start(worker, connect)

    runner.start = start
    train(qtbot, win, epochs=1)
    qtbot.waitUntil(lambda: bool(where), timeout=5000)
    assert where == [threading.main_thread().ident]


def test_a_run_that_ends_far_worse_than_its_best_says_so(qtbot, window, monkeypatch):
    import explorer.run as run_mod

    seen = []

    def rule(history, since_epoch=0):
        seen.append((len(history.epochs), since_epoch))
        return "the final test -ELBO, 900.00 nats after epoch 2, is far worse than the best"

    monkeypatch.setattr(run_mod, "final_loss_warning", rule)
    train(qtbot, window, epochs=2)
    assert seen == [(2, 0)]  # judged once, on the run's whole history
    level, text = window.banner.history[-1]
    assert level == "warning" and text.startswith("The final test -ELBO, 900.00 nats")
