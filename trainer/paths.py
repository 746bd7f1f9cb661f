"""Where the files that come with Latent Explorer live.

The example models, their bundled test images and the icon are package data of
``latent_explorer_assets``: the repository's ``assets/`` folder, installed under that name
(pyproject.toml maps it), so that no other distribution's ``assets`` can collide with it. They
are found through :mod:`importlib.resources`, the same way in a wheel, in an editable install
and in a checkout, never through the layout of a source tree. ``$LATENT_EXPLORER_ASSETS`` names
another folder of the same shape instead.

Downloaded datasets and decoded caches live in the user's cache folder (:func:`cache_dir`).
"""

from __future__ import annotations

import functools
import os
from importlib import resources
from pathlib import Path

ASSETS_PACKAGE = "latent_explorer_assets"
ASSETS_ENV = "LATENT_EXPLORER_ASSETS"
ICON_FILE = "icon.png"


def assets_dir() -> Path:
    """The folder of the example models (``examples/``) and the icon."""
    given = os.environ.get(ASSETS_ENV)
    if given:
        return Path(given).expanduser()
    return _packaged()


@functools.lru_cache(maxsize=1)
def _packaged() -> Path:
    try:
        root = resources.files(ASSETS_PACKAGE)
    except ModuleNotFoundError:
        here = Path(__file__).resolve().parents[1]
        if (here / "pyproject.toml").is_file():  # a checkout run without installing it
            return here / "assets"
        return here / ASSETS_PACKAGE  # a broken install: whatever looks there says so
    # a package in a folder (a zipped install has none: its path then names no folder)
    return root if isinstance(root, Path) else Path(str(root))


def examples_dir() -> Path:
    """The folder of the example models and their bundled test images."""
    return assets_dir() / "examples"


def cache_dir() -> Path:
    """Where downloaded datasets live: $LATENT_EXPLORER_DATA, else the user's cache folder."""
    env = os.environ.get("LATENT_EXPLORER_DATA")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "latent-explorer" / "datasets"


def icon_file() -> Path:
    return assets_dir() / ICON_FILE


def assets_are_installed() -> bool:
    """True when the assets are those of an installed package (a wheel's, which belong to
    the installer), not a checkout's ``assets/`` or a folder named by the environment."""
    if os.environ.get(ASSETS_ENV):
        return False
    return not (_packaged().parent / "pyproject.toml").is_file()
