"""Latent arithmetic: z_a - z_b + z_c decoded beside its three inputs."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from trainer import examples as ex
from trainer.__main__ import main as cli
from trainer.checkpoint import load_checkpoint
from trainer.data import load_data
from trainer.latent import arithmetic, decode_batch


def _example(name):
    ck = load_checkpoint(ex.example_path(name))
    return ck.model.eval(), load_data(ck.data_spec)


def test_a_minus_a_plus_c_is_c():
    model, data = _example("mnist-vae-20d")
    x = data.test_x[torch.tensor([5, 5, 9])]
    row, z = arithmetic(model, x, None)
    assert row.shape == (4, 1, 28, 28)
    assert torch.allclose(row[:3], x.float() / 255)  # the inputs, as they are
    with torch.no_grad():
        zc, _ = model.encode(x[2:].float() / 255, None)
    assert torch.allclose(z, zc[0], atol=1e-5)
    assert torch.allclose(row[3], decode_batch(model, zc)[0], atol=1e-6)


def test_a_conditional_model_decodes_under_cs_class():
    model, data = _example("mnist-cvae-2d")
    idx = torch.tensor([0, 1, 2])
    y = data.test_y[idx]
    row, z = arithmetic(model, data.test_x[idx], y)
    assert torch.allclose(row[3], decode_batch(model, z.reshape(1, -1), int(y[2]))[0])


def test_arithmetic_cli(tmp_path, capsys):
    out = tmp_path / "a.png"
    path = ex.example_path("fashion-vae-20d")
    assert (
        cli(
            [
                "arithmetic",
                "--checkpoint",
                str(path),
                "--a",
                "3",
                "--b",
                "4",
                "--c",
                "5",
                "--scale",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    with Image.open(out) as im:
        assert im.size == ((4 * 30 + 2) * 2, 32 * 2)
    assert (
        cli(
            [
                "arithmetic",
                "--checkpoint",
                str(path),
                "--a",
                "0",
                "--b",
                "1",
                "--c",
                "10000",
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert "the test set has 2000 images" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli(["arithmetic", "--checkpoint", str(path), "--a", "0", "--out", str(out)])
