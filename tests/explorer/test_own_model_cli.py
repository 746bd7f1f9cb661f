"""`latent-explorer --model FILE.py:FUNCTION` (or a folder holding an ONNX pair): the user's
own model opened in the window on the images the data options name; each mistake one line."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from explorer import app
from trainer.foreign import ForeignModel

USER_FILE = """
import torch
from torch import nn


class VAE(nn.Module):
    def __init__(self, d=2):
        super().__init__()
        self.enc = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 2 * d))
        self.dec = nn.Sequential(nn.Linear(d, 64), nn.ReLU(), nn.Linear(64, 784))

    def encode(self, x):
        mu, logvar = self.enc(x).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z):
        return self.dec(z)  # logits, flat


def build():
    torch.manual_seed(0)
    return VAE()
"""


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "my_vae.py"
    path.write_text(USER_FILE)
    return path


def _npz(tmp_path, side=28, n=120):
    rng = np.random.default_rng(0)
    path = tmp_path / f"images{side}.npz"
    np.savez(path, x=(rng.random((n, side, side)) < 0.2).astype(np.uint8) * 255)
    return path


def _start(qtbot, tmp_path, argv):
    args = app.build_parser().parse_args([*argv, "--settings", str(tmp_path / "s.ini")])
    app.check_args(app.build_parser(), args)
    assert app.read_own_model(args) is None
    win = app.start(args)
    qtbot.addWidget(win)
    win.ask_on_close = False
    return win


def test_a_users_file_opens_their_model_on_the_images_named(qtbot, tmp_path, user_file):
    images = _npz(tmp_path)
    argv = ["--model", f"{user_file}:build", "--dataset", "npz", "--images", str(images)]
    win = _start(qtbot, tmp_path, argv)
    qtbot.waitUntil(lambda: isinstance(win.session.model, ForeignModel), timeout=20000)
    model = win.session.model
    assert model.latent_dim == 2 and model.is_variational
    assert model.config.source.endswith("my_vae.py:build")
    assert win.session.data.name and len(win.session.data.test_x) > 0
    # what the window decodes is the user's network's output, through a sigmoid
    spec = importlib.util.spec_from_file_location("their_vae", user_file)
    theirs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(theirs)
    net = theirs.build()
    z = torch.tensor([[0.5, -1.0]])
    with torch.no_grad():
        want = torch.sigmoid(net.decode(z)).reshape(1, 1, 28, 28)
        got = model.decode_image(z)
    assert torch.allclose(got, want, atol=1e-6)


def test_a_model_that_does_not_fit_the_images_is_said_in_the_window(qtbot, tmp_path, user_file):
    images = _npz(tmp_path, side=32)
    argv = ["--model", f"{user_file}:build", "--dataset", "npz", "--images", str(images)]
    win = _start(qtbot, tmp_path, argv)
    qtbot.waitUntil(
        lambda: any("cannot be shown" in text for _level, text in win.banner.history),
        timeout=20000,
    )
    said = next(text for _level, text in win.banner.history if "cannot be shown" in text)
    assert "my_vae.py:build" in said and "32" in said, said
    assert not isinstance(win.session.model, ForeignModel)


@pytest.mark.parametrize(
    "argv, said",
    [
        (["--model", "nothing-here.py:build"], "nothing-here.py"),
        (["--model", "{file}:absent"], "absent"),
    ],
)
def test_a_model_that_cannot_be_read_is_one_line_before_any_window(
    tmp_path, user_file, capsys, argv, said
):
    argv = [a.replace("{file}", str(user_file)) for a in argv]
    assert app.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("latent-explorer: ") and said in err and "\n" not in err


@pytest.mark.parametrize(
    "argv, said",
    [
        (["--model", "gan"], "is not vae, cvae or ae"),
        (["--weights", "w.safetensors"], "--weights goes with --model FILE.py:FUNCTION"),
        (["--model", "vae", "--output", "probs"], "--output goes with --model FILE.py:FUNCTION"),
        (["--model", "x.py:build", "ck.safetensors"], "are two models"),
    ],
)
def test_misused_model_options_are_refused(capsys, argv, said):
    with pytest.raises(SystemExit) as e:
        app.check_args(app.build_parser(), app.build_parser().parse_args(argv))
    assert e.value.code == 2
    assert said in capsys.readouterr().err


def test_an_onnx_pair_opens_with_the_examples_decodes(qtbot, tmp_path):
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    from trainer.checkpoint import load_checkpoint
    from trainer.examples import example_path
    from trainer.onnx_pair import export_onnx_pair

    ck = load_checkpoint(example_path("mnist-vae-2d"))
    pair = tmp_path / "pair"
    export_onnx_pair(ck.model.eval(), pair, ck.class_names)
    argv = ["--model", str(pair), "--dataset", "npz", "--images", str(_npz(tmp_path))]
    win = _start(qtbot, tmp_path, argv)
    qtbot.waitUntil(lambda: isinstance(win.session.model, ForeignModel), timeout=20000)
    z = torch.tensor([[0.3, -0.7], [1.5, 0.2]])
    with torch.no_grad():
        diff = (win.session.model.decode_image(z) - ck.model.decode_image(z)).abs().max()
    assert float(diff) < 1e-4
