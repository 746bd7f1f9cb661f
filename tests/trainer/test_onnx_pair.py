"""ONNX pairs: `latent-train export-model` writes one for a project checkpoint (the bundled
examples too), and trainer.onnx_pair reads it back with onnxruntime, in a process that has
none of the model's code, giving the same encodes and decodes; every damaged or missing part
is one line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from trainer.cli import main
from trainer.config import ModelConfig
from trainer.models import LatentModel
from trainer.onnx_pair import OnnxPairError, export_onnx_pair, read_facts, read_onnx_pair

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "assets" / "examples"
BUNDLED = ("mnist-vae-2d", "mnist-cvae-2d")

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    """The two bundled examples exported by the command line: name -> folder."""
    root = tmp_path_factory.mktemp("pairs")
    found = {}
    for name in BUNDLED:
        out = root / name
        ck = EXAMPLES / name / "model.safetensors"
        assert main(["export-model", "--checkpoint", str(ck), "--out", str(out)]) == 0
        found[name] = out
    return found


def _checkpoint(name: str):
    from trainer.checkpoint import load_checkpoint

    return load_checkpoint(EXAMPLES / name / "model.safetensors")


def _one_line_error(excinfo) -> str:
    text = str(excinfo.value)
    assert "\n" not in text and text.strip() == text and text
    return text


# -- what matters: the same model without its code -------------------------------------------
CHILD = r"""
import sys
sys.modules["trainer.models"] = None  # the model's code cannot be imported in this process
try:
    import trainer.models  # noqa: F401
except ImportError:
    blocked = True
else:
    blocked = False
import numpy as np
import torch
from trainer.onnx_pair import read_onnx_pair

for folder, given, written in zip(*[iter(sys.argv[1:])] * 3):
    pair = read_onnx_pair(folder)
    given = np.load(given)
    y = torch.from_numpy(given["y"]) if "y" in given else None
    out = {}
    for n in (1, len(given["x"])):  # one image, and a batch: the batch axis is dynamic
        yy = None if y is None else y[:n]
        mu, logvar = pair.encode(torch.from_numpy(given["x"][:n]), yy)
        out[f"mu{n}"], out[f"logvar{n}"] = mu.numpy(), logvar.numpy()
        out[f"out{n}"] = pair.decode(torch.from_numpy(given["z"][:n]), yy).numpy()
    np.savez(written, **out)
    print(pair.facts.class_names)
models = sys.modules.get("trainer.models")
print("blocked" if blocked else "imported", "absent" if models is None else "present")
"""


def test_the_bundled_examples_exported_reopen_with_the_same_encodes_and_decodes_without_code(
    pairs, tmp_path
):
    """The pairs are read, and run, in a process where importing trainer.models fails."""
    jobs, refs = [], {}
    for name in BUNDLED:
        ck = _checkpoint(name)
        model, mc = ck.model.eval(), ck.model_config
        gen = torch.Generator().manual_seed(0)
        x = torch.rand(9, *mc.image_shape, generator=gen)
        z = 2 * torch.randn(9, mc.latent_dim, generator=gen)
        y = torch.arange(9) % mc.num_classes if mc.conditional else None
        given = {"x": x.numpy(), "z": z.numpy()} | ({"y": y.numpy()} if y is not None else {})
        np.savez(tmp_path / f"{name}-in.npz", **given)
        jobs += [str(pairs[name]), tmp_path / f"{name}-in.npz", tmp_path / f"{name}-out.npz"]
        for n in (1, 9):
            yy = None if y is None else y[:n]
            with torch.no_grad():
                mu, logvar = model.encode(x[:n], yy)
                out = model.decode(z[:n], yy)
            refs[name, n] = {"mu": mu, "logvar": logvar, "out": out}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *map(str, jobs)],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "blocked absent", done.stdout  # the child could not import the models
    assert lines[0] == "[]" and "'7'" in lines[1]  # the CVAE's class names came along
    worst = {}
    for (name, n), ref in refs.items():
        got = np.load(tmp_path / f"{name}-out.npz")
        for key, t in ref.items():
            diff = float(np.abs(got[f"{key}{n}"] - t.numpy()).max())
            worst[name, key, n] = diff
    assert max(worst.values()) < 1e-4, worst


def test_export_model_writes_three_files_whose_facts_are_the_checkpoints(pairs, capsys):
    facts = read_facts(pairs["mnist-cvae-2d"] / "model.json")
    assert facts.latent_dim == 2 and facts.image_shape == (1, 28, 28)
    assert facts.num_classes == 10 and facts.class_names == [str(k) for k in range(10)]
    assert facts.output == "logits" and facts.variational and facts.std is None
    vae = read_facts(pairs["mnist-vae-2d"] / "model.json")
    assert vae.num_classes == 0 and vae.class_names == []
    names = sorted(p.name for p in pairs["mnist-vae-2d"].iterdir())
    assert names == ["decoder.onnx", "encoder.onnx", "model.json"]


def test_the_graphs_use_standard_operators_only(pairs):
    onnx = pytest.importorskip("onnx")
    for name in ("encoder.onnx", "decoder.onnx"):
        proto = onnx.load(pairs["mnist-cvae-2d"] / name)
        onnx.checker.check_model(proto, full_check=True)
        domains = {n.domain for n in proto.graph.node}
        assert domains <= {"", "ai.onnx"}, domains
        assert not proto.functions  # no custom functions either


def test_a_convolutional_gaussian_conditional_model_gives_its_mean_and_std(tmp_path):
    torch.manual_seed(0)
    config = ModelConfig(
        model="cvae",
        arch="conv",
        latent_dim=3,
        hidden=32,
        image_shape=(3, 32, 32),
        likelihood="gaussian",
        gaussian_std=0.2,
        num_classes=4,
    )
    model = LatentModel(config).eval()
    export_onnx_pair(model, tmp_path, ["a", "b", "c", "d"])
    pair = read_onnx_pair(tmp_path)
    assert pair.facts.output == "mean" and pair.facts.std == pytest.approx(0.2)
    x, z, y = torch.rand(5, 3, 32, 32), torch.randn(5, 3), torch.tensor([0, 1, 2, 3, 0])
    with torch.no_grad():
        mu, _ = model.encode(x, y)
        mean = model.decode_image(z, y)
    assert float((pair.encode(x, y)[0] - mu).abs().max()) < 1e-4
    assert float((pair.decode(z, y) - mean).abs().max()) < 1e-4
    # one-hot rows are taken as the classes they mark
    onehot = torch.nn.functional.one_hot(y, 4).float()
    assert torch.equal(pair.decode(z, onehot), pair.decode(z, y))
    args, kwargs = pair.foreign_arguments()
    assert kwargs["num_classes"] == 4 and kwargs["image_shape"] == (3, 32, 32)
    assert kwargs["output"] == "mean" and kwargs["std"] == pytest.approx(0.2)
    assert args == (pair.encode, pair.decode)


def test_an_autoencoders_pair_gives_its_codes_alone(tmp_path):
    ck = _checkpoint("mnist-ae-2d")
    export_onnx_pair(ck.model, tmp_path, ck.class_names)
    pair = read_onnx_pair(tmp_path)
    assert not pair.facts.variational
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        z, none = ck.model.eval().encode(x)
    codes = pair.encode(x)
    assert none is None and isinstance(codes, torch.Tensor)
    assert float((codes - z).abs().max()) < 1e-4


def test_a_pair_becomes_a_foreign_model(pairs):
    foreign = pytest.importorskip("trainer.foreign")
    pair = read_onnx_pair(pairs["mnist-vae-2d"])
    args, kwargs = pair.foreign_arguments()
    model = foreign.ForeignModel(*args, **kwargs)
    mu, logvar = model.encode(torch.rand(3, 1, 28, 28))
    assert mu.shape == (3, 2) and logvar is not None
    assert model.decode(mu).shape[0] == 3


# -- mistakes, each one line -------------------------------------------------------------------
@pytest.fixture
def copy(pairs, tmp_path):
    out = tmp_path / "pair"
    shutil.copytree(pairs["mnist-vae-2d"], out)
    return out


def test_a_missing_folder_or_file_is_named(copy, tmp_path):
    with pytest.raises(OnnxPairError) as e:
        read_onnx_pair(tmp_path / "nowhere")
    assert "does not exist" in _one_line_error(e)
    (copy / "decoder.onnx").unlink()
    with pytest.raises(OnnxPairError) as e:
        read_onnx_pair(copy)
    assert _one_line_error(e).endswith("decoder.onnx: does not exist")
    with pytest.raises(OnnxPairError) as e:
        read_onnx_pair(copy / "model.json")
    assert "is a file; an ONNX pair is a folder" in _one_line_error(e)


def test_a_damaged_model_json_names_the_file_and_the_field(copy):
    facts = json.loads((copy / "model.json").read_text())
    (copy / "model.json").write_text(json.dumps(facts)[:40])
    with pytest.raises(OnnxPairError) as e:
        read_onnx_pair(copy)
    assert "model.json: is not valid JSON" in _one_line_error(e)
    cases = [
        ({"latent_dim": "two"}, "'latent_dim' must be a whole number"),
        ({"image_shape": [1, 28]}, "'image_shape' must be 3 whole numbers"),
        ({"output": "pixels"}, "'output' must be one of logits, probs, mean"),
        ({"format": "something"}, "'format' must be 'latent-explorer-onnx-pair'"),
        ({"version": 99}, "written by a newer version"),
        ({"std": 0.1}, "'std' applies only to output 'mean'"),
        ({"class_names": ["a", "b"]}, "names 2 classes but num_classes is 0"),
        ({"latent_dim": 3}, "mu is shaped (batch, 2) where model.json says (batch, 3)"),
        ({"num_classes": 10}, "has x where model.json says x, y"),
        ({"variational": False}, "has mu, logvar where model.json says mu"),
    ]
    for change, words in cases:
        (copy / "model.json").write_text(json.dumps(facts | change))
        with pytest.raises(OnnxPairError) as e:
            read_onnx_pair(copy)
        assert words in _one_line_error(e), (change, str(e.value))
    del facts["latent_dim"]
    (copy / "model.json").write_text(json.dumps(facts))
    with pytest.raises(OnnxPairError) as e:
        read_onnx_pair(copy)
    assert "'latent_dim' is missing" in _one_line_error(e)


def test_a_file_that_is_no_onnx_model_is_refused(copy):
    for blob in (b"", b"not a model at all\n", bytes(range(256)) * 40):
        (copy / "encoder.onnx").write_bytes(blob)
        with pytest.raises(OnnxPairError) as e:
            read_onnx_pair(copy)
        text = _one_line_error(e)
        assert "encoder.onnx: is" in text and "ONNX model" in text
    # the decoder's graph where the encoder's belongs: its inputs are not the encoder's
    shutil.copy(copy / "decoder.onnx", copy / "encoder.onnx")
    with pytest.raises(OnnxPairError) as e:
        read_onnx_pair(copy)
    assert "encoder.onnx: has z where model.json says x" in _one_line_error(e)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_a_named_pipe_is_refused_without_blocking(copy):
    (copy / "encoder.onnx").unlink()
    os.mkfifo(copy / "encoder.onnx")
    with pytest.raises(OnnxPairError) as e:
        read_onnx_pair(copy)
    assert "encoder.onnx: is not a regular file" in _one_line_error(e)
    (copy / "model.json").unlink()
    os.mkfifo(copy / "model.json")
    with pytest.raises(OnnxPairError) as e:
        read_onnx_pair(copy)
    assert "model.json: is a named pipe, not a regular file" in _one_line_error(e)


def test_without_onnxruntime_reading_says_how_to_install_it(copy, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime fails
    with pytest.raises(OnnxPairError) as e:
        read_onnx_pair(copy)
    text = _one_line_error(e)
    assert "needs the onnxruntime package" in text and "latent-explorer[onnx]" in text


def test_without_the_exporter_export_model_says_how_to_install_it(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    ck = EXAMPLES / "mnist-vae-2d" / "model.safetensors"
    code = main(["export-model", "--checkpoint", str(ck), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "export-model needs the onnxscript package" in err[0] and "[onnx]" in err[0]
    assert not (tmp_path / "o").exists()  # nothing made


def test_export_model_refuses_a_checkpoint_that_is_no_checkpoint(tmp_path, capsys):
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"nothing")
    code = main(["export-model", "--checkpoint", str(bad), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and str(bad) in err[0]
    assert not (tmp_path / "o").exists()


def test_the_help_says_what_export_model_writes(capsys):
    with pytest.raises(SystemExit):
        main(["export-model", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "encoder.onnx, decoder.onnx and model.json" in text


def test_export_model_refuses_an_out_it_cannot_write_before_exporting(tmp_path, capsys):
    ck = str(EXAMPLES / "mnist-vae-2d" / "model.safetensors")
    (tmp_path / "file").write_text("mine")
    code = main(["export-model", "--checkpoint", ck, "--out", str(tmp_path / "file")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "exists and is not a folder" in err[0]
    assert (tmp_path / "file").read_text() == "mine"
    if hasattr(os, "mkfifo"):
        (tmp_path / "out").mkdir()
        os.mkfifo(tmp_path / "out" / "decoder.onnx")
        code = main(["export-model", "--checkpoint", ck, "--out", str(tmp_path / "out")])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and "decoder.onnx: is a named pipe" in err[0], err
        assert not (tmp_path / "out" / "encoder.onnx").exists()  # nothing written
