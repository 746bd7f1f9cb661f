"""The training film: frames while training, the memory bound, GIF and MP4 export."""

import os
import stat
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from trainer.__main__ import main
from trainer.config import TrainConfig
from trainer.film import Film, FilmCancelled, FilmError, render_frame, save_film
from trainer.loop import History, Trainer, TrainingDiverged, model_config_for, train
from trainer.models import build_model


@pytest.fixture(scope="module")
def filmed(shapes):
    """A 2-D VAE trained three epochs with a film."""
    film = Film(shapes.test_x, shapes.test_y, shapes.class_names)
    cfg = TrainConfig(epochs=3, batch_size=64, lr=2e-3, device="cpu")
    trainer, _ = train(model_config_for(shapes, latent_dim=2, hidden=64), shapes, cfg, film=film)
    return film, trainer


def test_frames_start_before_training_and_close_every_epoch(filmed, shapes):
    film, trainer = filmed
    steps = [f.step for f in film.frames]
    assert steps[0] == 0 and steps == sorted(set(steps))  # one frame per step, in order
    ends = [f for f in film.frames if f.epoch_end]
    assert [f.epoch for f in ends] == [1.0, 2.0, 3.0]
    assert [f.step for f in ends] == [e["step"] for e in trainer.history.epochs]
    assert [f.test_nelbo for f in ends] == pytest.approx(
        [e["test_nelbo"] for e in trainer.history.epochs]
    )
    # within epochs, denser at the start: steps 1 to 5, then each at least 1.25x the last
    inner = [f.step for f in film.frames if not f.epoch_end and f.step > 0]
    assert inner[:5] == [1, 2, 3, 4, 5]
    assert all(b >= 1.25 * a - 1 for a, b in zip(inner, inner[1:]))
    assert all(
        f.train_nelbo is not None and f.train_nelbo > 0 for f in film.frames[1:] if not f.epoch_end
    )
    n_map = min(len(shapes.test_x), 2000)
    for f in film.frames:
        assert f.codes.shape == (n_map, 2) and f.codes.dtype == np.float16
        assert f.manifold.dtype == np.uint8 and f.manifold.shape == (15 * 28, 15 * 28)


def test_frames_change_as_the_model_learns(filmed):
    film, _ = filmed
    first, last = film.frames[0], film.frames[-1]
    change = np.abs(first.manifold.astype(float) - last.manifold.astype(float)).mean()
    assert change > 10  # grey levels: the untrained decoder's grey against learned shapes
    spread = [float(np.std(f.codes.astype(np.float32), axis=0).mean()) for f in film.frames]
    assert spread[-1] > 2 * spread[0]  # the codes spread out over the prior


def test_the_memory_bound_thins_older_frames_and_says_so(shapes):
    film = Film(shapes.test_x, shapes.test_y, shapes.class_names, budget_mb=4)
    per_frame = 15 * 28 * 15 * 28 + 2 * 2 * min(2000, len(shapes.test_x))
    cfg = TrainConfig(epochs=40, batch_size=256, lr=2e-3, device="cpu")
    train(model_config_for(shapes, latent_dim=2, hidden=32), shapes, cfg, film=film)
    assert film.nbytes <= 4 * 2**20
    assert len(film) == (4 * 2**20) // per_frame or len(film) < (4 * 2**20) // per_frame
    assert film.dropped > 0 and film.stride >= 2 and film.halvings >= 1
    assert film.frames[0].step == 0 and film.frames[-1].epoch == 40.0  # first and last kept
    # thinned evenly: no stretch of the run is left without frames
    epochs = [f.epoch for f in film.frames]
    assert max(b - a for a, b in zip(epochs, epochs[1:])) <= 2 * film.stride
    # within-epoch frames in the first three epochs only
    assert all(f.epoch < 3 for f in film.frames if not f.epoch_end and f.step)
    text = film.describe()
    assert f"{len(film)} frames" in text and "of 4 MB" in text
    assert f"({film.dropped} frames dropped)" in text and "thinned" in text
    # a larger budget thins nothing more; a smaller one thins now
    before = len(film)
    film.set_budget(2 * 4)
    assert len(film) == before
    film.set_budget(4)
    with pytest.raises(ValueError, match="4 to 4096 MB"):
        film.set_budget(1)


def test_a_diverged_run_takes_its_frames_back(shapes):
    cfg = TrainConfig(epochs=3, batch_size=32, device="cpu", snapshot_hz=1000)
    mc = model_config_for(shapes, latent_dim=2, hidden=32)
    trainer = Trainer(build_model(mc), shapes, cfg)
    film = Film(shapes.test_x, shapes.test_y, shapes.class_names)
    state = {}

    def poison(s):
        if s.epoch == 2 and "done" not in state:
            state["done"] = True
            with torch.no_grad():
                for p in trainer.model.parameters():
                    p.fill_(float("nan"))

    with pytest.raises(TrainingDiverged):
        trainer.fit(on_snapshot=poison, film=film)
    assert film.frames and all(f.step <= trainer.step for f in film.frames)
    assert all(np.isfinite(f.codes.astype(np.float32)).all() for f in film.frames)


def test_conditional_and_larger_latents(shapes):
    cfg = TrainConfig(epochs=1, batch_size=128, device="cpu")
    film = Film(shapes.test_x, shapes.test_y, shapes.class_names, klass=2)
    train(model_config_for(shapes, model="cvae", latent_dim=2, hidden=32), shapes, cfg, film=film)
    assert len(film) > 3 and film.conditional and film.klass == 2
    render_frame(film, film.frames[-1], History(), size=160)  # says which class it shows
    film5 = Film(shapes.test_x, shapes.test_y, shapes.class_names)
    train(model_config_for(shapes, latent_dim=5, hidden=32), shapes, cfg, film=film5)
    assert film5.plane_names[0].startswith("PC1")  # the principal plane of each frame's codes
    film1 = Film(shapes.test_x, None)
    train(model_config_for(shapes, latent_dim=1, hidden=32), shapes, cfg, film=film1)
    assert (film1.frames[-1].codes[:, 1] == 0).all()
    with pytest.raises(ValueError, match="labels"):
        nolabels = Film(shapes.test_x, None)
        train(
            model_config_for(shapes, model="cvae", latent_dim=2, hidden=32),
            shapes,
            cfg,
            film=nolabels,
        )


def test_a_frame_picture(filmed):
    film, trainer = filmed
    pic = render_frame(film, film.frames[-1], trainer.history, size=200, title="shapes")
    assert pic.dtype == np.uint8 and pic.shape[2] == 3 and pic.shape[1] == 2 * 200 + 24
    # the map's points wear the classes' colours
    colours = {tuple(c) for c in pic.reshape(-1, 3)}
    assert (78, 156, 255) in colours and (255, 159, 64) in colours


def test_gif_has_one_frame_per_kept_frame_and_they_differ(filmed, tmp_path):
    film, trainer = filmed
    seen = []
    path = save_film(
        film, trainer.history, tmp_path / "film.gif", fps=5, size=160, progress=seen.append
    )
    assert seen[-1] == 1.0 and seen == sorted(seen)
    with Image.open(path) as im:
        assert im.n_frames == len(film)
        pictures, durations = [], []
        for k in range(im.n_frames):
            im.seek(k)
            pictures.append(np.asarray(im.convert("RGB"), dtype=float))
            durations.append(im.info["duration"])
    assert durations[0] == 200 and durations[-1] >= 2000  # the end is held
    diffs = [np.abs(a - b).mean() for a, b in zip(pictures, pictures[1:])]
    assert all(d > 0 for d in diffs)  # every frame shows something new
    assert np.abs(pictures[0] - pictures[-1]).mean() > 3 * np.median(diffs[-3:])


def test_film_files_refused_before_work(filmed, tmp_path, monkeypatch):
    film, trainer = filmed
    with pytest.raises(FilmError, match=r"\.gif or \.mp4, not \.png"):
        save_film(film, trainer.history, tmp_path / "film.png")
    with pytest.raises(FilmError, match="does not exist"):
        save_film(film, trainer.history, tmp_path / "no" / "film.gif")
    monkeypatch.setenv("PATH", str(tmp_path))  # no ffmpeg anywhere
    with pytest.raises(FilmError, match="MP4 needs the ffmpeg program.*as .gif instead"):
        save_film(film, trainer.history, tmp_path / "film.mp4")
    empty = Film(film.images, None)
    with pytest.raises(FilmError, match="no frames yet"):
        save_film(empty, trainer.history, tmp_path / "film.gif")
    assert sorted(os.listdir(tmp_path)) == []
    with pytest.raises(FilmCancelled):
        save_film(film, trainer.history, tmp_path / "c.gif", cancelled=lambda: True)
    assert sorted(os.listdir(tmp_path)) == []


@pytest.mark.skipif(sys.platform == "win32", reason="a shell script stands in for ffmpeg")
def test_mp4_goes_through_ffmpeg_when_there_is_one(filmed, tmp_path, monkeypatch):
    """A stand-in ffmpeg records its arguments and the raw frames it is fed."""
    film, trainer = filmed
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "ffmpeg"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import pathlib, shutil, sys\n"
        "here = pathlib.Path(sys.argv[0]).parent\n"
        "(here / 'args').write_text(' '.join(sys.argv[1:]))\n"
        "with open(sys.argv[-1], 'wb') as f:\n"  # the output file is the last argument
        "    shutil.copyfileobj(sys.stdin.buffer, f)\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(bin_dir))
    path = save_film(film, trainer.history, tmp_path / "film.mp4", fps=4, size=160)
    args = (bin_dir / "args").read_text()
    assert "-f rawvideo -pix_fmt rgb24" in args and "-r 4" in args and "yuv420p" in args
    pic = render_frame(film, film.frames[0], trainer.history, size=160)
    frames_fed = len(film) + 8 - 1  # the last one held two seconds
    assert path.stat().st_size == frames_fed * pic.nbytes
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".film")]


def test_cli_train_with_a_film(tmp_path, capsys):
    out, gif = tmp_path / "run", tmp_path / "film.gif"
    code = main(
        [
            "train",
            "--dataset",
            "shapes",
            "--shapes-count",
            "600",
            "--latent-dim",
            "2",
            "--hidden",
            "32",
            "--epochs",
            "2",
            "--device",
            "cpu",
            "--out",
            str(out),
            "--film",
            str(gif),
            "--film-size",
            "160",
            "--film-fps",
            "5",
        ]
    )
    assert code == 0
    err = capsys.readouterr().err
    assert "wrote the film" in err and "frames" in err and str(gif) in err
    with Image.open(gif) as im:
        assert im.n_frames > 5 and im.info["duration"] == 200


@pytest.mark.parametrize(
    "film, message",
    [("film.txt", "a film is saved as .gif or .mp4, not .txt"), ("no/film.gif", "does not exist")],
)
def test_cli_refuses_a_film_it_cannot_write_before_training(tmp_path, capsys, film, message):
    code = main(
        [
            "train",
            "--dataset",
            "shapes",
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "run"),
            "--film",
            str(tmp_path / film),
        ]
    )
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_cli_film_memory_is_checked(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(
            [
                "train",
                "--dataset",
                "shapes",
                "--out",
                str(tmp_path / "r"),
                "--film",
                str(tmp_path / "f.gif"),
                "--film-memory",
                "1",
            ]
        )
    assert "--film-memory" in capsys.readouterr().err
