"""Latent Explorer's engine: VAE / CVAE / AE models, training, evaluation, checkpoints.

Pure PyTorch: nothing here imports Qt, so the engine runs headless and from the
``latent-train`` command line.
"""

__version__ = "0.1.0"
