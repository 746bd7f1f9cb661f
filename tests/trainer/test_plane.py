"""The plane the map and the manifold show: two dimensions, or the principal plane of the
encoded test set (``latent-train manifold --plane pca``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from trainer import examples as ex
from trainer.__main__ import main as cli
from trainer.checkpoint import load_checkpoint
from trainer.data import load_data
from trainer.evaluate import posterior_means
from trainer.latent import dims_plane, grid_latents, map_subset, principal_plane


def test_two_dimensions_make_the_figure_4_grid_of_before():
    z = torch.tensor([0.3, -0.2, 1.0, 0.5])
    p = dims_plane(z, (2, 0))
    assert torch.equal(p.grid(7), grid_latents(7, (2, 0), z))
    assert p.project(z)[0].tolist() == pytest.approx([1.0, 0.3])
    assert torch.allclose(p.lift(p.project(z)), z)  # the other dimensions are kept


def _codes(name):
    ck = load_checkpoint(ex.example_path(name))
    data = load_data(ck.data_spec)
    idx = map_subset(len(data.test_x))
    y = data.test_y[idx] if ck.model.num_classes else None
    return ck, posterior_means(ck.model, data.test_x[idx], y)


def test_the_principal_plane_of_a_2d_model_is_its_own_plane_rotated():
    _ck, codes = _codes("mnist-vae-2d")
    p = principal_plane(codes.numpy())
    r = p.axes  # (2, 2): a rotation (or a reflection): orthonormal
    assert torch.allclose(r @ r.T, torch.eye(2), atol=1e-5)
    # every code is on the plane: lifting its coordinates gives it back exactly
    assert torch.allclose(p.lift(p.project(codes)), codes, atol=1e-4)
    # the grid is the dims grid, rotated and scaled about the mean
    g = p.grid(5)
    back = (g - p.centre) @ r.T / p.scales  # plane coordinates of the grid
    plain = grid_latents(5, (0, 1), torch.zeros(2))
    assert torch.allclose(back, plain, atol=1e-5)


def test_principal_coordinates_are_in_standard_deviations_and_stable():
    _ck, codes = _codes("fashion-vae-20d")
    p = principal_plane(codes.numpy())
    ab = p.project(codes)
    assert ab.mean(0).abs().max() < 1e-4
    assert ab.std(0).tolist() == pytest.approx([1.0, 1.0], rel=1e-3)
    assert p.scales[0] >= p.scales[1] and p.names[0].startswith("PC1 (σ = ")
    # a tiny change in the codes cannot flip an axis (signs are fixed)
    q = principal_plane(codes.numpy() + np.random.default_rng(0).normal(0, 1e-4, codes.shape))
    assert torch.allclose(p.axes, q.axes, atol=1e-2)


def test_manifold_cli_draws_the_principal_plane(tmp_path, capsys):
    out = tmp_path / "m.png"
    path = ex.example_path("mnist-vae-20d")
    assert (
        cli(
            [
                "manifold",
                "--checkpoint",
                str(path),
                "--plane",
                "pca",
                "--n",
                "12",
                "--scale",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "principal plane of 2,000 encoded test images" in capsys.readouterr().err
    with Image.open(out) as im:
        assert im.size == (12 * 28, 12 * 28)
        a = np.asarray(im.convert("L"), dtype=float)
    assert a.std() > 30  # digits, not a flat grey
    # the same grid as the plane's, decoded
    ck, codes = _codes("mnist-vae-20d")
    from trainer.latent import decode_batch

    want = decode_batch(ck.model, principal_plane(codes.numpy()).grid(12))
    assert np.abs(a[:28, :28] / 255 - want[0, 0].numpy()).max() < 0.01


def test_manifold_pca_needs_the_test_images(tmp_path, capsys):
    from trainer.checkpoint import save_checkpoint

    ck = load_checkpoint(ex.example_path("mnist-vae-20d"))
    bare = save_checkpoint(tmp_path / "bare.safetensors", ck.model, ck.train_config)
    code = cli(
        ["manifold", "--checkpoint", str(bare), "--plane", "pca", "--out", str(tmp_path / "m.png")]
    )
    assert code == 2 and "needs its test images" in capsys.readouterr().err
