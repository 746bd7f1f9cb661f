"""The aggregate posterior against the prior, and the holes it leaves (a plain autoencoder's
codes leave most of the prior empty, a VAE's fill it); ``latent-train posterior``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from trainer import examples as ex
from trainer.__main__ import main as cli
from trainer.checkpoint import load_checkpoint
from trainer.data import load_data
from trainer.latent import dims_plane, map_subset
from trainer.posterior import means_histogram, picture, posterior_vs_prior


def _view(name):
    ck = load_checkpoint(ex.example_path(name))
    data = load_data(ck.data_spec)
    idx = map_subset(len(data.test_x))
    plane = dims_plane(torch.zeros(ck.model.latent_dim), (0, 1))
    return posterior_vs_prior(ck.model, data.test_x[idx], data.test_y[idx], plane)


@pytest.mark.parametrize("data", ["mnist", "fashion"])
def test_an_autoencoder_leaves_the_prior_empty_where_a_vae_fills_it(data):
    vae, ae = _view(f"{data}-vae-2d"), _view(f"{data}-ae-2d")
    assert vae.hole_mass < 0.15 and ae.hole_mass > 0.4, (vae.hole_mass, ae.hole_mass)
    assert vae.outside < 0.02 and ae.outside > 0.3
    assert vae.samples == 10 * 2000 and ae.samples == 2000  # an AE's q is a point


def test_densities_are_densities():
    v = _view("mnist-vae-2d")
    cell = (2 * v.extent / v.bins) ** 2
    assert v.prior.sum() * cell == pytest.approx(1.0, abs=1e-3)  # N(0, I) within +-4
    assert v.posterior.sum() * cell == pytest.approx(1 - v.outside, abs=1e-6)
    assert v.holes.shape == v.posterior.shape and v.holes.any()
    rgb = picture(v)
    assert rgb.shape == (v.bins, v.bins, 3) and 0 <= rgb.min() and rgb.max() <= 1
    # the holes are drawn red (save where a prior contour crosses them)
    red = rgb[::-1][v.holes]
    assert (red[:, 0] > red[:, 1] + 0.2).mean() > 0.7
    c, dens, out = means_histogram(v.means, 0)
    assert dens.sum() * (c[1] - c[0]) == pytest.approx(1 - out, abs=1e-6)


def test_posterior_cli(tmp_path, capsys):
    out = tmp_path / "p.png"
    path = ex.example_path("fashion-ae-2d")
    assert cli(["posterior", "--checkpoint", str(path), "--out", str(out), "--scale", "2"]) == 0
    text = capsys.readouterr().out
    assert "hole mass: 0." in text and "z1" in text
    mass = float(text.split("hole mass: ")[1].split()[0])
    assert mass > 0.4
    with Image.open(out) as im:
        assert im.size == (128, 128)
        assert np.asarray(im).std() > 20
    assert (
        cli(
            [
                "posterior",
                "--checkpoint",
                str(ex.example_path("mnist-vae-20d")),
                "--plane",
                "pca",
                "--out",
                str(tmp_path / "q.png"),
            ]
        )
        == 0
    )
    assert "PC1" in capsys.readouterr().out
