"""A user's model from FILE.py:FUNCTION, with --weights: loaded as people write them, and each
mistake (a missing file or function, an exception in their code, weights that do not fit, a
weights file that would run code) one line."""

from __future__ import annotations

import os
import pickle
import textwrap

import pytest
import torch
from safetensors.torch import save_file

from trainer.onnx_pair import OnnxPairError
from trainer.user_code import UserCodeError, UserModel, load_user_model, open_model, parse_spec

VAE = """
import torch
from torch import nn

from helpers import HIDDEN  # a neighbour of this file


class VAE(nn.Module):
    def __init__(self, d=2):
        super().__init__()
        self.enc = nn.Linear(784, HIDDEN)
        self.stats = nn.Linear(HIDDEN, 2 * d)
        self.dec = nn.Sequential(nn.Linear(d, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 784))

    def encode(self, x):
        mu, logvar = self.stats(torch.relu(self.enc(x.flatten(1)))).chunk(2, 1)
        return mu, logvar

    def decode(self, z):
        return self.dec(z)


def build():
    return VAE()


def broken():
    sizes = {"a": 1}
    return VAE(sizes["b"])


def nothing():
    VAE()
"""


@pytest.fixture
def user_file(tmp_path):
    (tmp_path / "helpers.py").write_text("HIDDEN = 16\n")
    f = tmp_path / "my_vae.py"
    f.write_text(textwrap.dedent(VAE))
    return f


def _one_line(excinfo) -> str:
    text = str(excinfo.value)
    assert text and "\n" not in text
    return text


def test_a_users_function_gives_their_model_with_their_weights(user_file, tmp_path):
    got = load_user_model(f"{user_file}:build")
    trained = got.model
    assert type(trained).__name__ == "VAE"
    torch.nn.init.normal_(trained.enc.weight)
    torch.save(trained.state_dict(), tmp_path / "w.pt")
    save_file(trained.state_dict(), tmp_path / "w.safetensors")
    torch.save({"state_dict": trained.state_dict(), "epoch": 3}, tmp_path / "ckpt.pth")
    for name in ("w.pt", "w.safetensors", "ckpt.pth"):
        again = load_user_model(f"{user_file}:build", weights=tmp_path / name)
        assert torch.equal(again.model.enc.weight, trained.enc.weight), name
        assert again.source == f"{user_file}:build with weights {tmp_path / name}"
        mu, logvar = again.model.encode(torch.rand(3, 1, 28, 28))
        assert mu.shape == logvar.shape == (3, 2)


def test_the_spec_names_a_python_file_and_a_function():
    for spec, words in [
        ("my_vae.py", "names no function"),
        ("my_vae.py:", "'' is not a function's name"),
        ("my_vae.py:build-it", "is not a function's name"),
        ("weights.pt:build", "weights.pt is not a Python file (.py)"),
    ]:
        with pytest.raises(UserCodeError) as e:
            parse_spec(spec)
        assert words in _one_line(e), spec


def test_a_missing_file_or_function_is_named(user_file, tmp_path):
    with pytest.raises(UserCodeError) as e:
        load_user_model(f"{tmp_path / 'nope.py'}:build")
    assert "nope.py: does not exist" in _one_line(e)
    with pytest.raises(UserCodeError) as e:
        load_user_model(f"{user_file}:make_model")
    text = _one_line(e)
    assert "has no function make_model" in text and "build" in text and "VAE" in text
    (tmp_path / "folder.py").mkdir()
    with pytest.raises(UserCodeError) as e:
        load_user_model(f"{tmp_path / 'folder.py'}:build")
    assert "folder.py: is a folder, not a Python file" in _one_line(e)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_a_named_pipe_is_neither_run_nor_read(tmp_path, user_file):
    os.mkfifo(tmp_path / "pipe.py")
    with pytest.raises(UserCodeError) as e:
        load_user_model(f"{tmp_path / 'pipe.py'}:build")
    assert "is not a regular file" in _one_line(e)
    os.mkfifo(tmp_path / "w.pt")
    with pytest.raises(UserCodeError) as e:
        load_user_model(f"{user_file}:build", weights=tmp_path / "w.pt")
    assert "w.pt: is not a regular file" in _one_line(e)


def test_an_exception_in_the_users_code_names_it_and_its_line(user_file, tmp_path):
    with pytest.raises(UserCodeError) as e:
        load_user_model(f"{user_file}:broken")
    text = _one_line(e)
    assert "broken() failed: KeyError: 'b'" in text
    line = VAE.splitlines().index('    return VAE(sizes["b"])') + 1
    assert text.endswith(f"(line {line})")
    with pytest.raises(UserCodeError) as e:
        load_user_model(f"{user_file}:nothing")
    assert "nothing() returned None; it must return the model" in _one_line(e)
    bad = tmp_path / "bad.py"
    bad.write_text("import torch\n\ndef build(:\n    pass\n")
    with pytest.raises(UserCodeError) as e:
        load_user_model(f"{bad}:build")
    text = _one_line(e)
    assert "failed while it was imported: SyntaxError" in text and text.endswith("(line 3)")
    raising = tmp_path / "raising.py"
    raising.write_text("import this_package_is_not_installed_anywhere\n")
    with pytest.raises(UserCodeError) as e:
        load_user_model(f"{raising}:build")
    text = _one_line(e)
    assert "ModuleNotFoundError" in text and text.endswith("(line 1)")


def test_weights_that_do_not_fit_say_which(user_file, tmp_path):
    state = load_user_model(f"{user_file}:build").model.state_dict()
    wrong = dict(state)
    wrong["stats.weight"] = torch.zeros(6, 16)
    save_file(wrong, tmp_path / "shape.safetensors")
    with pytest.raises(UserCodeError) as e:
        load_user_model(f"{user_file}:build", weights=tmp_path / "shape.safetensors")
    assert "stats.weight is (6, 16) in the file but (4, 16) in the model" in _one_line(e)
    fewer = {k: v for k, v in state.items() if not k.startswith("dec.")}
    fewer["extra.bias"] = torch.zeros(3)
    torch.save(fewer, tmp_path / "keys.pt")
    with pytest.raises(UserCodeError) as e:
        load_user_model(f"{user_file}:build", weights=tmp_path / "keys.pt")
    text = _one_line(e)
    assert "missing dec.0.bias" in text and "unexpected extra.bias" in text
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(UserCodeError) as e:
        load_user_model(f"{user_file}:build", weights=tmp_path / "junk.safetensors")
    assert "junk.safetensors: is not a safetensors file" in _one_line(e)
    with pytest.raises(UserCodeError) as e:
        load_user_model(f"{user_file}:build", weights=tmp_path / "none.pt")
    assert "none.pt: does not exist" in _one_line(e)


class _Runs:
    """A pickle that would create a file if it were unpickled with weights_only=False."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_a_weights_file_that_would_run_code_is_refused_without_running_it(user_file, tmp_path):
    made = tmp_path / "made-by-the-pickle"
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"enc.weight": _Runs(made)}, f, protocol=2)
    with pytest.raises(UserCodeError) as e:
        load_user_model(f"{user_file}:build", weights=tmp_path / "evil.pt")
    assert "is not a state dict torch.load(weights_only=True) reads" in _one_line(e)
    assert not made.exists()


def test_model_takes_a_python_file_or_an_onnx_pairs_folder(user_file, tmp_path):
    got = open_model(f"{user_file}:build")
    assert isinstance(got, UserModel) and got.function == "build"
    pair = tmp_path / "pair"
    pair.mkdir()
    (pair / "encoder.onnx").write_bytes(b"")
    with pytest.raises(UserCodeError) as e:
        open_model(str(pair / "encoder.onnx"))
    assert f"name the folder that holds encoder.onnx, not one of its files (--model {pair})" in (
        _one_line(e)
    )
    with pytest.raises(UserCodeError) as e:
        open_model(str(pair), weights=tmp_path / "w.pt")
    assert "--weights does not apply to the ONNX pair" in _one_line(e)
    with pytest.raises(OnnxPairError) as e:  # read as a pair: its model.json is missing
        open_model(str(pair))
    assert _one_line(e).endswith("model.json: does not exist")
