"""Helpers shared by the explorer tests."""

from __future__ import annotations

from explorer.window import MainWindow

SHAPES = 1000  # images in the built-in shapes set for tests: an epoch is a fraction of a second


def train(qtbot, win: MainWindow, epochs: int = 1, timeout: int = 60000, **panel) -> None:
    """Run ``epochs`` epochs to the end and wait for the outcome."""
    win.panel.epochs.setValue(epochs)
    for key, value in panel.items():
        widget = getattr(win.panel, key)
        if hasattr(widget, "setCurrentIndex"):
            widget.setCurrentIndex(widget.findData(value))
        elif hasattr(widget, "setText"):
            widget.setText(str(value))
        else:
            widget.setValue(value)
    n = len(win.run.outcomes)
    assert win.start_training(), win.banner.history
    qtbot.waitUntil(lambda: len(win.run.outcomes) > n and not win.busy, timeout=timeout)
    win.tick()
