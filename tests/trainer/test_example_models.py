"""The bundled example models (assets/examples): each loads and decodes with no dataset,
the whole of assets/ keeps its size budget, a conditional example draws the class it is
asked for, and the rebuild and figures commands run end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from trainer import examples as ex
from trainer import figures
from trainer.__main__ import main as cli
from trainer.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from trainer.config import ConfigError, TrainConfig
from trainer.data import EXAMPLE, DataError, DataSpec, load_data
from trainer.evaluate import elbo_stats
from trainer.latent import decode_batch
from trainer.loop import Trainer

ASSETS = Path(__file__).resolve().parents[2] / "assets"
BUDGET = 25_000_000  # bytes: all of assets/


def _bundle(name):
    return load_data(DataSpec(source=EXAMPLE, bundle=name))


def test_every_example_of_the_catalogue_is_bundled():
    found = [e.name for e in ex.list_examples()]
    assert found == ex.names()
    for e in ex.list_examples():
        assert e.thumbnail is not None and e.command.startswith("latent-train train ")
        assert e.line and e.title


@pytest.mark.parametrize("name", ex.names())
def test_an_example_opens_and_decodes_with_no_dataset(name):
    info = next(e for e in ex.list_examples() if e.name == name)
    ck = load_checkpoint(info.path)
    assert ck.data_spec == DataSpec(source=EXAMPLE, bundle=ex.recipe(name).bundle)
    assert ck.optimizer_state is None and ck.epochs_done == ex.recipe(name).epochs
    assert len(ck.history.epochs) == ck.epochs_done  # the curves come with it
    data = _bundle(ck.data_spec.bundle)
    assert len(data.train_x) == 0 and 1000 <= len(data.test_x) <= ex.BUNDLE_IMAGES
    assert data.image_shape == ck.model_config.image_shape
    assert data.class_names == ck.class_names
    model = ck.model.eval()
    y = data.test_y if model.num_classes else None
    # the recorded test -ELBO: the same images for MNIST and shapes, a 2,000 of 10,000 sample
    # for Fashion-MNIST
    model.noise = torch.Generator().manual_seed(0)
    st = elbo_stats(model, data.test_x, y)
    recorded = info.metrics["test_nelbo"]
    tolerance = 1.0 if info.metrics["test_images"] == len(data.test_x) else 6.0
    assert abs(st.nelbo - recorded) < tolerance, (st.nelbo, recorded)
    # it reconstructs its test images: far closer than the data's mean image, and each
    # reconstruction correlates with its input
    x = data.test_x[:500].float() / 255
    with torch.no_grad():
        rec = model(x, data.test_y[:500] if model.num_classes else None)
    baseline = (x - data.test_x.float().mean(0) / 255).abs().mean()
    assert (rec - x).abs().mean() < 0.8 * baseline
    assert _correlation(x, rec).mean() > 0.65
    if model.is_variational:
        # and its samples are images, not a grey blur: pixels spread over the range, images
        # differ (an autoencoder's are not: tests/trainer: the AE against the VAE, below)
        z = torch.randn(32, model.latent_dim, generator=torch.Generator().manual_seed(1))
        imgs = decode_batch(model, z, 0 if model.num_classes else None)
        assert imgs.amax() > 0.8 and imgs.amin() < 0.1
        assert imgs.std(0).mean() > 0.03
        assert info.metrics["active_units"] >= 1
        assert info.metrics["test_nll_iw"] <= info.metrics["test_nelbo"] + 0.5
        assert abs(info.metrics["float16_nelbo_change"]) < 0.1  # the bound


def test_assets_keep_their_size_budget():
    size = sum(p.stat().st_size for p in ASSETS.rglob("*") if p.is_file())
    assert size <= BUDGET, f"assets/ holds {size / 1e6:.1f} MB, over {BUDGET / 1e6:.0f} MB"


def test_the_readme_of_assets_has_the_table_and_the_licences():
    text = (ASSETS / "README.md").read_text()
    for name in ex.names():
        assert f"`{name}`" in text
    assert "CC BY-SA 3.0" in text and "MIT" in text
    assert ex.TABLE_START in text and ex.TABLE_END in text


def _classifier(x: torch.Tensor, y: torch.Tensor, classes: int) -> torch.nn.Module:
    """Multinomial logistic regression on the pixels, trained full-batch."""
    torch.manual_seed(0)
    clf = torch.nn.Linear(x[0].numel(), classes)
    opt = torch.optim.Adam(clf.parameters(), lr=0.01, weight_decay=1e-4)
    xf = x.flatten(1).float() / 255
    for _ in range(300):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(clf(xf), y).backward()
        opt.step()
    return clf.eval()


@pytest.mark.parametrize(
    ("name", "held_out", "samples"),
    [
        ("mnist-cvae-2d", 0.85, 0.85),
        ("fashion-cvae-2d", 0.72, 0.7),
    ],
)
def test_a_conditional_example_draws_the_class_asked_for(name, held_out, samples):
    ck = load_checkpoint(ex.example_path(name))
    data = _bundle(ck.data_spec.bundle)
    k = len(data.class_names)
    clf = _classifier(data.test_x[:1500], data.test_y[:1500], k)
    with torch.no_grad():
        acc = clf(data.test_x[1500:].flatten(1).float() / 255).argmax(1) == data.test_y[1500:]
        assert acc.float().mean() > held_out  # the judge itself can tell the classes apart
        z = torch.randn(30 * k, ck.model.latent_dim, generator=torch.Generator().manual_seed(0))
        y = torch.arange(k).repeat_interleave(30)
        imgs = decode_batch(ck.model.eval(), z, y)
        said = clf(imgs.flatten(1)).argmax(1)
    per_class = [(said[y == c] == c).float().mean().item() for c in range(k)]
    assert (said == y).float().mean() > samples, per_class


def _correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation over the pixels of each pair of images: (N,)."""
    a, b = a.flatten(1), b.flatten(1)
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)


@pytest.mark.parametrize("data", ["mnist", "fashion"])
def test_an_autoencoder_cannot_be_sampled_as_its_vae_can(data):
    """The lesson of the AE examples: the autoencoder's codes of its test images lie far
    from N(0, I) (most beyond 3 standard deviations on some axis), so prior samples land
    where no image was encoded; the VAE's codes fill the prior."""
    bundle = _bundle("mnist" if data == "mnist" else "fashion-mnist")
    x = bundle.test_x.float() / 255
    outside = {}
    for kind in ("vae", "ae"):
        model = load_checkpoint(ex.example_path(f"{data}-{kind}-2d")).model.eval()
        with torch.no_grad():
            mu, _ = model.encode(x, None)
        outside[kind] = (mu.abs() > 3).any(1).float().mean().item()
    assert outside["ae"] > 0.5 and outside["vae"] < 0.1, outside


def test_bundled_images_are_not_training_data(shapes):
    ck = load_checkpoint(ex.example_path("shapes-vae-10d"))
    with pytest.raises(ConfigError, match="no training images"):
        Trainer(ck.model, _bundle("shapes"), TrainConfig(epochs=1, device="cpu"))


@pytest.mark.parametrize("bad", ["../data", "/etc", "a/b", "", "MNIST", 3, "x" * 80])
def test_a_bundle_is_named_never_pathed(bad):
    with pytest.raises(DataError):
        DataSpec(source=EXAMPLE, bundle=bad)


def test_a_checkpoint_naming_a_bad_bundle_is_refused(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save

    from trainer.checkpoint import _seal

    ck = load_checkpoint(ex.example_path("shapes-vae-10d"))
    path = save_checkpoint(
        tmp_path / "m.safetensors",
        ck.model,
        ck.train_config,
        data_spec=ck.data_spec,
        class_names=ck.class_names,
    )
    with safe_open(str(path), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        meta = json.loads(f.metadata()["latent_explorer"])
    meta["checksum"] = "sha256:" + "0" * 64  # sealed, as a writer making the fault would
    meta["data_spec"]["bundle"] = "../../x"
    blob = save(tensors, metadata={"latent_explorer": json.dumps(meta)})
    (tmp_path / "bad.safetensors").write_bytes(b"".join(_seal(blob)))
    with pytest.raises(CheckpointError, match="data_spec.*short lowercase name"):
        load_checkpoint(tmp_path / "bad.safetensors")


def test_a_missing_bundle_says_how_to_get_it_back(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENT_EXPLORER_ASSETS", str(tmp_path))
    with pytest.raises(DataError, match="examples --rebuild"):
        _bundle("mnist")


def test_rebuild_trains_converts_and_tabulates(tmp_path, capsys):
    root = tmp_path / "assets" / "examples"
    code = cli(
        [
            "examples",
            "--rebuild",
            "--only",
            "shapes-vae-10d",
            "--epochs",
            "1",
            "--iw-samples",
            "4",
            "--into",
            str(root),
        ]
    )
    assert code == 0
    folder = root / "shapes-vae-10d"
    info = json.loads((folder / ex.INFO_FILE).read_text())
    assert (
        info["command"] == "latent-train train --dataset shapes --model vae --latent-dim 10 "
        "--epochs 1 --seed 0"
    )
    m = info["metrics"]
    assert m["iw_samples"] == 4 and math.isfinite(m["test_nll_iw"]) and m["active_units"] >= 0
    ck = load_checkpoint(folder / ex.MODEL_FILE)
    assert ck.data_spec.source == EXAMPLE and ck.epochs_done == 1
    # float16 on disk: half the bytes of the float32 weights
    n = sum(p.numel() for p in ck.model.parameters())
    assert (folder / ex.MODEL_FILE).stat().st_size < 2.2 * n
    assert len(_bundle_in(root, "shapes").test_x) == 1200
    table = (root.parent / "README.md").read_text()
    assert "`shapes-vae-10d`" in table and "| 10 | 1 |" in table
    capsys.readouterr()
    assert cli(["examples", "--into", str(root)]) == 0
    assert "shapes-vae-10d" in capsys.readouterr().out


def _bundle_in(root, name):
    return ex.load_bundle(name, root=root)


def test_examples_cli_refuses_unknown_names_and_stray_options(tmp_path, capsys):
    assert cli(["examples", "--rebuild", "--only", "nope", "--into", str(tmp_path / "e")]) == 2
    assert "no example is called 'nope'" in capsys.readouterr().err
    assert cli(["examples", "--epochs", "3"]) == 2
    assert cli(["examples", "--into", str(tmp_path / "none")]) == 2
    assert "--rebuild" in capsys.readouterr().err


def test_figures_are_drawn_from_the_bundled_examples(tmp_path):
    written = figures.write_all(tmp_path)
    names = {p.name for p in written}
    assert names == {
        "figure4.png",
        "figure5.png",
        "cvae-classes.png",
        "ae-vs-vae.png",
        "kl-examples.md",
    }
    from PIL import Image

    w, h = Image.open(tmp_path / "figure4.png").size
    assert w >= 2 * figures.FIG4_N * 28 and h >= figures.FIG4_N * 28  # two 20 x 20 grids
    w, h = Image.open(tmp_path / "figure5.png").size
    assert w >= 4 * figures.SAMPLES_N * 28  # four models side by side
    assert not (tmp_path / "models").exists()  # nothing needed training


def test_figures_train_what_is_missing(tmp_path):
    asked = []

    def fake_rebuild(only, root, **kw):
        asked.append((only, root))
        src = ex.example_path(only[0])
        (root / only[0]).mkdir(parents=True)
        (root / only[0] / ex.MODEL_FILE).write_bytes(src.read_bytes())

    models = figures.Models(
        tmp_path, tmp_path / "no-examples", None, lambda t: None, rebuild=fake_rebuild
    )
    assert models("mnist-vae-2d").latent_dim == 2
    assert asked == [(["mnist-vae-2d"], tmp_path / "models")]


def test_the_kl_table_has_the_two_classic_exercises():
    rows = {(r["mu"], r["sigma"]): r for r in figures.kl_rows()}
    big, small = rows[("1e5", "100001")], rows[("1e-5", "1.00001")]
    assert float(big["exact"]) == pytest.approx(1.0e10, rel=1e-3)
    assert float(small["exact"]) == pytest.approx(1.5e-10, rel=1e-4)
    for r in (big, small):  # float32 keeps full relative precision at both ends
        assert r["float32"] == pytest.approx(float(r["exact"]), rel=1e-6)
        assert r["float64"] == pytest.approx(float(r["exact"]), rel=1e-12)
    # where the textbook formula, evaluated as written in float32, returns noise
    assert abs(small["naive_float32"] - float(small["exact"])) > float(small["exact"])
    text = figures.kl_table_markdown()
    assert "1.00001e+10" in text and "1.5e-10" in text


def test_evaluating_an_example_leaves_its_folder_as_shipped(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    folder = ex.example_path("mnist-vae-2d").parent
    before = sorted(p.name for p in folder.iterdir())
    assert (
        cli(
            [
                "evaluate",
                "--checkpoint",
                str(ex.example_path("mnist-vae-2d")),
                "--iw-samples",
                "2",
                "--limit",
                "50",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in folder.iterdir()) == before
    assert (tmp_path / "evaluation-mnist-vae-2d.json").is_file()
    assert "read-only" in capsys.readouterr().err
