"""The application's names and limits, in one place.

The command line (``explorer.app``) checks its options against these limits before torch is
imported, and the window and its panel build their fields from the same numbers, so the two
can never disagree. Nothing here imports Qt or torch: every part of ``explorer`` may use it.
"""

from __future__ import annotations

APP_NAME = "Latent Explorer"
VERSION = "0.1.0"  # explorer.__version__
ORG = "latent-explorer"  # the organisation Qt files the settings under

# the window's tabs, in order (Ctrl+1 to Ctrl+9, Ctrl+0, then Ctrl+Shift+F for the Film)
TAB_TITLES = (
    "Explore",
    "Samples",
    "Reconstructions",
    "Interpolation",
    "Class row",
    "Traversals",
    "Posterior",
    "Arithmetic",
    "Draw",
    "Runs",
    "Film",
)
TAB_FULL_TITLES = {"Posterior": "Posterior vs prior"}  # tabs whose title is shortened
TABS = len(TAB_TITLES)

GRID_MIN, GRID_MAX = 5, 30  # the manifold grid's size N (N x N images)
GRID_DEFAULT = 20
EPOCHS_MAX = 100000  # epochs Train or Continue may ask for
QUIT_AFTER_MAX = 2**31 - 1  # milliseconds: Qt's timers take no more (about 24.8 days)
