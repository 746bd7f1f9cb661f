"""Latent Explorer: a desktop app to train VAEs and explore their latent space live.

Only :mod:`explorer.worker` touches both torch and Qt threads; widgets read the session
model in :mod:`explorer.state` and never reach into the training loop.
"""

from explorer.compat import guard_singletons

__all__ = ["__version__"]
__version__ = "0.1.0"

guard_singletons()  # before any Qt object exists; see explorer.compat
