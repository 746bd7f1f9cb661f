"""The loss curves agree with the numbers: the smoothed curve at a step is close to what the
Run box says at that step (the first, untrained losses do not hold it up), and the raw
values are drawn faintly beneath it."""

from __future__ import annotations

import numpy as np

from explorer.widgets.plots import RAW_ALPHA, smooth_steps
from trainer.loop import History


def _rows(steps, values) -> History:
    h = History()
    for s, v in zip(steps, values, strict=True):
        h.steps.append({"step": s, "epoch": 1, "nelbo": v, "recon": v - 5.0, "kl": 5.0})
    return h


def _smoothed_last(win) -> float:
    win.plots.refresh()
    _x, y = win.plots.curves["nelbo"].getData()
    return float(y[-1])


def test_early_in_a_run_the_smoothed_curve_says_what_the_run_box_says(qtbot, window):
    win = window
    assert win.plots.smooth_box.isChecked()
    # a fast machine: three snapshots by step 47, the first of the untrained model
    steps, values = [1, 24, 47], [553.3, 300.0, 116.8]
    win.session.end_run(None, _rows(steps, values), None, 0, 47)
    assert abs(_smoothed_last(win) - 116.8) < 0.05 * 116.8
    # a slow one: a snapshot every few steps while the loss falls steeply
    steps = [1, 4, 7, 12, 14, 18, 21, 28, 33, 35, 42]
    values = [553.3, 485.9, 384.3, 285.0, 257.3, 243.3, 243.2, 229.1, 219.4, 225.4, 210.9]
    win.session.end_run(None, _rows(steps, values), None, 0, 42)
    assert abs(_smoothed_last(win) - 210.9) < 0.05 * 210.9
    # the raw values are drawn too, faintly, under the smoothed line
    raw = win.plots.raw_curves["nelbo"]
    assert raw.isVisible() and list(raw.getData()[1]) == values
    assert raw.opts["pen"].color().alpha() == RAW_ALPHA < 128
    assert raw.zValue() < win.plots.curves["nelbo"].zValue()
    win.plots.smooth_box.setChecked(False)  # unsmoothed: the raw line itself, once
    assert not raw.isVisible() and list(win.plots.curves["nelbo"].getData()[1]) == values


def test_a_real_run_stopped_early_agrees_with_the_run_box(qtbot, window):
    win = window
    win.panel.epochs.setValue(200)
    assert win.start_training()
    qtbot.waitUntil(lambda: win.run.latest is not None and win.run.latest.step >= 40, timeout=30000)
    win.run.stop()
    qtbot.waitUntil(lambda: not win.busy, timeout=30000)
    win.tick()
    shown = win.run.latest.nelbo  # the Run box's -ELBO
    assert f"{shown:.1f}" in win.run.status.detail
    assert abs(_smoothed_last(win) - shown) < 0.1 * shown


def test_late_in_a_run_the_curve_is_still_smooth():
    rng = np.random.default_rng(0)
    steps = np.arange(3, 30001, 3)
    values = 100 + rng.normal(0, 5, len(steps))
    out = smooth_steps(steps, values)
    assert np.std(out[-500:]) < 0.2 * np.std(values[-500:])
    assert abs(out[-1] - 100) < 1.5


def test_an_autoencoder_s_curves_and_run_box_say_reconstruction_loss(qtbot, window):
    """An autoencoder has no ELBO: its curves and the Run box said "-ELBO"."""
    from trainer import examples as ex

    win = window
    assert win.open_checkpoint(ex.example_path("mnist-ae-2d"))
    qtbot.waitUntil(lambda: not win.busy, timeout=20000)
    plot = win.plots.loss_plot.getPlotItem()
    assert plot.titleLabel.text.startswith("Reconstruction loss (nats / image)")
    names = [label.text for _item, label in plot.legend.items]
    assert names == ["train reconstruction loss", "test reconstruction loss (epoch)"]
    assert "reconstruction loss" in win.plots.describe(0) and "ELBO" not in win.plots.describe(0)
    # a VAE's are its -ELBO again
    assert win.open_checkpoint(ex.example_path("mnist-vae-2d"))
    qtbot.waitUntil(lambda: not win.busy, timeout=20000)
    assert plot.titleLabel.text.startswith("Negative ELBO")
    assert [label.text for _item, label in plot.legend.items][0] == "train −ELBO"


def test_another_model_leaves_no_read_out_of_the_last(qtbot, window):
    """The hover read-out and line of one model stayed over the next model's curves."""
    from explorer_helpers import train

    win = window
    train(qtbot, win, 1)
    win.plots.refresh()
    win.plots.hover.setText(win.plots.describe(0))
    win.plots.cursors[0].show()
    win.session.adopt(win.session.model_config)  # another model
    assert win.plots.hover.text() == "Hover over a plot for exact values."
    assert not any(c.isVisible() for c in win.plots.cursors)


def test_an_evaluation_s_line_does_not_move_the_curves(qtbot, window):
    from PySide6.QtCore import QPoint

    win = window
    qtbot.waitUntil(lambda: not win.busy)
    before = win.plots.mapTo(win, QPoint(0, 0))
    ev = win.evaluation
    for error in ("Stop training before evaluating.", ""):  # a line said, then none
        ev.error = error
        ev.changed.emit()
        qtbot.wait(50)
        assert win.eval_controls.result.text() == error
        assert win.plots.mapTo(win, QPoint(0, 0)) == before
