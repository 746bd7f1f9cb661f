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


def user_vae_source(latent: int) -> str:
    """A user's own model file, written as people write one: an MLP VAE on 12 x 12 images
    whose ``encode`` gives ``(mu, logvar)``, and a ``build()`` that makes it (seeded)."""
    return f"""
import torch
from torch import nn


class VAE(nn.Module):
    def __init__(self, d={latent}):
        super().__init__()
        self.enc = nn.Sequential(nn.Flatten(), nn.Linear(144, 2 * d))
        self.dec = nn.Linear(d, 144)

    def encode(self, x):
        return self.enc(x).chunk(2, dim=1)

    def decode(self, z):
        return self.dec(z)


def build():
    torch.manual_seed(0)
    return VAE()
"""
