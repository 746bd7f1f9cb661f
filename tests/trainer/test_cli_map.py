"""``latent-train map`` on the bundled 20-D MNIST example: the picture, the codes, the
projector folder, the printed time and agreement, the cache, and each refusal in one line."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest
from PIL import Image

from trainer import maps
from trainer.__main__ import main
from trainer.data import load_data
from trainer.examples import example_path

EXAMPLE = "mnist-vae-20d"


def agreement(out: str) -> float:
    line = next(s for s in out.splitlines() if s.startswith("5-NN class agreement"))
    return float(line.split(":")[1].split()[0])


@pytest.fixture(scope="module")
def bundled_labels():
    from trainer.checkpoint import load_checkpoint

    ck = load_checkpoint(example_path(EXAMPLE))
    return load_data(ck.data_spec).test_y.numpy()


def test_pca_map_writes_picture_codes_and_projector(tmp_path, capsys, bundled_labels):
    argv = ["map", "--checkpoint", EXAMPLE, "--method", "pca", "--limit", "300"]
    outs = ["--out", str(tmp_path / "m.png"), "--codes", str(tmp_path / "c.npz")]
    assert main([*argv, *outs, "--projector", str(tmp_path / "proj")]) == 0
    out = capsys.readouterr().out
    assert "map: principal plane (PCA) of 300 codes (20-D), computed in" in out
    assert 0.0 < agreement(out) < 1.0
    with Image.open(tmp_path / "m.png") as im:
        assert im.width > 800 and im.height > 800
    with np.load(tmp_path / "c.npz", allow_pickle=False) as z:
        assert z["codes"].shape == (300, 20) and z["xy"].shape == (300, 2)
        np.testing.assert_array_equal(z["labels"], bundled_labels[:300])
        assert str(z["method"]) == "pca" and list(z["class_names"]) == [str(k) for k in range(10)]
        from trainer.maps import neighbour_agreement

        assert neighbour_agreement(z["xy"], z["labels"]) == pytest.approx(agreement(out), abs=1e-3)
    sub = tmp_path / "proj" / "00000" / "default"
    assert len((sub / "tensors.tsv").read_text().splitlines()) == 300
    with Image.open(sub / "sprite.png") as im:
        assert im.size == (18 * 28, 18 * 28)  # ceil(sqrt(300)) = 18 digits a side


def test_tsne_map_separates_digits_better_than_pca_and_is_cached(tmp_path, capsys):
    argv = ["map", "--checkpoint", EXAMPLE, "--limit", "400", "--codes"]
    assert main([*argv, str(tmp_path / "p.csv"), "--method", "pca"]) == 0
    pca = agreement(capsys.readouterr().out)
    assert main([*argv, str(tmp_path / "t.csv"), "--method", "tsne"]) == 0
    out = capsys.readouterr().out
    tsne = agreement(out)
    assert "t-SNE of 400 codes (20-D), computed in" in out
    assert tsne > pca + 0.2, (tsne, pca)
    assert main([*argv, str(tmp_path / "t2.csv"), "--method", "tsne"]) == 0
    again = capsys.readouterr().out
    assert agreement(again) == tsne
    said = re.search(r"read from the cache in ([\d.]+) s \(computing it took ([\d.]+) s\)", again)
    assert said and float(said[1]) < float(said[2]), again  # the time of this command's map
    assert (tmp_path / "t.csv").read_bytes() == (tmp_path / "t2.csv").read_bytes()


def test_umap_map_by_default(tmp_path, capsys):
    argv = ["map", "--checkpoint", EXAMPLE, "--limit", "300", "--seed", "2"]
    assert main([*argv, "--out", str(tmp_path / "u.png")]) == 0
    out = capsys.readouterr().out
    assert "map: UMAP of 300 codes (20-D)" in out and agreement(out) > 0.5


def test_axes_map_is_the_two_dimensions(tmp_path):
    argv = ["map", "--checkpoint", EXAMPLE, "--method", "axes", "--dims", "3", "7"]
    assert main([*argv, "--limit", "50", "--codes", str(tmp_path / "a.npz")]) == 0
    with np.load(tmp_path / "a.npz") as z:
        np.testing.assert_allclose(z["xy"], z["codes"][:, [3, 7]], atol=1e-6)


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ([], "name what to write: --out map.png"),
        (["--method", "umap", "--dims", "0", "1", "--out", "{tmp}/m.png"], "--dims does not"),
        (["--method", "axes", "--dims", "2", "2", "--out", "{tmp}/m.png"], "two different"),
        (["--codes", "{tmp}/codes.txt"], ".npz or .csv"),
        (["--codes", "{tmp}"], "is a folder"),
        (["--projector", "{tmp}/file/proj"], "is a file, not a folder"),
        (["--out", "{tmp}/m.gifx"], "unsupported image type"),
        (["--dataset", "shapes", "--images", "x.npz", "--out", "{tmp}/m.png"], "--images"),
    ],
)
def test_mistakes_are_one_line_and_exit_2(tmp_path, capsys, extra, says):
    (tmp_path / "file").write_text("a file")
    extra = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    assert main(["map", "--checkpoint", EXAMPLE, "--limit", "20", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert says in err[-1] and err[-1].startswith("latent-train: error:")
    assert not (tmp_path / "m.png").exists()


def test_a_missing_library_says_what_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "openTSNE", None)
    argv = ["map", "--checkpoint", EXAMPLE, "--method", "tsne", "--limit", "20"]
    assert main([*argv, "--out", str(tmp_path / "m.png")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'latent-explorer[maps]'" in err.splitlines()[-1]
    assert not (tmp_path / "m.png").exists()


def test_an_unknown_example_or_checkpoint_is_one_line(tmp_path, capsys):
    argv = ["map", "--checkpoint", "mnist-vae-99d", "--out", str(tmp_path / "m.png")]
    assert main(argv) == 2
    assert "mnist-vae-99d" in capsys.readouterr().err


def test_ctrl_c_stops_cleanly_and_writes_nothing(tmp_path, capsys, monkeypatch):
    def interrupted(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(maps, "project", interrupted)
    argv = ["map", "--checkpoint", EXAMPLE, "--method", "tsne", "--limit", "20"]
    assert main([*argv, "--out", str(tmp_path / "m.png")]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
