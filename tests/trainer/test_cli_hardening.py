"""The command line refuses what it cannot do before doing any work, never loses a trained
model to an unwritable folder or a signal, and leaves run folders a reader can check."""

import errno
import gzip
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import trainer.cli._checks as checks
from trainer.__main__ import main
from trainer.checkpoint import load_checkpoint
from trainer.cli._signals import StopOnSignal
from trainer.config import MAX_SEED
from trainer.evaluate import final_loss_warning
from trainer.export import MANIFEST, file_record, run_problems
from trainer.loop import History

ROOT = Path(__file__).resolve().parents[2]
SHAPES = ["--dataset", "shapes", "--shapes-count", "200"]
TINY = ["--epochs", "1", "--hidden", "16", "--latent-dim", "2", "--threads", "1", "--device", "cpu"]


def _run(argv, capsys):
    """main(argv) as the shell sees it: (exit code, stderr)."""
    with pytest.raises(SystemExit) as e:
        raise SystemExit(main([str(a) for a in argv]))
    return e.value.code, capsys.readouterr().err.strip()


def _one_line_error(code, err, *fragments):
    assert code == 2, err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("latent-train: error:"), err
    for f in fragments:
        assert f in err, err


def _write_idx(folder: Path, n: int, classes: int | None, side: int = 28) -> list[str]:
    """IDX images (and labels 0..classes-1, each present) written by the test itself."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, side, side), dtype=np.uint8)
    blob = struct.pack(">BBBB3I", 0, 0, 8, 3, n, side, side) + x.tobytes()
    (folder / "images.gz").write_bytes(gzip.compress(blob))
    args = ["--dataset", "idx", "--images", folder / "images.gz"]
    if classes:
        y = (np.arange(n) % classes).astype(np.uint8)
        (folder / "labels.gz").write_bytes(
            gzip.compress(struct.pack(">BBBBI", 0, 0, 8, 1, n) + y.tobytes())
        )
        args += ["--labels", folder / "labels.gz"]
    return args


@pytest.fixture(scope="module")
def cvae_run(tmp_path_factory):
    """A tiny 5-class shapes CVAE, trained once for the module."""
    out = tmp_path_factory.mktemp("cvae")
    assert main(["train", *SHAPES, *TINY, "--model", "cvae", "--out", str(out)]) == 0
    return out


@pytest.fixture
def no_data_loading(monkeypatch):
    """Fails the test if any data is loaded: refusals must come before that."""
    import trainer.data

    def refuse(spec):
        raise AssertionError("data was loaded")

    monkeypatch.setattr(trainer.data, "load_data", refuse)


# -- 7: every number is range-checked when parsed -------------------------------------------
BIG = str(2**70)


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["train", "--seed", "-1"], f"--seed: must be 0 to {MAX_SEED}, got -1"),
        (["train", "--seed", BIG], f"--seed: must be 0 to {MAX_SEED}, got {BIG}"),
        (["evaluate", "--checkpoint", "c", "--seed", "-1"], f"--seed: must be 0 to {MAX_SEED}"),
        (["evaluate", "--checkpoint", "c", "--seed", BIG], f"--seed: must be 0 to {MAX_SEED}"),
        (["sample", "--checkpoint", "c", "--seed", "-1"], f"--seed: must be 0 to {MAX_SEED}"),
        (["sample", "--checkpoint", "c", "--seed", BIG], f"--seed: must be 0 to {MAX_SEED}"),
        (["sample", "--checkpoint", "c", "--n", "100000000"], "--n: must be 1 to 10000"),
        (["sample", "--checkpoint", "c", "--n", "0"], "--n: must be 1 to 10000"),
        (["sample", "--checkpoint", "c", "--nrow", "-3"], "--nrow: must be 1 to 10000"),
        (["sample", "--checkpoint", "c", "--scale", "0"], "--scale: must be 1 to 16"),
        (["manifold", "--checkpoint", "c", "--n", "1"], "--n: must be 2 to 100"),
        (["manifold", "--checkpoint", "c", "--dims", "-1", "0"], "--dims: must be 0 to 255"),
        (["evaluate", "--checkpoint", "c", "--limit", "0"], "--limit: must be 1 to"),
        (["evaluate", "--checkpoint", "c", "--limit", BIG], "--limit: must be 1 to"),
        (["evaluate", "--checkpoint", "c", "--iw-samples", "0"], "--iw-samples: must be 1 to"),
        (["evaluate", "--checkpoint", "c", "--prior-samples", "-5"], "--prior-samples: must be 0"),
        (["train", "--threads", "0"], "--threads: must be 1 to 1024"),
        (["train", "--hidden", "4"], "--hidden: must be 8 to 8192"),
        (["train", "--latent-dim", "0"], "--latent-dim: must be 1 to 256"),
        (["train", "--epochs", BIG], "--epochs: must be 1 to 100000"),
        (["train", "--batch-size", "0"], "--batch-size: must be 1 to 65536"),
        (["train", "--shapes-count", "5"], "--shapes-count: must be 10 to 1000000"),
        (["train", "--image-size", "7"], "--image-size: must be 8 to 256"),
        (["train", "--image-size", "2.5"], "--image-size: expected a whole number from 8 to 256"),
        (["train", "--test-fraction", "1"], "--test-fraction: must be in (0, 1), got 1"),
        (["train", "--test-fraction", "0"], "--test-fraction: must be in (0, 1)"),
        (["train", "--lr", "-1"], "--lr: must be in (0, 1], got -1"),
        (["train", "--lr", "nan"], "--lr: must be a finite number in (0, 1], got nan"),
        (["train", "--lr", "inf"], "--lr: must be a finite number"),
        (["train", "--lr", "1e400"], "--lr: must be a finite number"),
        (["train", "--beta", "-0.5"], "--beta: must be in [0, 1000], got -0.5"),
        (["train", "--warmup-epochs", "-1"], "--warmup-epochs: must be in [0, 100000]"),
        (["train", "--gaussian-std", "0"], "--gaussian-std: must be in (0, 10], got 0"),
        (["train", "--gaussian-std", "nan"], "--gaussian-std: must be a finite number"),
    ],
)
def test_every_number_is_range_checked_when_parsed(argv, fragment, tmp_path, capsys):
    if argv[0] == "train":
        argv = [*argv, "--dataset", "shapes", "--out", tmp_path / "o"]
    elif argv[0] in ("sample", "manifold"):
        argv = [*argv, "--out", tmp_path / "o.png"]
    code, err = _run(argv, capsys)
    _one_line_error(code, err, "argument " + fragment)
    assert not (tmp_path / "o").exists()


# -- 8: the output folder is proven writable before any work ----------------------------------
@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["train", *SHAPES, "--out", "o", "--epoch", "1"], "--epoch 1; did you mean --epochs?"),
        (["train", *SHAPES, "--out", "o", "--ep", "1"], "--ep 1; did you mean --epochs?"),
        (["train", *SHAPES, "--out", "o", "--latent", "2"], "unrecognized arguments: --latent 2"),
        (
            ["sample", "--checkpoint", "x", "--out", "s.png", "--clas", "1"],
            "--clas 1; did you mean --class?",
        ),
    ],
)
def test_options_are_never_abbreviated(argv, fragment, capsys, no_data_loading):
    """argparse took --epoch for --epochs (and --latent for --latent-dim) without a word."""
    code, err = _run(argv, capsys)
    _one_line_error(code, err, "unrecognized arguments", fragment)


def test_an_empty_out_is_refused(tmp_path, capsys, monkeypatch, no_data_loading):
    monkeypatch.chdir(tmp_path)
    code, err = _run(["train", *SHAPES, "--out", ""], capsys)
    _one_line_error(code, err, "--out is empty")
    assert list(tmp_path.iterdir()) == []


def test_out_under_a_regular_file_is_refused_before_loading(tmp_path, capsys, no_data_loading):
    (tmp_path / "file").write_text("x")
    code, err = _run(["train", *SHAPES, "--out", tmp_path / "file" / "run"], capsys)
    _one_line_error(code, err, f"{tmp_path / 'file'} is a file, not a folder")
    code, err = _run(["train", *SHAPES, "--out", tmp_path / "file"], capsys)
    _one_line_error(code, err, "exists and is not a folder")


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="permissions do not bind root"
)
def test_out_in_a_read_only_folder_is_refused_before_loading(tmp_path, capsys, no_data_loading):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        code, err = _run(["train", *SHAPES, "--out", locked / "run"], capsys)
        _one_line_error(code, err, "cannot write there", "nothing was trained")
        code, err = _run(["train", *SHAPES, "--out", locked], capsys)
        _one_line_error(code, err, "cannot write there")
    finally:
        locked.chmod(0o755)


@pytest.mark.parametrize(
    "err_no", [errno.EROFS, errno.EACCES, errno.ENOSPC], ids=["read-only", "555", "full"]
)
def test_an_unwritable_out_is_refused_before_loading(
    err_no, tmp_path, capsys, monkeypatch, no_data_loading
):
    """What a read-only file system, a 555 folder or a full disk do to the probe file (as
    root, permissions do not bite: the failure is made here)."""

    def probe(folder):
        raise OSError(err_no, os.strerror(err_no), str(folder / ".probe"))

    monkeypatch.setattr(checks, "probe", probe)
    code, err = _run(["train", *SHAPES, "--out", tmp_path / "new" / "run"], capsys)
    _one_line_error(code, err, os.strerror(err_no), "nothing was trained")
    assert not (tmp_path / "new" / "run").exists()  # the folder it made is gone again


def test_too_little_disk_space_is_refused_before_training(tmp_path, capsys, monkeypatch):
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=100_000))
    import trainer.loop

    monkeypatch.setattr(trainer.loop.Trainer, "fit", lambda *a, **k: pytest.fail("trained"))
    code, err = _run(["train", *SHAPES, *TINY, "--out", tmp_path / "run"], capsys)
    _one_line_error(code, err, "0.1 MB free", "make room")


def test_a_save_failing_at_the_end_keeps_the_model_elsewhere(tmp_path, capsys, monkeypatch):
    import trainer.checkpoint
    from trainer.checkpoint import CheckpointError

    real, calls = trainer.checkpoint.save_trainer, []

    def save_trainer(path, *a, **k):  # the run folder's disk fills up during training
        calls.append(Path(path))
        if len(calls) == 1:
            raise CheckpointError(f"{path}: could not be written (No space left on device)")
        return real(path, *a, **k)

    monkeypatch.setattr(trainer.checkpoint, "save_trainer", save_trainer)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    code, err = _run(["train", *SHAPES, *TINY, "--out", tmp_path / "run"], capsys)
    last = err.splitlines()[-1]
    assert code == 2 and "No space left on device" in last and "saved to" in last, err
    saved = calls[1]
    assert str(saved) in last and saved.is_relative_to(tmp_path / "share" / "latent-explorer")
    assert load_checkpoint(saved).epochs_done == 1


# -- 10: evaluate checks that data and checkpoint agree ----------------------------------------
def test_evaluate_refuses_a_cvae_on_data_with_other_classes(cvae_run, tmp_path, capsys):
    ck = cvae_run / "checkpoint.safetensors"
    data10 = _write_idx(tmp_path, 60, 10)
    code, err = _run(["evaluate", "--checkpoint", ck, *data10, "--out", tmp_path / "e"], capsys)
    _one_line_error(code, err, "conditioned on 5 classes (circle, square", "has 10 (0, 1,")
    unlabelled = _write_idx(tmp_path, 60, None)
    code, err = _run(["evaluate", "--checkpoint", ck, *unlabelled], capsys)
    _one_line_error(code, err, "--images without --labels", "conditioned on 5 classes")
    code, err = _run(["evaluate", "--checkpoint", ck, "--image-size", "32"], capsys)
    _one_line_error(code, err, "images of 1x32x32", "takes 1x28x28")
    code, err = _run(
        [
            "evaluate",
            "--checkpoint",
            ck,
            "--dataset",
            "idx",
            "--images",
            tmp_path / "gone.gz",
            "--labels",
            data10[-1],
        ],
        capsys,
    )
    _one_line_error(code, err, "gone.gz")
    assert not (tmp_path / "e").exists() and not (cvae_run / "evaluation.json").exists()


def test_evaluate_refuses_a_ten_class_cvae_on_shapes(tmp_path, capsys):
    data10 = _write_idx(tmp_path, 60, 10)
    out = tmp_path / "run"
    assert main(["train", *map(str, data10), *TINY, "--model", "cvae", "--out", str(out)]) == 0
    capsys.readouterr()
    code, err = _run(["evaluate", "--checkpoint", out / "checkpoint.safetensors", *SHAPES], capsys)
    _one_line_error(code, err, "conditioned on 10 classes", "has 5 (circle")


# -- 11: sizes are checked before anything is decoded ------------------------------------------
def test_sample_sizes_are_checked_before_decoding(cvae_run, tmp_path, capsys, monkeypatch):
    import trainer.latent

    def decode(*a, **k):
        raise AssertionError("decoded")

    monkeypatch.setattr(trainer.latent, "decode_batch", decode)
    ck = cvae_run / "checkpoint.safetensors"
    out = tmp_path / "s.png"
    code, err = _run(["sample", "--checkpoint", ck, "--n", "10000", "--out", out], capsys)
    _one_line_error(code, err, "makes 50000 images", "at most 10000")
    argv = ["sample", "--checkpoint", ck, "--class", "0", "--n", "10000", "--scale", "16"]
    code, err = _run([*argv, "--out", out], capsys)
    _one_line_error(code, err, "the grid would be 48032 x 48032 pixels")
    code, err = _run(
        ["manifold", "--checkpoint", ck, "--n", "100", "--scale", "16", "--out", out], capsys
    )
    _one_line_error(code, err, "the grid would be")
    code, err = _run(["sample", "--checkpoint", ck, "--out", tmp_path / "s.txt"], capsys)
    _one_line_error(code, err, "unsupported image type '.txt'")
    assert not out.exists()


def test_training_pictures_of_many_classes_stay_a_sensible_size(tmp_path, capsys):
    from PIL import Image

    data = _write_idx(tmp_path, 100, 25)
    code, err = _run(["train", *data, *TINY, "--model", "cvae", "--out", tmp_path / "run"], capsys)
    assert code == 0 and "the first 20 of 25 classes" in err
    with Image.open(tmp_path / "run" / "samples.png") as im:  # 10 samples in each of 20 rows
        assert im.size == (2 * (10 * 30 + 2), 2 * (20 * 30 + 2))


@pytest.mark.parametrize(
    "error",
    [MemoryError(), RuntimeError("DefaultCPUAllocator: can't allocate memory: 12.8 GB")],
    ids=["MemoryError", "torch"],
)
def test_out_of_memory_is_one_line(error, cvae_run, tmp_path, capsys, monkeypatch):
    import trainer.latent

    def sample_prior(*a, **k):
        raise error

    monkeypatch.setattr(trainer.latent, "sample_prior", sample_prior)
    ck = cvae_run / "checkpoint.safetensors"
    code, err = _run(
        ["sample", "--checkpoint", ck, "--class", "1", "--out", tmp_path / "s.png"], capsys
    )
    _one_line_error(code, err, "out of memory during sample", "--n")


def test_other_runtime_errors_are_not_taken_for_memory(cvae_run, tmp_path, monkeypatch):
    import trainer.latent

    def sample_prior(*a, **k):
        raise RuntimeError("a bug")

    monkeypatch.setattr(trainer.latent, "sample_prior", sample_prior)
    ck = str(cvae_run / "checkpoint.safetensors")
    with pytest.raises(RuntimeError, match="a bug"):
        main(["sample", "--checkpoint", ck, "--class", "1", "--out", str(tmp_path / "s.png")])


# -- 12: a run folder says whether it is complete ----------------------------------------------
class _Killed(BaseException):
    """The process dying at this point: nothing after it runs, no handler catches it."""


@pytest.mark.parametrize("dies_in", ["write_history_csv", "save_grid"])
def test_a_save_killed_midway_leaves_a_folder_that_says_so(
    dies_in, cvae_run, tmp_path, capsys, monkeypatch
):
    import trainer.export

    run = tmp_path / "run"
    shutil.copytree(cvae_run, run)
    (run / "evaluation.json").write_text("{}")  # of the old model
    assert run_problems(run) == []
    old = json.loads((run / MANIFEST).read_text())

    def die(*a, **k):  # killed just after the new checkpoint's rename
        raise _Killed

    monkeypatch.setattr(trainer.export, dies_in, die)
    with pytest.raises(_Killed):
        main(["train", *SHAPES, *TINY, "--seed", "7", "--model", "cvae", "--out", str(run)])
    assert not (run / MANIFEST).exists() and not (run / "evaluation.json").exists()
    new = run / "checkpoint.safetensors"  # seed 7's, beside nothing of the seed 0 run's
    assert file_record(new) != old["files"]["checkpoint.safetensors"]
    assert run_problems(run) == [
        f"no {MANIFEST}: the run that wrote this folder did not finish saving"
    ]


def test_a_complete_run_lists_its_files_last(cvae_run, tmp_path, capsys):
    m = json.loads((cvae_run / MANIFEST).read_text())
    assert set(m["files"]) == {
        "checkpoint.safetensors",
        "history.csv",
        "samples.png",
        "manifold.png",
    }
    assert m["checkpoint_step"] == load_checkpoint(cvae_run / "checkpoint.safetensors").step
    run = tmp_path / "run"
    shutil.copytree(cvae_run, run)
    with open(run / "samples.png", "r+b") as f:  # the same size, another picture
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert run_problems(run) == [
        f"samples.png is not the file {MANIFEST} lists (its SHA-256 differs)"
    ]
    (run / "history.csv").unlink()
    assert "history.csv is missing" in run_problems(run)
    # a new run in the same folder leaves none of the old run's files it does not write
    (run / "evaluation.json").write_text("{}")
    assert main(["train", *SHAPES, *TINY, "--latent-dim", "1", "--out", str(run)]) == 0
    assert run_problems(run) == []
    assert not (run / "manifold.png").exists() and not (run / "evaluation.json").exists()
    assert "manifold.png" not in json.loads((run / MANIFEST).read_text())["files"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_saves_the_training_and_exits_with_its_code(sig, code, tmp_path):
    out = tmp_path / "run"
    argv = [
        sys.executable,
        "-m",
        "trainer",
        "train",
        "--dataset",
        "shapes",
        "--shapes-count",
        "1000",
        "--epochs",
        "5000",
        "--hidden",
        "16",
        "--latent-dim",
        "2",
        "--threads",
        "1",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(  # with Ctrl-C's default action, even if this shell ignores it
        argv,
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    watchdog = threading.Timer(120, proc.kill)
    watchdog.start()
    try:
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if "epoch 1:" in line:
                break
        assert proc.poll() is None, "".join(seen)
        proc.send_signal(sig)
        rest = proc.stderr.read()
        assert proc.wait(60) == code, "".join(seen) + rest
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
    assert f"stopped by {signal.Signals(sig).name}" in rest and "Traceback" not in rest
    ck = load_checkpoint(out / "checkpoint.safetensors")
    assert ck.epochs_done >= 1 and ck.step >= 1
    m = json.loads((out / MANIFEST).read_text())
    assert m["stopped_by"] == signal.Signals(sig).name and m["checkpoint_step"] == ck.step
    assert run_problems(out) == []


def test_a_second_signal_interrupts_at_once(capsys):
    from trainer.loop import TrainControl

    def deliver(sig):
        os.kill(os.getpid(), sig)
        for _ in range(200):  # the handler runs at the next bytecode boundary
            time.sleep(0.005)

    before = signal.getsignal(signal.SIGTERM)
    control = TrainControl()
    with StopOnSignal(control) as stop:
        deliver(signal.SIGTERM)
        assert control.stop_requested and stop.name == "SIGTERM"
        with pytest.raises(KeyboardInterrupt) as e:
            deliver(signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is before
    assert e.value.signum == signal.SIGTERM


def test_the_same_signal_twice_at_once_is_one_stop():
    """A signal to the whole process group reaches the run directly and again through
    ``uv run``: the echo, within half a second, must not cost the save."""
    from trainer.loop import TrainControl

    control = TrainControl()
    with StopOnSignal(control) as stop:
        stop._on_signal(signal.SIGINT, None)
        stop._on_signal(signal.SIGINT, None)  # the echo: still stopping, still saving
        assert control.stop_requested and stop.name == "SIGINT"
        stop.at -= stop.ECHO_S  # later: a person's second Ctrl-C interrupts at once
        with pytest.raises(KeyboardInterrupt):
            stop._on_signal(signal.SIGINT, None)


# -- 13: a run that ended far worse than its best says so --------------------------------------
def _epochs(*losses):
    return [{"epoch": i + 1, "step": 10 * (i + 1), "test_nelbo": v} for i, v in enumerate(losses)]


def test_final_loss_warning_rule():
    assert final_loss_warning(History()) is None
    assert final_loss_warning(_epochs(100.0)) is None
    assert final_loss_warning(_epochs(100.0, 90.0, 94.9)) is None  # within 5 nats
    w = final_loss_warning(History(epochs=_epochs(250.0, 120.5, 778_354.0)))
    assert w is not None and "778,354.00 nats after epoch 3" in w
    assert "120.50 after epoch 2" in w and "lower" in w and "\n" not in w
    assert final_loss_warning(_epochs(1000.0, 1049.0)) is None  # within 5% of |best|
    assert final_loss_warning(_epochs(1000.0, 1051.0)) is not None
    assert final_loss_warning(_epochs(-500.0, -470.0)) is not None  # Gaussian: below zero
    assert final_loss_warning(_epochs(-500.0, -480.0)) is None
    assert final_loss_warning(_epochs(100.0, float("nan"), 101.0)) is None
    # a continued run is judged on its own epochs: its model was 149 on other data before
    assert final_loss_warning(_epochs(149.0, 283.0, 270.0), since_epoch=1) is None
    assert final_loss_warning(_epochs(149.0, 283.0, 270.0, 400.0), since_epoch=1) is not None


def test_train_warns_when_the_final_loss_is_far_worse(tmp_path, capsys, monkeypatch):
    from trainer.evaluate import ElboStats
    from trainer.loop import Trainer

    real = Trainer.test_stats

    def stats(self):
        s = real(self)
        return (
            ElboStats(778_354.0, 778_000.0, 354.0, s.kl_per_dim, s.n)
            if (self.epochs_done == 2)
            else s
        )

    monkeypatch.setattr(Trainer, "test_stats", stats)
    argv = ["train", *SHAPES, *TINY, "--epochs", "2", "--out", tmp_path / "run"]
    code, err = _run(argv, capsys)
    assert code == 0
    warning = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "778,354.00 nats after epoch 2" in warning[0]
    assert "after epoch 1" in warning[0] and "learning rate" in warning[0]


# -- 14: outputs, --gaussian-std, symbolic link loops ------------------------------------------
def test_evaluate_out_folder_gets_evaluation_json(cvae_run, tmp_path, capsys):
    argv = [
        "evaluate",
        "--checkpoint",
        cvae_run / "checkpoint.safetensors",
        "--iw-samples",
        "2",
        "--limit",
        "8",
        "--device",
        "cpu",
        "--out",
        tmp_path,
    ]
    code, err = _run(argv, capsys)
    assert code == 0, err
    res = json.loads((tmp_path / "evaluation.json").read_text())
    assert res["n_images"] == 8 and res["checkpoint_step"] >= 1
    assert [p.name for p in tmp_path.iterdir()] == ["evaluation.json"]
    argv[-1] = f"{tmp_path / 'new'}/"  # a folder still to be made
    assert _run(argv, capsys)[0] == 0
    assert (tmp_path / "new" / "evaluation.json").is_file()


def test_evaluate_refuses_an_unwritable_results_file_first(
    cvae_run, tmp_path, capsys, monkeypatch, no_data_loading
):
    def probe(folder):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(folder))

    monkeypatch.setattr(checks, "probe", probe)
    ck = cvae_run / "checkpoint.safetensors"
    code, err = _run(["evaluate", "--checkpoint", ck], capsys)
    _one_line_error(
        code, err, "evaluation.json: cannot be written (Read-only file system)", "pass --out FILE"
    )
    code, err = _run(["evaluate", "--checkpoint", ck, "--out", ""], capsys)
    _one_line_error(code, err, "--out is empty")


def test_sample_out_folder_is_refused_naming_it(cvae_run, tmp_path, capsys):
    ck = cvae_run / "checkpoint.safetensors"
    code, err = _run(["sample", "--checkpoint", ck, "--out", tmp_path], capsys)
    _one_line_error(code, err, f"--out {tmp_path}: is a folder", "samples.png")


def test_gaussian_std_needs_the_gaussian_decoder(tmp_path, capsys, no_data_loading):
    code, err = _run(["train", *SHAPES, "--gaussian-std", "0.3", "--out", tmp_path / "o"], capsys)
    _one_line_error(code, err, "--gaussian-std needs --likelihood gaussian")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "argv, option",
    [
        (["train", *SHAPES, "--out", "{loop}/run"], "--out"),
        (["train", *SHAPES, "--out", "{loop}"], "--out"),
        (["train", "--dataset", "folder", "--root", "{loop}", "--out", "{tmp}/o"], "--root"),
        (["train", "--dataset", "idx", "--images", "{loop}/i.gz", "--out", "{tmp}/o"], "--images"),
        (["evaluate", "--checkpoint", "{loop}"], "--checkpoint"),
        (["evaluate", "--checkpoint", "{ck}", "--out", "{loop}/e.json"], "--out"),
        (["sample", "--checkpoint", "{ck}", "--out", "{loop}/s.png"], "--out"),
        (["manifold", "--checkpoint", "{ck}", "--out", "{loop}"], "--out"),
    ],
)
def test_a_symbolic_link_loop_is_named(argv, option, cvae_run, tmp_path, capsys):
    loop = tmp_path / "loop"
    os.symlink(loop, loop)  # a link to itself
    subs = {
        "{loop}": str(loop),
        "{tmp}": str(tmp_path),
        "{ck}": str(cvae_run / "checkpoint.safetensors"),
    }
    for k, v in subs.items():
        argv = [a.replace(k, v) for a in argv]
    code, err = _run(argv, capsys)
    _one_line_error(code, err, f"{option} {loop}", "symbolic link loop")


# -- the command line says what it did: nothing given is ignored ------------------------------
@pytest.mark.parametrize(
    "argv, fragment",
    [
        (
            ["train", "--dataset", "shapes", "--images", "f.gz"],
            "--images does not apply to --dataset shapes: it names an images file "
            "(--dataset idx or npz)",
        ),
        (["train", "--root", "pictures"], "--root does not apply to --dataset mnist (the default)"),
        (
            ["train", "--dataset", "idx", "--images", "f.gz", "--image-size", "64"],
            "--image-size does not apply to --dataset idx",
        ),
        (
            ["train", "--dataset", "idx", "--images", "f.gz", "--shapes-count", "100"],
            "--shapes-count does not apply to --dataset idx",
        ),
        (
            ["train", "--dataset", "kmnist", "--test-fraction", "0.3"],
            "--test-fraction does not apply to --dataset kmnist",
        ),
        (
            ["train", "--dataset", "shapes", "--background", "black"],
            "--background does not apply to --dataset shapes",
        ),
        (
            ["train", "--dataset", "folder", "--root", "d", "--labels", "l.gz"],
            "--labels does not apply to --dataset folder",
        ),
        (
            ["evaluate", "--checkpoint", "{ck}", "--images", "f.gz"],
            "--images does not apply to the checkpoint's data (the built-in shapes)",
        ),
        (
            ["evaluate", "--checkpoint", "{ck}", "--dataset", "mnist", "--image-size", "28"],
            "--image-size does not apply to --dataset mnist",
        ),
        (
            ["train", "--dataset", "shapes", "--model", "ae", "--beta", "4"],
            "--beta does not apply to --model ae",
        ),
        (
            ["train", "--dataset", "shapes", "--model", "ae", "--warmup-epochs", "2"],
            "--warmup-epochs does not apply to --model ae",
        ),
        (
            ["manifold", "--checkpoint", "{ck}", "--plane", "pca", "--dims", "1", "0"],
            "--dims does not apply to --plane pca",
        ),
        (
            ["posterior", "--checkpoint", "{ck}", "--plane", "pca", "--dims", "1", "0"],
            "--dims does not apply to --plane pca",
        ),
        (["examples", "--iw-samples", "5"], "--iw-samples go with --rebuild"),
    ],
)
def test_an_option_that_does_not_apply_is_refused(
    argv, fragment, cvae_run, tmp_path, capsys, no_data_loading
):
    """QA: --images with shapes, --root with MNIST, --image-size or --shapes-count with IDX
    files were ignored without a word (and the run trained on other data than asked)."""
    ck = str(cvae_run / "checkpoint.safetensors")
    argv = [a.replace("{ck}", ck) for a in argv]
    if argv[0] == "train":
        argv += ["--out", tmp_path / "o"]
    elif argv[0] in ("manifold", "posterior"):
        argv += ["--out", tmp_path / "o.png"]
    elif argv[0] == "evaluate":
        argv += ["--out", tmp_path / "o.json"]
    code, err = _run(argv, capsys)
    _one_line_error(code, err, fragment)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "argv",
    [
        [
            "--dataset",
            "shapes",
            "--image-size",
            "16",
            "--shapes-count",
            "100",
            "--test-fraction",
            "0.3",
        ],
        ["--dataset", "folder", "--root", "d", "--image-size", "16", "--background", "black"],
        ["--dataset", "idx", "--images", "i.gz", "--labels", "l.gz", "--test-fraction", "0.3"],
        ["--dataset", "fashion-mnist"],
        [],
    ],
)
def test_the_options_a_source_reads_reach_its_loading(argv, tmp_path, monkeypatch):
    import trainer.data

    seen = []

    def loaded(spec, progress=None):
        seen.append(spec)
        raise KeyboardInterrupt  # (ends the run there)

    monkeypatch.setattr(trainer.data, "load_data", loaded)
    code = main(["train", *argv, *TINY, "--out", str(tmp_path / "o")])
    assert code == 130 and len(seen) == 1
    assert seen[0].source == (argv[1] if argv else "mnist")
    if "--image-size" in argv:
        assert seen[0].image_size == 16
    if "--background" in argv:
        assert seen[0].background == "black"


def test_the_data_option_table_covers_every_source():
    from trainer.cli._options import DATA_OPTIONS
    from trainer.data import EXAMPLE, SOURCES

    assert set(DATA_OPTIONS) == {*SOURCES, EXAMPLE}


def test_evaluate_takes_images_and_labels_from_one_place(tmp_path, capsys):
    """QA: evaluate --images OTHER of a conditional model on IDX data exited 0, silently
    taking the checkpoint's labels file as the labels of OTHER."""
    own, other = tmp_path / "own", tmp_path / "other"
    own.mkdir(), other.mkdir()
    data = _write_idx(own, 60, 4)
    theirs = _write_idx(other, 60, 4)
    run = tmp_path / "run"
    assert main(["train", *map(str, data), *TINY, "--model", "cvae", "--out", str(run)]) == 0
    capsys.readouterr()
    ck = run / "checkpoint.safetensors"
    evaluate = ["evaluate", "--checkpoint", ck, "--iw-samples", "2", "--out", tmp_path / "e.json"]
    code, err = _run([*evaluate, "--images", theirs[3]], capsys)
    _one_line_error(
        code,
        err,
        "--images without --labels",
        "conditioned on 4 classes",
        "the checkpoint's labels belong to its own images",
    )
    code, err = _run([*evaluate, "--dataset", "idx", "--images", theirs[3]], capsys)
    _one_line_error(code, err, "--images without --labels")
    code, err = _run([*evaluate, "--labels", theirs[5]], capsys)
    _one_line_error(code, err, "--labels without --images", "images.gz")
    assert not (tmp_path / "e.json").exists()
    code, err = _run([*evaluate, "--images", theirs[3], "--labels", theirs[5]], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "e.json").read_text())["dataset"] == "IDX file images.gz"
    code, err = _run(evaluate, capsys)  # both the checkpoint's
    assert code == 0, err


def test_an_unconditional_model_evaluated_on_other_images_takes_no_labels(tmp_path, capsys):
    own, other = tmp_path / "own", tmp_path / "other"
    own.mkdir(), other.mkdir()
    data = _write_idx(own, 60, 4)
    theirs = _write_idx(other, 60, None)
    run = tmp_path / "run"
    assert main(["train", *map(str, data), *TINY, "--out", str(run)]) == 0
    capsys.readouterr()
    ck = run / "checkpoint.safetensors"
    code, err = _run(
        [
            "evaluate",
            "--checkpoint",
            ck,
            "--iw-samples",
            "2",
            *theirs,
            "--out",
            tmp_path / "e.json",
        ],
        capsys,
    )
    assert code == 0, err
    assert "data: IDX file images.gz: 48 train / 12 test images of 1x28x28, no labels" in err


@pytest.mark.parametrize(
    "z, shown",
    [
        (["nan", "nan"], "got nan"),
        (["inf", "0"], "got inf"),
        (["0", "-inf"], "got -inf"),
        (["1e400", "0"], "got 1e400"),
        (["0", "-2000"], "must be in [-1000, 1000], got -2000"),
        (["0", "-1e300"], "got -1e300"),
    ],
)
def test_traverse_z_must_be_finite(z, shown, cvae_run, tmp_path, capsys):
    """QA: traverse --z nan nan and --z inf 0 exited 0 (with a picture of nothing)."""
    ck = cvae_run / "checkpoint.safetensors"
    code, err = _run(
        [
            "traverse",
            "--checkpoint",
            ck,
            "--kl-images",
            "0",
            "--out",
            tmp_path / "t.png",
            "--z",
            *z,
        ],
        capsys,
    )
    _one_line_error(code, err, "argument --z: ", shown)
    assert not (tmp_path / "t.png").exists()


def test_a_negative_value_is_the_option_s_value(cvae_run, tmp_path, capsys):
    """argparse took "-inf" and "-1e-3" for unknown options ("unrecognized arguments")."""
    code, err = _run(["train", *SHAPES, "--lr", "-1e-3", "--out", tmp_path / "o"], capsys)
    _one_line_error(code, err, "argument --lr: must be in (0, 1], got -1e-3")
    ck = cvae_run / "checkpoint.safetensors"
    code, err = _run(
        [
            "traverse",
            "--checkpoint",
            ck,
            "--kl-images",
            "0",
            "--out",
            tmp_path / "t.png",
            "--z",
            "-1.5",
            "-0.5",
        ],
        capsys,
    )
    assert code == 0, err


def test_thread_variables_are_kept_to_what_torch_can_take(monkeypatch):
    from trainer.loop import threads

    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    env = {"OMP_NUM_THREADS": "99999", "MKL_NUM_THREADS": "3"}
    notes = threads.tame_environment(env)
    assert env == {"OMP_NUM_THREADS": "8", "MKL_NUM_THREADS": "3"}
    assert notes == [
        "OMP_NUM_THREADS=99999 is more than 8 threads (4 for each of the 2 cores here); using 8"
    ]
    for bad in ("lots", "0", "-3", "2.5", "²"):
        env = {"OMP_NUM_THREADS": bad}
        assert threads.tame_environment(env) == [
            f"OMP_NUM_THREADS={bad} is not a whole number of threads; ignoring it"
        ]
        assert env == {}
    env = {"OMP_NUM_THREADS": "9" * 5000, "MKL_NUM_THREADS": "4,99"}  # too long for int()
    assert len(threads.tame_environment(env)) == 2
    assert env == {"OMP_NUM_THREADS": "8", "MKL_NUM_THREADS": "4,8"}
    env = {"OMP_NUM_THREADS": " "}
    assert threads.tame_environment(env) == [] and env == {}
    monkeypatch.setenv("OMP_NUM_THREADS", "99999")
    assert threads.training_threads() == 8 and threads.training_threads(1000) == 8
    assert threads.clamped(1000) == (
        "--threads 1000 is more than 8 threads (4 for each of the 2 cores here); using 8"
    )
    assert threads.clamped(8) is None


def test_a_huge_omp_num_threads_trains_and_says_so(tmp_path, program_env):
    """QA: OMP_NUM_THREADS=99999 latent-train train ... died of a segmentation fault."""
    env = dict(program_env, OMP_NUM_THREADS="99999")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainer",
            "train",
            *SHAPES,
            "--image-size",
            "8",
            "--epochs",
            "1",
            "--hidden",
            "16",
            "--latent-dim",
            "2",
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "o"),
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    from trainer.loop.threads import most_threads

    most = most_threads()  # (this machine's, as the program's)
    assert f"note: OMP_NUM_THREADS=99999 is more than {most} threads" in r.stderr
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["threads"] == most
