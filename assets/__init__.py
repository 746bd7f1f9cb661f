"""Latent Explorer's example models, their bundled test images and its icon.

Installed as the package ``latent_explorer_assets`` (see pyproject.toml) and found through
``trainer.paths``; it holds data only.
"""
