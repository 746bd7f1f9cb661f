"""Directions: the difference of two groups' mean codes, sweeps along one, and the
``latent-train direction`` command."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from test_data_celeba import ATTRS, make_celeba

from trainer import examples as ex
from trainer.__main__ import main as cli
from trainer.checkpoint import load_checkpoint, save_checkpoint
from trainer.config import ModelConfig, TrainConfig
from trainer.data import DataSpec, load_data
from trainer.directions import (
    Direction,
    DirectionError,
    apart,
    attribute_rows,
    class_number,
    direction,
    mean_difference,
    rows_direction,
    span_of,
    sweep,
)
from trainer.evaluate import posterior_means
from trainer.latent import arithmetic, decode_batch
from trainer.models import build_model

MNIST20 = ex.example_path("mnist-vae-20d")


def test_mean_difference_is_exact_on_toy_codes():
    a = np.array([[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]])  # mean (2, 3, 4)
    b = np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 2.0], [0.0, 4.0, 1.0]])  # mean (0, 2, 1)
    assert mean_difference(a, b).tolist() == [2.0, 1.0, 3.0]
    assert mean_difference(b, a).tolist() == [-2.0, -1.0, -3.0]
    # a group of one is its code: z_a - z_b
    assert mean_difference(a[0], b[0]).tolist() == [1.0, 1.0, 3.0]
    d = direction(b, a, "b", "a")
    assert d.vector.tolist() == [2.0, 1.0, 3.0]
    assert (d.source, d.target, d.source_size, d.target_size) == ("b", "a", 3, 2)
    assert d.length == pytest.approx(np.sqrt(14))
    assert d.name == "b → a" and "length 3.74" in d.describe()


def test_groups_that_cannot_make_a_direction_are_refused():
    with pytest.raises(DirectionError, match="at least one code in each group"):
        mean_difference(np.zeros((0, 3)), np.ones((2, 3)))
    with pytest.raises(DirectionError, match="differ in size: 3 and 2"):
        mean_difference(np.zeros((1, 3)), np.ones((2, 2)))
    with pytest.raises(DirectionError, match="row 5 is not among the 4 codes"):
        rows_direction(np.zeros((4, 2)), [0], [5], "a", "b")
    with pytest.raises(DirectionError, match="b has no images"):
        rows_direction(np.zeros((4, 2)), [0], [], "a", "b")


def test_overlapping_groups_are_made_apart_and_the_same_refused():
    with pytest.raises(DirectionError, match="groups A and B are the same 3 images"):
        apart([3, 1, 2], [1, 2, 3, 3])
    a, b, shared = apart([1, 2, 3], [4, 5])  # apart already
    assert (a.tolist(), b.tolist(), shared) == ([1, 2, 3], [4, 5], 0)
    a, b, shared = apart([1, 2, 3], [1, 2, 3, 7, 8])  # A inside B: out of B only
    assert (a.tolist(), b.tolist(), shared) == ([1, 2, 3], [7, 8], 3)
    a, b, shared = apart([1, 2, 3, 9], [2, 3])  # B inside A: out of A only
    assert (a.tolist(), b.tolist(), shared) == ([1, 9], [2, 3], 2)
    a, b, shared = apart([1, 2, 3], [3, 4])  # each has its own: out of both
    assert (a.tolist(), b.tolist(), shared) == ([1, 2], [4], 1)


def test_sweep_ends_at_its_span():
    z = torch.tensor([1.0, -1.0])
    d = Direction("d", np.array([2.0, 4.0], dtype=np.float32), "a", "b", 1, 1)
    codes = sweep(z, d, steps=5, span=1.0)
    assert codes.shape == (5, 2)
    assert codes[0].tolist() == [1.0, -1.0] and codes[-1].tolist() == [3.0, 3.0]
    assert codes[2].tolist() == [2.0, 1.0]  # evenly spaced
    both = sweep(z, d, steps=3, span=(-1.0, 2.0))
    assert both[0].tolist() == [-1.0, -5.0] and both[-1].tolist() == [5.0, 7.0]
    assert span_of(2) == (0.0, 2.0) and span_of([-1, 1]) == (-1.0, 1.0)
    with pytest.raises(DirectionError, match="its two ends are the same"):
        span_of(0)
    with pytest.raises(DirectionError, match="2 or more steps"):
        sweep(z, d, steps=1)
    with pytest.raises(DirectionError, match="z has 3 values; the direction has 2"):
        sweep(torch.zeros(3), d)


def test_class_and_attribute_groups():
    assert class_number("3", [str(i) for i in range(10)], 10) == 3
    assert class_number("cat", ["dog", "cat"], 2) == 1
    assert class_number(1, ["dog", "cat"], 2) == 1
    with pytest.raises(DirectionError, match="unknown class 'cow'; the classes are: dog, cat"):
        class_number("cow", ["dog", "cat"], 2)
    with pytest.raises(DirectionError, match="out of range 0..1"):
        class_number("2", ["dog", "cat"], 2)
    with pytest.raises(DirectionError, match="no classes"):
        class_number("0", [], 0)
    table = np.array([[True, False], [False, False], [True, True]])
    on, off = attribute_rows((["Smiling", "Young"], table), "Smiling")
    assert on.tolist() == [0, 2] and off.tolist() == [1]
    with pytest.raises(DirectionError, match="did you mean Smiling"):
        attribute_rows((["Smiling", "Young"], table), "smiling")


def test_arithmetic_is_the_direction_between_two_single_images():
    ck = load_checkpoint(MNIST20)
    data = load_data(ck.data_spec)
    x = data.test_x[torch.tensor([3, 7, 11])]
    _row, z = arithmetic(ck.model, x, None)
    mu = posterior_means(ck.model, x)
    assert torch.allclose(z, mu[2] + mean_difference(mu[0], mu[1]), atol=1e-6)
    assert torch.allclose(z, mu[0] - mu[1] + mu[2], atol=1e-5)


def _run(argv, capsys):
    code = cli(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_the_cli_sweeps_from_class_3_to_class_8(tmp_path, capsys):
    out = tmp_path / "sweep.png"
    argv = ["direction", "--checkpoint", str(MNIST20), "--from", "3", "--to", "8"]
    code, text, err = _run([*argv, "--steps", "7", "--scale", "1", "--out", str(out)], capsys)
    assert code == 0, err
    ck = load_checkpoint(MNIST20)
    data = load_data(ck.data_spec)
    y = data.test_y.numpy()
    n3, n8 = int((y == 3).sum()), int((y == 8).sum())
    assert f"from class 3: {n3:,} test images" in text
    assert f"to class 8: {n8:,} test images" in text
    codes = posterior_means(ck.model, data.test_x)
    v = mean_difference(codes[y == 8], codes[y == 3])
    assert f"length of the direction: {float(v.norm()):.4f}" in text
    with Image.open(out) as im:
        assert im.size == (7 * 30 + 2, 32)
        row = np.asarray(im, dtype=np.float32) / 255
    # its first image is the mean 3 decoded, its last the mean 8
    ends = decode_batch(ck.model, torch.stack([codes[y == 3].mean(0), codes[y == 8].mean(0)]))
    first, last = row[2:30, 2:30], row[2:30, 6 * 30 + 2 : 6 * 30 + 30]
    assert np.abs(first - ends[0, 0].numpy()).max() < 0.01
    assert np.abs(last - ends[1, 0].numpy()).max() < 0.01
    # a GIF of the same sweep, from zero, both ways
    gif = tmp_path / "sweep.gif"
    code, text, err = _run(
        [*argv, "--start", "zero", "--span", "-1", "1", "--out", str(gif)], capsys
    )
    assert code == 0, err
    with Image.open(gif) as im:
        assert im.n_frames == 9 + 7 and im.size == (28 * 4, 28 * 4)
    assert "from the prior's mean" in err


def test_the_cli_takes_lists_of_test_images(tmp_path, capsys):
    out = tmp_path / "s.png"
    code, text, err = _run(
        ["direction", "--checkpoint", str(MNIST20), "--from-images", "0,1,2",
         "--to-images", "5", "--start", "4", "--steps", "3", "--out", str(out)],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert "from images 0,1,2: 3 test images" in text and "to images 5: 1 test images" in text
    assert "test image 4's code" in err
    assert out.is_file()


@pytest.mark.parametrize(
    "extra, message",
    [
        ([], "name the two groups: --from CLASS --to CLASS, --attribute NAME"),
        (["--from", "3"], "--to is missing"),
        (["--from", "3", "--to", "3"], "the same class"),
        (["--from", "3", "--to", "eleven"], "unknown class 'eleven'; the classes are: 0, 1"),
        (["--from", "3", "--to", "12"], "class 12 is out of range 0..9"),
        (["--from", "3", "--to", "8", "--attribute", "Smiling"], "give the groups one way"),
        (["--attribute", "Smiling"], "--attribute needs CelebA's attributes"),
        (["--from-images", "1,2"], "--to-images is missing"),
        (["--from-images", "1,x", "--to-images", "3"], "'x' is not a test image number"),
        (["--from-images", "1", "--to-images", "99999"], "image 99999 is not in the test set"),
        (["--from-images", ",", "--to-images", "3"], "--from-images names no images"),
        (["--from", "3", "--to", "8", "--start", "here"], "--start 'here': give from, zero"),
        (["--from", "3", "--to", "8", "--start", "5000"], "--start 5000: the test set has"),
        (["--from", "3", "--to", "8", "--span", "0"], "its two ends are the same"),
        (["--from", "3", "--to", "8", "--span", "1", "2", "3"], "one number or two"),
        (["--from", "3", "--to", "8", "--class", "2"], "--class only applies to a conditional"),
        (["--from", "3", "--to", "8", "--root", "x"], "--root does not apply to the checkpoint"),
    ],
)
def test_each_mistake_is_one_line(tmp_path, capsys, extra, message):
    out = tmp_path / "s.png"
    code, _text, err = _run(
        ["direction", "--checkpoint", str(MNIST20), *extra, "--out", str(out)], capsys
    )
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and not out.exists()


def test_the_output_is_checked_before_any_work(tmp_path, capsys):
    argv = ["direction", "--checkpoint", str(MNIST20), "--from", "3", "--to", "8"]
    code, _t, err = _run([*argv, "--out", str(tmp_path / "s.txt")], capsys)
    assert code == 2 and "unsupported image type '.txt'" in err
    code, _t, err = _run([*argv, "--out", str(tmp_path)], capsys)
    assert code == 2 and "is a folder" in err
    code, _t, err = _run([*argv, "--out", str(MNIST20)], capsys)
    assert code == 2


def test_a_celeba_attribute_gives_faces_without_it_to_faces_with_it(tmp_path, capsys):
    root = tmp_path / "celeba"
    # twelve test faces (partition 2), four training ones
    parts = (0, 2, 2, 0, 2, 2, 2, 0, 2, 2, 2, 2, 0, 2, 2, 2)
    _names, table = make_celeba(root, parts=parts)
    spec = DataSpec("celeba", root=str(root), image_size=32)
    data = load_data(spec)
    torch.manual_seed(0)
    model = build_model(ModelConfig(latent_dim=4, hidden=32, image_shape=(3, 32, 32)))
    ck = save_checkpoint(tmp_path / "faces.safetensors", model, TrainConfig(), spec)
    out = tmp_path / "smile.png"
    code, text, err = _run(
        ["direction", "--checkpoint", str(ck), "--attribute", "Smiling", "--steps", "4",
         "--scale", "1", "--out", str(out)],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    smiling = table[np.array(parts) == 2][:, ATTRS.index("Smiling")]
    assert f"from not Smiling: {int((~smiling).sum())} test images" in text
    assert f"to Smiling: {int(smiling.sum())} test images" in text
    codes = posterior_means(model.eval(), data.test_x)
    v = mean_difference(codes[torch.from_numpy(smiling)], codes[torch.from_numpy(~smiling)])
    assert f"length of the direction: {float(v.norm()):.4f}" in text
    with Image.open(out) as im:
        assert im.size == (4 * 34 + 2, 36) and im.mode == "RGB"
    code, _t, err = _run(
        ["direction", "--checkpoint", str(ck), "--attribute", "smiling", "--out", str(out)],
        capsys,
    )
    assert code == 2 and "unknown attribute 'smiling'; did you mean Smiling?" in err
    code, _t, err = _run(
        ["direction", "--checkpoint", str(ck), "--from", "0", "--to", "1", "--out", str(out)],
        capsys,
    )
    assert code == 2 and "has no labels: give the groups as --from-images" in err


def test_a_conditional_model_decodes_the_sweep_under_one_class(tmp_path, capsys):
    ck = ex.example_path("mnist-cvae-2d")
    out = tmp_path / "c.png"
    argv = ["direction", "--checkpoint", str(ck), "--from", "3", "--to", "8", "--out", str(out)]
    code, _text, err = _run(argv, capsys)
    assert code == 0 and "decoded as class 3" in err  # the --from class by default
    code, _text, err = _run([*argv, "--class", "5"], capsys)
    assert code == 0 and "decoded as class 5" in err
    code, _text, err = _run([*argv, "--class", "ten"], capsys)
    assert code == 2 and "unknown class 'ten'" in err


def test_folders_of_pictures_make_the_groups(tmp_path, capsys):
    ck = load_checkpoint(MNIST20)
    data = load_data(ck.data_spec)
    y = data.test_y.numpy()
    for k in (3, 8):
        (tmp_path / f"d{k}").mkdir()
        for i in np.flatnonzero(y == k)[:6]:
            Image.fromarray(data.test_x[i, 0].numpy()).save(tmp_path / f"d{k}" / f"{i}.png")
    (tmp_path / "d3" / "notes.txt").write_text("not a picture")  # passed over
    out = tmp_path / "f.png"
    argv = ["direction", "--checkpoint", str(MNIST20), "--from-images", str(tmp_path / "d3")]
    code, text, err = _run([*argv, "--to-images", str(tmp_path / "d8"), "--out", str(out)], capsys)
    assert code == 0, err
    assert "from folder d3: 6 images from the folder" in text
    assert "to folder d8: 6 images from the folder" in text
    assert out.is_file()
    # a folder and a list together
    code, text, err = _run([*argv, "--to-images", "1,2", "--out", str(out)], capsys)
    assert code == 0 and "to images 1,2: 2 test images" in text
    (tmp_path / "empty").mkdir()
    code, _t, err = _run([*argv, "--to-images", str(tmp_path / "empty"), "--out", str(out)], capsys)
    assert code == 2 and "empty: holds no pictures" in err
    inside = tmp_path / "d8" / "sweep.png"  # it would join the group's pictures
    code, _t, err = _run([*argv, "--to-images", str(tmp_path / "d8"), "--out", str(inside)], capsys)
    assert code == 2 and "which this command reads" in err and not inside.exists()
    cvae = ex.example_path("mnist-cvae-2d")
    code, _t, err = _run(
        ["direction", "--checkpoint", str(cvae), "--from-images", str(tmp_path / "d3"),
         "--to-images", "1", "--out", str(out)],
        capsys,
    )  # fmt: skip
    assert code == 2 and "a conditional model encodes each image with its class" in err
