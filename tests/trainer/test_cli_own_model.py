"""``latent-train``'s view commands on the user's own model (``--model FILE.py:FUNCTION`` or
an ONNX pair's folder) in place of ``--checkpoint``, shown on the images the data options
name; Evaluate refuses a model with no ELBO, saying why; every misuse is one line."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch
from PIL import Image

from trainer.cli import main

USER_FILE = """
import torch
from torch import nn

D = 3


class VAE(nn.Module):
    def __init__(self, variational=True, classes=0):
        super().__init__()
        self.variational, self.classes = variational, classes
        self.enc = nn.Linear(144 + classes, 2 * D if variational else D)
        self.dec = nn.Linear(D + classes, 144)

    def _y(self, t, y=None):
        if not self.classes:
            return t
        return torch.cat([t, nn.functional.one_hot(y, self.classes).to(t.dtype)], 1)

    def encode(self, x, *y):
        h = self.enc(self._y(x.flatten(1), *y))
        return h.chunk(2, 1) if self.variational else h

    def decode(self, z, *y):
        return self.dec(self._y(z, *y))


class CVAE(VAE):
    def encode(self, x, y):
        return super().encode(x, y)

    def decode(self, z, y):
        return super().decode(z, y)


def build():
    torch.manual_seed(0)
    return VAE()


def autoencoder():
    torch.manual_seed(0)
    return VAE(variational=False)


def conditional():
    torch.manual_seed(0)
    return CVAE(classes=5)
"""

SHAPES = ["--dataset", "shapes", "--image-size", "12", "--shapes-count", "40"]


@pytest.fixture
def user_file(tmp_path):
    f = tmp_path / "my_vae.py"
    f.write_text(textwrap.dedent(USER_FILE))
    return f


def _run(argv, capsys):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr()


def _error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as e:
        raise SystemExit(main([str(a) for a in argv]))
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("latent-train: error:"), err
    return err


VIEWS = [
    ("sample", ["--n", "4"]),
    ("manifold", ["--n", "3"]),
    ("manifold", ["--n", "3", "--plane", "pca"]),
    ("traverse", ["--columns", "7"]),
    ("arithmetic", ["--a", "0", "--b", "1", "--c", "2"]),
    ("posterior", []),
]


@pytest.mark.parametrize("function", ["build", "autoencoder", "conditional"])
def test_every_view_command_draws_a_users_model(user_file, tmp_path, capsys, function):
    for command, options in VIEWS:
        out = tmp_path / f"{command}-{len(options)}.png"
        argv = [command, "--model", f"{user_file}:{function}", *SHAPES, *options, "--out", out]
        code, said = _run(argv, capsys)
        assert code == 0, (command, said.err)
        with Image.open(out) as im:  # a picture of 12-pixel images, several of them
            assert im.width > 24 and im.height >= 24, (command, im.size)


def test_sample_decodes_with_the_users_weights(user_file, tmp_path, capsys):
    """--weights is loaded into what the function returned: zero weights decode grey."""
    ns: dict = {}
    exec(compile(textwrap.dedent(USER_FILE), str(user_file), "exec"), ns)
    net = ns["build"]()
    zeros = {k: torch.zeros_like(v) for k, v in net.state_dict().items()}
    weights = tmp_path / "w.pt"
    torch.save(zeros, weights)
    out = tmp_path / "s.png"
    argv = ["sample", "--model", f"{user_file}:build", "--weights", weights, *SHAPES]
    assert _run([*argv, "--n", "4", "--scale", "1", "--out", out], capsys)[0] == 0
    with Image.open(out) as im:
        pixels = torch.tensor(bytearray(im.convert("L").tobytes()), dtype=torch.float32)
    assert pixels.max() - pixels.min() <= 128  # sigmoid(0) everywhere, on a plain padding
    assert ((pixels - 128).abs() <= 1).float().mean() > 0.5


def test_evaluate_measures_a_users_vae_and_refuses_one_without_an_elbo(user_file, tmp_path, capsys):
    out = tmp_path / "e.json"
    argv = ["evaluate", "--model", f"{user_file}:build", *SHAPES, "--iw-samples", "2"]
    code, said = _run([*argv, "--out", out], capsys)
    assert code == 0, said.err
    res = json.loads(out.read_text())
    assert res["model"].endswith("my_vae.py:build") and res["n_images"] == 8
    assert res["test_nelbo"] > 0 and res["test_kl"] > 0
    assert res["test_nll_iw"] <= res["test_nelbo"] + 1e-3
    argv = ["evaluate", "--model", f"{user_file}:autoencoder", *SHAPES, "--out", out]
    err = _error(argv, capsys)
    assert "cannot evaluate" in err and "no logvar" in err and "autoencoder" in err
    argv = ["evaluate", "--model", f"{user_file}:build", "--output", "mean", *SHAPES]
    err = _error([*argv, "--out", out], capsys)
    assert "Gaussian mean without a std" in err and "no likelihood" in err


def test_misuse_of_model_is_one_line(user_file, tmp_path, capsys):
    model = ["--model", f"{user_file}:build"]
    png = tmp_path / "s.png"
    err = _error(["sample", *model, "--out", png], capsys)
    assert "name the images to explore it on with --dataset" in err
    err = _error(
        ["evaluate", *model, *SHAPES, "--device", "cpu", "--out", tmp_path / "e.json"], capsys
    )
    assert "--device does not apply to --model" in err
    err = _error(["evaluate", *model, *SHAPES], capsys)
    assert "name a JSON file for the results" in err
    err = _error(
        ["sample", *model, "--weights", tmp_path / "none.pt", *SHAPES, "--out", png], capsys
    )
    assert "none.pt: does not exist" in err
    err = _error(["sample", *model, *SHAPES, "--images", "x.npz", "--out", png], capsys)
    assert "--images does not apply to --dataset shapes" in err
    weights = tmp_path / "w.png"  # (torch.load reads any name)
    torch.save({}, weights)
    err = _error(["sample", *model, "--weights", weights, *SHAPES, "--out", weights], capsys)
    assert "is the file given as --weights, which this command reads" in err
    err = _error(["sample", "--model", f"{user_file}:nowhere", *SHAPES, "--out", png], capsys)
    assert "has no function nowhere" in err


def test_a_checkpoint_takes_neither_weights_nor_data_options(tmp_path, capsys):
    from trainer.examples import example_path

    ck = example_path("mnist-vae-2d")
    out = tmp_path / "s.png"
    err = _error(["sample", "--checkpoint", ck, "--weights", "w.pt", "--out", out], capsys)
    assert "--weights goes with --model" in err
    err = _error(["sample", "--checkpoint", ck, *SHAPES, "--out", out], capsys)
    assert "does not apply to --checkpoint" in err
    err = _error(["sample", "--out", out], capsys)
    assert "--checkpoint" in err and "--model" in err
    err = _error(["sample", "--checkpoint", ck, "--model", "m.py:f", "--out", out], capsys)
    assert "not allowed with" in err


def test_help_says_the_users_file_is_run(capsys):
    for command in ("sample", "manifold", "traverse", "arithmetic", "posterior", "evaluate"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "RUNS THAT FILE'S CODE" in text and "--weights" in text, command


def test_an_onnx_pair_is_shown_and_evaluated_without_its_code(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from trainer.config import ModelConfig
    from trainer.models import LatentModel
    from trainer.onnx_pair import export_onnx_pair

    torch.manual_seed(0)
    model = LatentModel(ModelConfig(latent_dim=2, hidden=16, image_shape=(1, 12, 12))).eval()
    folder = tmp_path / "pair"
    export_onnx_pair(model, folder)
    for command, options in VIEWS:
        out = tmp_path / f"{command}-{len(options)}.png"
        argv = [command, "--model", folder, *SHAPES, *options, "--out", out]
        code, said = _run(argv, capsys)
        assert code == 0, (command, said.err)
        assert out.stat().st_size > 0
    out = tmp_path / "e.json"
    argv = ["evaluate", "--model", folder, *SHAPES, "--iw-samples", "2", "--out", out]
    assert _run(argv, capsys)[0] == 0
    assert json.loads(out.read_text())["test_nelbo"] > 0
    argv = ["sample", "--model", folder, "--output", "probs", *SHAPES, "--out", tmp_path / "x.png"]
    assert "--output does not apply to the ONNX pair" in _error(argv, capsys)
