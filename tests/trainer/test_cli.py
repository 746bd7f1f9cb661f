import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from trainer.__main__ import main

SHAPES = ["--dataset", "shapes", "--shapes-count", "600"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    code = main(
        [
            "train",
            *SHAPES,
            "--model",
            "cvae",
            "--latent-dim",
            "2",
            "--epochs",
            "2",
            "--hidden",
            "64",
            "--device",
            "cpu",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    return out


def test_train_writes_everything(run_dir):
    names = {p.name for p in run_dir.iterdir()}
    assert {
        "checkpoint.safetensors",
        "metrics.json",
        "history.csv",
        "samples.png",
        "manifold.png",
    } <= names
    m = json.loads((run_dir / "metrics.json").read_text())
    for key in ("test_nelbo", "test_recon", "test_kl", "images_per_second", "epochs"):
        assert key in m
    assert m["epochs"] == 2 and m["test_nelbo"] > 0
    assert abs(m["test_nelbo"] - m["test_recon"] - m["test_kl"]) < 1e-3
    with Image.open(run_dir / "samples.png") as im:  # one row of 10 per class
        assert im.size == (2 * (10 * 30 + 2), 2 * (5 * 30 + 2))


def test_evaluate_prints_and_writes_json(run_dir, tmp_path, capsys):
    out = tmp_path / "eval.json"
    code = main(
        [
            "evaluate",
            "--checkpoint",
            str(run_dir / "checkpoint.safetensors"),
            "--iw-samples",
            "20",
            "--prior-samples",
            "20",
            "--limit",
            "30",
            "--device",
            "cpu",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    res = json.loads(out.read_text())
    assert res["n_images"] == 30 and res["iw_samples"] == 20
    assert res["test_nll_iw"] < res["test_nelbo"] + 3  # the IW bound is at least as tight
    assert res["test_nll_prior_mc"] > res["test_nll_iw"]
    assert "test_nll_iw" in capsys.readouterr().out


def test_conditional_defaults_show_every_class(run_dir, tmp_path):
    ck = str(run_dir / "checkpoint.safetensors")
    assert (
        main(
            [
                "sample",
                "--checkpoint",
                ck,
                "--n",
                "6",
                "--scale",
                "1",
                "--out",
                str(tmp_path / "rows.png"),
            ]
        )
        == 0
    )
    with Image.open(tmp_path / "rows.png") as im:  # 5 classes x 6 samples, the same z per column
        assert im.size == (6 * 30 + 2, 5 * 30 + 2)
    assert (
        main(
            [
                "manifold",
                "--checkpoint",
                ck,
                "--n",
                "4",
                "--scale",
                "1",
                "--out",
                str(tmp_path / "all.png"),
            ]
        )
        == 0
    )
    with Image.open(tmp_path / "all.png") as im:  # 5 grids of 4 x 4 (padding 0), gap 6
        assert im.size == (5 * (4 * 28 + 6) + 6, 4 * 28 + 12)


def test_output_image_type_follows_the_extension(run_dir, tmp_path, capsys):
    ck = str(run_dir / "checkpoint.safetensors")
    assert (
        main(
            [
                "sample",
                "--checkpoint",
                ck,
                "--class",
                "0",
                "--n",
                "4",
                "--out",
                str(tmp_path / "s.jpg"),
            ]
        )
        == 0
    )
    with Image.open(tmp_path / "s.jpg") as im:
        assert im.format == "JPEG"
    code, err = _err(
        ["sample", "--checkpoint", ck, "--class", "0", "--out", str(tmp_path / "s.txt")], capsys
    )
    assert code == 2 and "unsupported image type '.txt'" in err
    assert not (tmp_path / "s.txt").exists()


def test_sample_and_manifold_pngs(run_dir, tmp_path):
    ck = str(run_dir / "checkpoint.safetensors")
    assert (
        main(
            [
                "sample",
                "--checkpoint",
                ck,
                "--n",
                "16",
                "--class",
                "ring",
                "--scale",
                "1",
                "--out",
                str(tmp_path / "s.png"),
            ]
        )
        == 0
    )
    with Image.open(tmp_path / "s.png") as im:
        assert im.size == (4 * 30 + 2, 4 * 30 + 2)
    assert (
        main(
            [
                "manifold",
                "--checkpoint",
                ck,
                "--n",
                "7",
                "--class",
                "2",
                "--scale",
                "1",
                "--out",
                str(tmp_path / "m.png"),
            ]
        )
        == 0
    )
    with Image.open(tmp_path / "m.png") as im:
        assert im.size == (7 * 28, 7 * 28)


def _err(argv, capsys):
    with pytest.raises(SystemExit) as e:
        code = main(argv)
        raise SystemExit(code)
    err = capsys.readouterr().err.strip()
    return e.value.code, err


@pytest.mark.parametrize(
    "argv,message",
    [
        (
            ["train", *SHAPES, "--latent-dim", "300", "--out", "{tmp}/o"],
            "argument --latent-dim: must be 1 to 256, got 300",
        ),
        (
            ["train", "--dataset", "idx", "--images", "{tmp}/none.gz", "--out", "{tmp}/o"],
            "none.gz: no such file",
        ),
        (["train", "--dataset", "idx", "--out", "{tmp}/o"], "needs --images"),
        (
            ["train", "--dataset", "folder", "--root", "{tmp}/nowhere", "--out", "{tmp}/o"],
            "no such folder",
        ),
        (
            ["train", *SHAPES, "--arch", "conv", "--image-size", "30", "--out", "{tmp}/o"],
            "conv body",
        ),
        (["train", *SHAPES, "--lr", "0", "--out", "{tmp}/o"], "--lr: must be in (0, 1], got 0"),
        (["train", *SHAPES, "--epochs", "0", "--out", "{tmp}/o"], "--epochs: must be 1 to 100000"),
        (["train", *SHAPES, "--lr", "fast", "--out", "{tmp}/o"], "expected a number"),
        (
            ["sample", "--checkpoint", "{tmp}/missing.safetensors", "--out", "{tmp}/s.png"],
            "no such file",
        ),
        (
            ["sample", "--checkpoint", "{tmp}/bad.safetensors", "--out", "{tmp}/s.png"],
            "bad.safetensors",
        ),
        (["train", "--dataset", "mnist", "--model", "gan", "--out", "{tmp}/o"], "invalid choice"),
        (
            [
                "sample",
                "--checkpoint",
                "{tmp}/bad.safetensors",
                "--scale",
                "1000",
                "--out",
                "s.png",
            ],
            "must be 1 to 16",
        ),
    ],
)
def test_user_mistakes_give_one_line_and_exit_2(argv, message, tmp_path, capsys):
    (tmp_path / "bad.safetensors").write_bytes(b"this is not a checkpoint at all")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, err = _err(argv, capsys)
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err  # one line, nothing before it
    assert err.startswith("latent-train: error:")


def test_class_errors(run_dir, tmp_path, capsys):
    ck = str(run_dir / "checkpoint.safetensors")
    code, err = _err(
        ["sample", "--checkpoint", ck, "--class", "hexagon", "--out", str(tmp_path / "x.png")],
        capsys,
    )
    assert code == 2 and "unknown class 'hexagon'" in err and "circle" in err
    code, err = _err(
        ["manifold", "--checkpoint", ck, "--dims", "0", "0", "--out", str(tmp_path / "x.png")],
        capsys,
    )
    assert code == 2 and "two different dimensions" in err


def test_cvae_on_unlabelled_data_is_refused(tmp_path, capsys):
    import gzip
    import struct

    import numpy as np

    blob = struct.pack(">BBBB3I", 0, 0, 8, 3, 20, 28, 28) + np.zeros(20 * 784, np.uint8).tobytes()
    (tmp_path / "i.gz").write_bytes(gzip.compress(blob))
    code, err = _err(
        [
            "train",
            "--dataset",
            "idx",
            "--images",
            str(tmp_path / "i.gz"),
            "--model",
            "cvae",
            "--out",
            str(tmp_path / "o"),
        ],
        capsys,
    )
    assert code == 2 and "needs labelled data" in err


def test_module_entry_point_runs():
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-m", "trainer", "--help"],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=120,
    )
    assert out.returncode == 0 and "train" in out.stdout and "manifold" in out.stdout


def test_a_diverging_run_keeps_its_last_good_model(tmp_path, capsys, monkeypatch):
    import torch

    from trainer.evaluate import ElboStats
    from trainer.loop import Trainer

    real_stats = Trainer.test_stats

    def stats(self):  # the test loss blows up after the second epoch
        if self.epochs_done == 2:
            return ElboStats(float("nan"), float("nan"), float("nan"), None, 0)
        return real_stats(self)

    monkeypatch.setattr(Trainer, "test_stats", stats)
    out = tmp_path / "run"
    code, err = _err(
        [
            "train",
            *SHAPES,
            "--epochs",
            "3",
            "--latent-dim",
            "2",
            "--hidden",
            "32",
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert "diverged" in last and "end of epoch 1" in last and "saved in" in last
    from trainer.checkpoint import load_checkpoint

    ck = load_checkpoint(out / "checkpoint.safetensors")
    assert ck.epochs_done == 1 and len(ck.history.epochs) == 1
    assert ck.history.last_step == ck.history.epochs[0]["step"]
    assert all(torch.isfinite(p).all() for p in ck.model.parameters())


def test_threads_default_leave_a_core_and_follow_the_user(monkeypatch):
    """QA: on a busy machine the CLI fell from 16,505 to 395 img/s with torch's default
    threads; it now chooses threads as the window does."""
    from trainer.loop import threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "usable_cores", lambda: 8)
    assert threads.training_threads() == 7
    monkeypatch.setattr(threads, "usable_cores", lambda: 1)
    assert threads.training_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.training_threads() == 3
    assert threads.training_threads(2) == 2  # --threads wins


@pytest.mark.parametrize("extra, expected", [([], None), (["--threads", "1"], 1)])
def test_train_uses_the_chosen_threads(tmp_path, monkeypatch, capsys, extra, expected):
    import torch

    from trainer.loop import threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    try:
        code = main(
            [
                "train",
                *SHAPES,
                "--epochs",
                "1",
                "--hidden",
                "32",
                "--device",
                "cpu",
                "--out",
                str(tmp_path),
                *extra,
            ]
        )
        used = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    assert code == 0
    want = expected or threads.training_threads()
    assert used == want
    assert json.loads((tmp_path / "metrics.json").read_text())["threads"] == want
    err = capsys.readouterr().err
    assert threads.describe(want, expected) in err
    assert ("(--threads)" in err) == bool(expected) and "for 1 epoch\n" in err
