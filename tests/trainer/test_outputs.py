"""Outputs replace only what is a file to replace, and never what a command reads.

(The seeded sweep of every writer against every kind of path is test_output_fuzz.py; these
are the cases an audit named, one by one.)"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from PIL import Image

import trainer.files as files
from trainer.__main__ import main
from trainer.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from trainer.export import ExportError, write_history_csv
from trainer.loop import History

SHAPES = ["--dataset", "shapes", "--shapes-count", "200"]
TINY = ["--epochs", "1", "--hidden", "16", "--latent-dim", "2", "--threads", "1", "--device", "cpu"]


def _run(argv, capsys):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err.strip()


def _one_line_error(code, err, *fragments):
    assert code == 2, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("latent-train: error:"), err
    for f in fragments:
        assert f in err, err


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(["train", *SHAPES, *TINY, "--out", str(out)]) == 0
    return out


@pytest.fixture
def nothing_replaces_dev(monkeypatch):
    """Fails the test before anything in /dev is replaced (the suite runs as root here)."""
    real = os.replace

    def replace(src, dst, *args, **kwargs):
        if os.path.realpath(dst).startswith("/dev/"):
            raise AssertionError(f"{dst} was about to be replaced")
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="no /dev/null here")
def test_dev_null_is_never_replaced(run, tmp_path, capsys, nothing_replaces_dev):
    before = os.lstat("/dev/null")
    with pytest.raises(OSError, match="is a device"):
        files.atomic_write("/dev/null", lambda f: f.write(b"x"))
    ck = load_checkpoint(run / "checkpoint.safetensors")
    with pytest.raises(CheckpointError, match="/dev/null: is a device, not a regular file"):
        save_checkpoint("/dev/null", ck.model, ck.train_config)
    with pytest.raises(ExportError, match="nothing was written"):
        write_history_csv(History(), "/dev/null")
    argv = [
        "evaluate",
        "--checkpoint",
        run / "checkpoint.safetensors",
        "--iw-samples",
        "2",
        "--device",
        "cpu",
        "--out",
        "/dev/null",
    ]
    _one_line_error(*_run(argv, capsys), "--out /dev/null: is a device, not a regular file")
    after = os.lstat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_ino == before.st_ino
    assert not [n for n in os.listdir("/dev") if n.startswith(".null.")]  # no temporary left


def test_evaluate_out_that_is_its_checkpoint_is_refused(run, tmp_path, capsys):
    """``evaluate --checkpoint X --out X`` once replaced the model with its results."""
    ck = tmp_path / "model.safetensors"
    ck.write_bytes((run / "checkpoint.safetensors").read_bytes())
    before = ck.read_bytes()
    os.link(ck, tmp_path / "hard.json")
    os.symlink(ck, tmp_path / "soft.json")
    for out in (ck, tmp_path / "hard.json", tmp_path / "soft.json", tmp_path / "." / ck.name):
        argv = [
            "evaluate",
            "--checkpoint",
            ck,
            "--iw-samples",
            "2",
            "--limit",
            "4",
            "--device",
            "cpu",
            "--out",
            out,
        ]
        _one_line_error(*_run(argv, capsys), f"--out {out}: is the file given as --checkpoint")
    assert ck.read_bytes() == before
    # where results go by default (beside the checkpoint) is refused the same way
    named = tmp_path / "evaluation.json"
    named.write_bytes(before)
    argv = ["evaluate", "--checkpoint", named, "--iw-samples", "2", "--device", "cpu"]
    _one_line_error(*_run(argv, capsys), "is the file given as --checkpoint")
    assert named.read_bytes() == before


def test_an_image_command_never_writes_over_its_checkpoint(run, tmp_path, capsys):
    ck = tmp_path / "model.png"  # a checkpoint named as a picture
    ck.write_bytes((run / "checkpoint.safetensors").read_bytes())
    before = ck.read_bytes()
    for command in (
        ["sample"],
        ["manifold"],
        ["arithmetic", "--a", "0", "--b", "1", "--c", "2"],
        ["posterior"],
        ["traverse", "--kl-images", "0"],
        ["direction", "--from-images", "0", "--to-images", "1"],
    ):
        argv = [*command, "--checkpoint", ck, "--out", ck]
        _one_line_error(*_run(argv, capsys), "is the file given as --checkpoint")
    argv = [
        "traverse",
        "--checkpoint",
        tmp_path / "model.gif",
        "--kl-images",
        "0",
        "--gif",
        "--out",
        tmp_path / "model.png",
    ]
    os.rename(ck, tmp_path / "model.gif")  # --gif would write model.gif: the checkpoint
    _one_line_error(*_run(argv, capsys), "--gif", "is the file given as --checkpoint")
    assert (tmp_path / "model.gif").read_bytes() == before


def test_a_run_never_writes_over_or_into_what_it_trains_on(tmp_path, capsys):
    images = tmp_path / "images"
    for c in ("a", "b"):
        (images / c).mkdir(parents=True)
        for i in range(6):
            Image.new("L", (8, 8), 40 * i).save(images / c / f"{i}.png")
    data = ["--dataset", "folder", "--root", images]
    for out in (images, images / "a", images / "runs" / "one"):  # its pictures would join
        code, err = _run(["train", *data, *TINY, "--out", out], capsys)
        _one_line_error(code, err, "the folder given as --root")
        assert not (images / "runs").exists()
    film = images / "b" / "6.gif"  # one of the images
    Image.new("L", (8, 8), 250).save(film)
    before = film.read_bytes()
    code, err = _run(["train", *data, *TINY, "--out", tmp_path / "o", "--film", film], capsys)
    _one_line_error(code, err, "--film", "inside the folder given as --root")
    assert film.read_bytes() == before and not (tmp_path / "o").exists()


def test_figures_are_not_written_into_the_examples(tmp_path, capsys):
    examples = tmp_path / "examples"
    examples.mkdir()
    code, err = _run(["figures", "--examples", examples, "--out", examples], capsys)
    _one_line_error(code, err, f"--out {examples}: is the folder given as --examples")
    code, err = _run(["figures", "--examples", examples, "--out", examples / "f"], capsys)
    _one_line_error(code, err, "f: is inside the folder given as --examples")
    assert os.listdir(examples) == []


def test_a_link_to_a_file_is_written_through_and_stays_a_link(tmp_path):
    real = tmp_path / "elsewhere" / "history.csv"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "h.csv"
    os.symlink(os.path.relpath(real, tmp_path), link)
    assert write_history_csv(History(), link) == link
    assert link.is_symlink() and os.readlink(link) == os.path.relpath(real, tmp_path)
    assert real.read_text().startswith("step,epoch")
    assert sorted(p.name for p in real.parent.iterdir()) == ["history.csv"]  # no temporary
    for name, make, words in [
        ("dangling.csv", lambda p: os.symlink(tmp_path / "none", p), "a symbolic link to nothing"),
        ("loop.csv", lambda p: os.symlink(p, p), "leads round in a loop"),
        ("dir.csv", lambda p: os.symlink(tmp_path / "elsewhere", p), "a symbolic link to a folder"),
        ("pipe.csv", os.mkfifo, "is a named pipe"),
    ]:
        p = tmp_path / name
        make(p)
        before = os.lstat(p)
        with pytest.raises(ExportError) as e:
            write_history_csv(History(), p)
        assert str(e.value).startswith(f"{p}: ") and words in str(e.value)
        assert str(e.value).endswith("; nothing was written")
        assert os.lstat(p).st_ino == before.st_ino and os.lstat(p).st_mode == before.st_mode
    assert not (tmp_path / "none").exists()


def test_output_target_names_what_it_writes(tmp_path):
    assert files.output_target(tmp_path / "new.png") == tmp_path / "new.png"
    (tmp_path / "f").write_text("x")
    os.symlink("f", tmp_path / "a")
    os.symlink("a", tmp_path / "b")  # a chain
    assert files.output_target(tmp_path / "b") == Path(os.path.realpath(tmp_path / "f"))
    with pytest.raises(files.RefusedOutput, match="is a folder"):
        files.output_target(tmp_path)
    with pytest.raises(files.RefusedOutput, match="goes through a symbolic link loop"):
        os.symlink("loop", tmp_path / "loop")
        files.output_target(tmp_path / "loop" / "x.png")
