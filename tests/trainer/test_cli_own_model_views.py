"""``latent-train map``, ``neighbours`` and ``direction`` on the user's own model
(``--model FILE.py:FUNCTION``) in place of ``--checkpoint``, on the images the data options
name, as every view command takes it; its misuse is one line."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from test_cli_own_model import SHAPES, _error, _run, user_file  # noqa: F401 (a fixture)

from trainer.examples import example_path

COMMANDS = [
    ("map", ["--method", "pca", "--codes", "{tmp}/codes.npz"]),
    ("neighbours", ["--index", "0", "--k", "3"]),
    ("direction", ["--from-images", "0,1", "--to-images", "2,3", "--steps", "4"]),
]


@pytest.mark.parametrize("function", ["build", "conditional"])
def test_map_neighbours_and_direction_take_a_users_model(user_file, tmp_path, capsys, function):  # noqa: F811
    for command, options in COMMANDS:
        out = tmp_path / f"{command}.png"
        options = [o.replace("{tmp}", str(tmp_path)) for o in options]
        argv = [command, "--model", f"{user_file}:{function}", *SHAPES, *options, "--out", out]
        code, said = _run(argv, capsys)
        assert code == 0, (command, said.err)
        with Image.open(out) as im:
            assert im.width > 24 and im.height >= 24, (command, im.size)
    codes = np.load(tmp_path / "codes.npz")
    assert codes["codes"].shape == (8, 3) and codes["xy"].shape == (8, 2)


def test_their_misuse_of_model_is_one_line(user_file, tmp_path, capsys):  # noqa: F811
    model = ["--model", f"{user_file}:build"]
    png = tmp_path / "x.png"
    for command, options in COMMANDS:
        options = [o.replace("{tmp}", str(tmp_path)) for o in options]
        err = _error([command, *model, *options, "--out", png], capsys)
        assert "name the images to explore it on with --dataset" in err, command
        err = _error([command, *options, "--out", png], capsys)
        assert "--checkpoint" in err and "--model" in err, command
        ck = ["--checkpoint", example_path("mnist-vae-2d")]
        err = _error([command, *ck, "--weights", "w.pt", *options, "--out", png], capsys)
        assert "--weights goes with --model" in err, command


def test_their_help_names_the_users_model(capsys):
    from trainer.cli import main

    for command in ("map", "neighbours", "direction"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "RUNS THAT FILE'S CODE" in text and "--weights" in text, command
