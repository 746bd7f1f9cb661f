"""``latent-train`` on the user's own data: NumPy files and CelebA's layout, trained on,
reopened from the checkpoint, and every misuse one line."""

import json

import numpy as np
import pytest
from test_data_celeba import make_celeba

from trainer.__main__ import main
from trainer.checkpoint import load_checkpoint

TINY = ["--epochs", "1", "--hidden", "16", "--latent-dim", "2", "--batch-size", "8"]
TINY += ["--device", "cpu"]


def _run(argv, capsys):
    with pytest.raises(SystemExit) as e:
        raise SystemExit(main([str(a) for a in argv]))
    return e.value.code, capsys.readouterr().err.strip()


def _evaluate(ck, out):
    argv = ["evaluate", "--checkpoint", ck, "--iw-samples", "2", "--prior-samples", "2"]
    assert main([*argv, "--device", "cpu", "--out", str(out)]) == 0
    return json.loads(out.read_text())


def test_celeba_trains_at_64_pixels_and_its_checkpoint_finds_it_again(tmp_path):
    make_celeba(tmp_path / "celeba")
    out = tmp_path / "run"
    argv = ["train", "--dataset", "celeba", "--root", tmp_path / "celeba", *TINY]
    assert main([str(a) for a in argv] + ["--out", str(out)]) == 0
    ck = load_checkpoint(out / "checkpoint.safetensors")
    assert ck.data_spec.source == "celeba" and ck.data_spec.image_size == 64
    assert ck.model_config.image_shape == (3, 64, 64)
    res = _evaluate(str(out / "checkpoint.safetensors"), tmp_path / "e.json")
    assert res["n_images"] == 2  # the official test split: partition 2


def test_a_conditional_model_trains_on_an_npz_and_is_evaluated_on_it_again(tmp_path):
    rng = np.random.default_rng(0)
    p = tmp_path / "mine.npz"
    np.savez(p, x=rng.integers(0, 256, (40, 12, 12), dtype=np.uint8), y=np.arange(40) % 4)
    out = tmp_path / "run"
    argv = ["train", "--dataset", "npz", "--images", p, "--model", "cvae", *TINY]
    assert main([str(a) for a in argv] + ["--out", str(out)]) == 0
    ck = load_checkpoint(out / "checkpoint.safetensors")
    assert ck.data_spec.source == "npz" and ck.data_spec.images == str(p)
    assert ck.model_config.num_classes == 4
    assert _evaluate(str(out / "checkpoint.safetensors"), tmp_path / "e.json")["n_images"] == 8
    # other images in an archive of their own, labels inside: no --labels asked for
    other = tmp_path / "other.npz"
    np.savez(other, x_train=rng.integers(0, 256, (8, 12, 12), dtype=np.uint8),
             y_train=np.arange(8) % 4, x_test=rng.integers(0, 256, (6, 12, 12), dtype=np.uint8),
             y_test=np.array([0, 1, 2, 3, 0, 1]))  # fmt: skip
    ck_path = str(out / "checkpoint.safetensors")
    argv = ["evaluate", "--checkpoint", ck_path, "--images", str(other), "--iw-samples", "2"]
    argv += ["--prior-samples", "2", "--device", "cpu", "--out", str(tmp_path / "o.json")]
    assert main(argv) == 0
    assert json.loads((tmp_path / "o.json").read_text())["n_images"] == 6


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--dataset", "npz"], "--dataset npz needs --images FILE"),
        (["--dataset", "npz", "--images", "{tmp}/no.npz"], "no.npz: no such file"),
        (
            ["--dataset", "npz", "--images", "f.npz", "--root", "d"],
            "--root does not apply to --dataset npz",
        ),
        (["--dataset", "celeba"], "--dataset celeba needs --root DIR"),
        (["--dataset", "celeba", "--root", "{tmp}/c"], "list_eval_partition.txt: no such file"),
        (
            ["--dataset", "celeba", "--root", "d", "--image-size", "48"],
            "resized to 32, 64 or 128 pixels (--image-size), not 48",
        ),
        (
            ["--dataset", "celeba", "--root", "d", "--test-fraction", "0.3"],
            "--test-fraction does not apply to --dataset celeba",
        ),
        (
            ["--dataset", "celeba", "--root", "d", "--images", "f.npz"],
            "--images does not apply to --dataset celeba: it names an images file "
            "(--dataset idx or npz)",
        ),
    ],
)
def test_misuse_is_one_line(tmp_path, capsys, argv, fragment):
    (tmp_path / "c" / "img_align_celeba").mkdir(parents=True)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, err = _run(["train", *argv, *TINY, "--out", tmp_path / "o"], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert fragment.replace("{tmp}", str(tmp_path)) in err, err
