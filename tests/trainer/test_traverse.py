"""Traversals: one row per latent dimension, ordered by KL, collapsed ones marked; and the
``latent-train traverse`` command."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from trainer import examples as ex
from trainer.__main__ import main as cli
from trainer.checkpoint import load_checkpoint
from trainer.config import ModelConfig
from trainer.latent import COLLAPSED_KL, inverse_cdf_grid, kl_order, traversal, traversal_values
from trainer.models import build_model


def _model(latent=3, classes=0):
    torch.manual_seed(0)
    return build_model(
        ModelConfig(
            latent_dim=latent,
            hidden=16,
            image_shape=(1, 8, 8),
            num_classes=classes,
            model="cvae" if classes else "vae",
        )
    ).eval()


def test_values_are_the_figure_4_spacing():
    v = traversal_values(9)
    assert torch.allclose(v, inverse_cdf_grid(9)[:, 0, 0])
    assert torch.all(v[1:] > v[:-1]) and torch.allclose(v, -v.flip(0), atol=1e-6)


def test_rows_are_ordered_by_kl_and_collapsed_ones_marked():
    m = _model(4)
    kl = np.array([0.5, 0.001, 2.0, 0.0])
    t = traversal(m, torch.zeros(4), None, 7, kl)
    assert t.dims == [2, 0, 1, 3] == kl_order(kl)
    assert t.collapsed == [False, False, True, True]
    assert np.allclose(t.kl, [2.0, 0.5, 0.001, 0.0]) and COLLAPSED_KL == 0.01
    assert t.images.shape == (4 * 7, 1, 8, 8)


def test_each_row_moves_its_own_dimension_from_the_current_z():
    m = _model(3)
    base = torch.tensor([0.3, -0.7, 1.1])
    t = traversal(m, base, None, 7)
    assert t.dims == [0, 1, 2] and t.kl is None and not any(t.collapsed)
    for r, d in enumerate(t.dims):  # what the row shows is the decoder at exactly those z
        z = base.expand(7, 3).clone()
        z[:, d] = t.values
        with torch.no_grad():
            want = m.decode_image(z, None)
        assert torch.allclose(t.images[r * 7 : (r + 1) * 7], want, atol=1e-6)


def test_a_2d_model_has_two_rows_and_a_conditional_one_keeps_its_class():
    m = _model(2, classes=3)
    a = traversal(m, torch.zeros(2), 0, 9)
    b = traversal(m, torch.zeros(2), 2, 9)
    assert len(a.dims) == 2 and a.images.shape[0] == 18
    assert not torch.allclose(a.images, b.images)


def test_traverse_cli_writes_labelled_png_and_gif(tmp_path, capsys):
    out = tmp_path / "t.png"
    path = ex.example_path("fashion-vae-20d")
    assert (
        cli(
            [
                "traverse",
                "--checkpoint",
                str(path),
                "--out",
                str(out),
                "--columns",
                "9",
                "--gif",
                "--scale",
                "1",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "ordered by KL" in err and err.count("collapsed") == 20 - 14  # 14 of 20 active
    with Image.open(out) as im:
        w, h = im.size
        assert h == 20 * 30 + 2 and w > 9 * 30 + 2  # 20 rows of 28 + 2 px, and the labels
        px = np.asarray(im.convert("L"), dtype=float)
    # collapsed rows (at the bottom) are faded to grey: no black background left
    last, first = px[-28:-4, -28:-4], px[4:28, -28:-4]  # inside the last cell of each row
    assert last.min() > 60 and first.min() < 10
    with Image.open(tmp_path / "t.gif") as gif:
        assert gif.n_frames == 9 + 7  # forward and back
    ck = load_checkpoint(ex.example_path("mnist-vae-2d"))
    assert ck.model_config.latent_dim == 2
    assert (
        cli(
            [
                "traverse",
                "--checkpoint",
                str(ex.example_path("mnist-ae-2d")),
                "--out",
                str(tmp_path / "ae.png"),
            ]
        )
        == 0
    )
    assert "index order (a plain autoencoder has no KL)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--columns", "5"], "--columns"),
        (["--z", "1", "2", "3"], "--z gives 3 values"),
        (["--class", "nine"], "class"),
    ],
)
def test_traverse_cli_mistakes_end_in_one_line(tmp_path, capsys, args, says):
    path = ex.example_path("mnist-cvae-2d")
    try:
        code = cli(["traverse", "--checkpoint", str(path), "--out", str(tmp_path / "t.png"), *args])
    except SystemExit as e:  # argparse's own range check
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err
