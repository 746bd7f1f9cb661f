"""Latent Explorer: a desktop app to train VAEs and explore their latent space live.

Only :mod:`explorer.worker` touches both torch and Qt threads; widgets read the session
model in :mod:`explorer.state` and never reach into the training loop.
"""

from explorer.constants import VERSION as __version__

__all__ = ["__version__", "explore"]


def __getattr__(name: str):
    # explore() imports torch and Qt: only when it is asked for (importing explorer stays light)
    if name == "explore":
        from explorer.api import explore

        return explore
    raise AttributeError(f"module 'explorer' has no attribute {name!r}")
