"""A project's runs: a stopped and continued model is one run; a run's training film is kept
beside it (compact, checksummed, refused whole when damaged or foreign) and read back as it
was; the examples' data column names what they were trained on."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trainer import examples as ex
from trainer.__main__ import main as cli
from trainer.checkpoint import load_checkpoint, save_checkpoint
from trainer.config import TrainConfig
from trainer.film import Film, FilmError, render_frame
from trainer.film_file import FILM_FORMAT, FILM_MAGIC, read_film, write_film
from trainer.loop import Trainer, model_config_for
from trainer.models import build_model
from trainer.runs import FILM_FILE, Project, table


@pytest.fixture(scope="module")
def run(shapes):
    """A 2-D VAE trained two epochs, filmed."""
    cfg = TrainConfig(epochs=2, batch_size=64, lr=2e-3, device="cpu")
    trainer = Trainer(build_model(model_config_for(shapes, latent_dim=2, hidden=32)), shapes, cfg)
    film = Film(shapes.test_x, shapes.test_y, shapes.class_names)
    trainer.fit(film=film)
    return trainer, film, cfg


def saver(trainer, cfg, shapes):
    def save(path):
        return save_checkpoint(
            path,
            trainer.model,
            cfg,
            data_spec=shapes_spec(),
            class_names=shapes.class_names,
            history=trainer.history,
            optimizer_state=trainer.optimizer.state_dict(),
            epochs_done=trainer.epochs_done,
            step=trainer.step,
            position=trainer.position(),
        )

    return save


def shapes_spec():
    from trainer.data import DataSpec

    return DataSpec("shapes", shapes_count=1200, seed=0)


def test_a_film_reads_back_as_it_was_kept_and_goes_on(run, shapes, tmp_path):
    trainer, film, cfg = run
    path = write_film(film, tmp_path / "film.bin", {"run": "r1", "step": trainer.step})
    # the frames as in memory (within the film's bound), the images it encodes packed
    assert path.stat().st_size < film.nbytes + film.images.numel() // 4 + 65536
    back = read_film(path)
    assert back.owner == {"run": "r1", "step": trainer.step}
    assert len(back) == len(film) and back.describe() == film.describe()
    for a, b in zip(film.frames, back.frames, strict=True):
        assert (a.step, a.epoch, a.epoch_end, a.test_nelbo, a.train_nelbo) == (
            b.step,
            b.epoch,
            b.epoch_end,
            b.test_nelbo,
            b.train_nelbo,
        )
        assert np.array_equal(a.manifold, b.manifold) and np.array_equal(a.codes, b.codes)
    assert np.array_equal(
        render_frame(film, film.frames[-1], trainer.history, size=160),
        render_frame(back, back.frames[-1], trainer.history, size=160),
    )
    # a continue carries the film read back on: the new frames follow the kept ones
    n = len(back)
    trainer.fit(epochs=1, film=back)
    assert len(back) > n and back.frames[-1].epoch == trainer.epochs_done
    assert [f.step for f in back.frames] == sorted(f.step for f in back.frames)


def test_a_damaged_or_foreign_film_is_refused_whole(run, tmp_path):
    _trainer, film, _ = run
    good = write_film(film, tmp_path / "film.bin", {"run": "r1"}).read_bytes()
    cases = {
        "not a film kept by Latent Explorer": b"GIF89a" + good[6:],
        "cut short": good[:-100],
        "checksum": good[:-50] + bytes([good[-50] ^ 1]) + good[-49:],
        "bytes after its frames": good + b"x",
        "header": good[: len(FILM_MAGIC) + 8] + b"}" + good[len(FILM_MAGIC) + 9 :],
    }
    n = int.from_bytes(good[len(FILM_MAGIC) : len(FILM_MAGIC) + 8], "little")
    head = json.loads(good[len(FILM_MAGIC) + 8 : len(FILM_MAGIC) + 8 + n])
    head["format"] = FILM_FORMAT + 1
    newer = json.dumps(head).encode()
    cases["newer version"] = (
        FILM_MAGIC + len(newer).to_bytes(8, "little") + newer + good[len(FILM_MAGIC) + 8 + n :]
    )
    for why, blob in cases.items():
        bad = tmp_path / "bad.bin"
        bad.write_bytes(blob)
        with pytest.raises(FilmError, match=why) as e:
            read_film(bad)
        assert str(bad) in str(e.value)
    # any byte of the header changed: a film as it was, or refused with FilmError, no other
    rng = np.random.default_rng(0)
    for i in rng.choice(len(FILM_MAGIC) + 8 + n, 300, replace=False):
        blob = bytearray(good)
        blob[i] ^= int(rng.integers(1, 256))
        (tmp_path / "flip.bin").write_bytes(bytes(blob))
        try:
            read_film(tmp_path / "flip.bin")
        except FilmError:
            pass
    with pytest.raises(FilmError, match="could not be read"):
        read_film(tmp_path)


def test_a_stopped_and_continued_model_is_one_run_with_its_film(run, shapes, tmp_path, capsys):
    trainer, film, cfg = run
    project = Project(tmp_path / "project")
    rec = project.add_trained(saver(trainer, cfg, shapes))
    assert project.keep_film(rec.id, film).film == len(film)
    assert (project.runs_dir / rec.id / FILM_FILE).is_file()
    assert len(project.film(project.get(rec.id))) == len(film)
    assert cli(["runs", "--project", str(project.folder)]) == 0
    out = capsys.readouterr().out
    assert "film" in out.splitlines()[0] and f"{len(film)} frames" in out
    # trained further: the same run, brought up to date; the film of the model before goes
    trainer.fit(epochs=1)
    again = project.update_trained(rec.id, saver(trainer, cfg, shapes))
    assert [r.id for r in project.runs()] == [rec.id]
    assert again.name == rec.name and again.created == rec.created
    assert again.epochs == trainer.epochs_done and again.steps == trainer.step
    assert [e for e, _ in again.curve] == list(range(1, trainer.epochs_done + 1))
    assert load_checkpoint(again.checkpoint).step == trainer.step
    assert again.film == 0 and project.film(again) is None
    # a film kept for another state of the model is not given as this one's
    write_film(film, project.runs_dir / rec.id / FILM_FILE, {"run": rec.id, "step": 1})
    again.film = len(film)
    with pytest.raises(FilmError, match="another model"):
        project.film(again)
    project.remove(rec.id)
    assert not (project.runs_dir / rec.id).exists()


def test_runs_kept_by_an_older_version_are_read(run, shapes, tmp_path):
    trainer, _film, cfg = run
    project = Project(tmp_path / "project")
    rec = project.add_trained(saver(trainer, cfg, shapes))
    f = project.runs_dir / rec.id / "run.json"
    raw = json.loads(f.read_text())
    del raw["film"]
    f.write_text(json.dumps(raw))
    assert [r.film for r in project.runs()] == [0] and not project.problems


def test_the_examples_data_column_names_what_they_were_trained_on(tmp_path):
    project = Project(tmp_path / "project")
    rows = {}
    for name in ("mnist-vae-2d", "fashion-vae-2d", "shapes-vae-10d"):
        rec = project.add_file(ex.example_path(name))
        rows[name] = table([rec])[0][1]
    assert "8,000" in rows["mnist-vae-2d"] and "t10k" in rows["mnist-vae-2d"]
    assert "60,000 training images" in rows["fashion-vae-2d"]
    assert "4,800" in rows["shapes-vae-10d"]
    assert not any("bundled" in v for v in rows.values())


def test_a_users_model_run_is_checked_field_by_field(run, shapes, tmp_path):
    """The ``own`` object of a user's model's run: each mistake skips the run with one line
    naming the field."""
    trainer, _film, cfg = run
    project = Project(tmp_path / "project")
    rec = project.add_trained(saver(trainer, cfg, shapes))
    f = project.runs_dir / rec.id / "run.json"
    raw = json.loads(f.read_text())
    good = {"spec": "/x/my_vae.py:build", "sha256": "a" * 64, "output": "logits", "data": {}}
    for own, said in [
        (good, None),
        ({**good, "sha256": "xyz"}, "'own.sha256' must be 64 hexadecimal digits"),
        ({**good, "output": "pixels"}, "'own.output' must be one of logits, probs, mean"),
        ({k: v for k, v in good.items() if k != "data"}, "'own.data' is missing"),
        ({"onnx": "elsewhere", "data": {}}, "'own.onnx' must be 'onnx'"),
    ]:
        f.write_text(json.dumps({**raw, "source": "own", "own": own}))
        runs = project.runs()
        if said is None:
            assert runs[0].own == good and not project.problems
        else:
            assert runs == [] and len(project.problems) == 1
            assert said in project.problems[0] and "\n" not in project.problems[0]


def test_a_users_model_run_shows_its_code_where_it_has_no_setting(run, shapes, tmp_path, capsys):
    """``latent-train runs``: a setting a user's model has not (its hidden size, say) is
    shown as its code, never as None."""
    trainer, _film, cfg = run
    project = Project(tmp_path / "project")
    rec = project.add_trained(saver(trainer, cfg, shapes))
    own = project.add_trained(saver(trainer, cfg, shapes))
    f = project.runs_dir / own.id / "run.json"
    raw = json.loads(f.read_text())
    raw["model"] = {"model": "vae", "arch": "foreign", "latent_dim": 2, "likelihood": "bernoulli"}
    raw["train"] = {}
    raw["own"] = {"spec": "/x/my_vae.py:build", "sha256": "a" * 64, "output": "logits", "data": {}}
    raw["source"] = "own"
    f.write_text(json.dumps(raw))
    assert cli(["runs", "--project", str(project.folder)]) == 0
    out = capsys.readouterr().out
    diff = next(line for line in out.splitlines() if line.startswith("settings that differ"))
    assert "None" not in diff, diff
    assert f"hidden {rec.model['hidden']} / (your my_vae.py:build)" in diff, diff
    assert f"beta {rec.train['beta']} / (your my_vae.py:build)" in diff, diff


def test_a_users_models_training_reads_back_and_a_damaged_one_is_one_line(run, tmp_path):
    from trainer.checkpoint import CheckpointError
    from trainer.checkpoint.training import Training, load_training, save_training

    trainer, _film, cfg = run
    params = [tuple(p.shape) for p in trainer.model.parameters() if p.requires_grad]
    t = Training(
        cfg,
        trainer.history,
        trainer.epochs_done,
        trainer.step,
        trainer.optimizer.state_dict(),
        trainer.position(),
    )
    path = save_training(tmp_path / "training.safetensors", t)
    got = load_training(path, params)
    assert got.train_config == cfg and got.epochs_done == trainer.epochs_done
    assert got.step == trainer.step and got.history.to_dict() == trainer.history.to_dict()
    trainer.optimizer.load_state_dict(got.optimizer_state)  # fits the optimiser it came from
    with pytest.raises(CheckpointError, match="optimizer"):
        load_training(path, params[:-1])  # another model's
    path.write_bytes(b"not a file of training")
    with pytest.raises(CheckpointError, match="is not the training of a model of yours") as e:
        load_training(path, params)
    assert "\n" not in str(e.value)
