"""Latent Explorer: a desktop app to train VAEs and explore their latent space live.

Only :mod:`explorer.worker` touches both torch and Qt threads; widgets read the session
model in :mod:`explorer.state` and never reach into the training loop.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
