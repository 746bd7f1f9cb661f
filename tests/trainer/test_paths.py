"""Where the bundled files and the data for a rebuild are found: the package data of
``latent_explorer_assets`` (or the folder ``$LATENT_EXPLORER_ASSETS`` names), MNIST only
where the user says or where it was downloaded, never a folder guessed beside the source."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from trainer import examples as ex
from trainer import paths
from trainer.__main__ import main as cli

ROOT = Path(__file__).resolve().parents[2]


def test_the_examples_and_the_icon_are_the_package_data_of_latent_explorer_assets():
    packaged = Path(str(resources.files("latent_explorer_assets")))
    assert paths.assets_dir() == packaged
    assert ex.examples_dir() == packaged / "examples"
    assert paths.icon_file() == packaged / "icon.png" and paths.icon_file().is_file()
    assert [e.name for e in ex.list_examples()] == ex.names()


def test_latent_explorer_assets_names_another_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LATENT_EXPLORER_ASSETS", str(tmp_path))
    assert ex.examples_dir() == tmp_path / "examples"
    assert ex.list_examples() == []
    assert cli(["examples"]) == 2
    assert f"no example models in {tmp_path / 'examples'}" in capsys.readouterr().err


def test_there_is_one_icon():
    """One icon: explorer/ keeps no copy of its own."""
    assert not (ROOT / "explorer" / "icon.png").exists()
    assert paths.icon_file().read_bytes() == (ROOT / "assets" / "icon.png").read_bytes()


@pytest.fixture
def no_mnist(tmp_path, monkeypatch):
    """No MNIST anywhere: an empty cache, no $LATENT_EXPLORER_MNIST."""
    monkeypatch.setenv("LATENT_EXPLORER_DATA", str(tmp_path / "cache"))
    monkeypatch.delenv("LATENT_EXPLORER_MNIST", raising=False)
    return tmp_path


def _mnist_files(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(b"")
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(b"")
    return folder


def test_the_rebuild_finds_mnist_where_told_or_downloaded_and_nowhere_else(no_mnist, monkeypatch):
    with pytest.raises(ex.ExampleError) as e:
        ex.find_mnist()
    message = str(e.value)
    assert "pass --mnist DIR" in message and str(no_mnist / "cache" / "MNIST" / "raw") in message
    assert str(ROOT.parent / "shared") not in message  # no folder beside the checkout
    # where the user says: the option, else the environment
    given = _mnist_files(no_mnist / "given")
    assert ex.find_mnist(given) == given
    monkeypatch.setenv("LATENT_EXPLORER_MNIST", str(_mnist_files(no_mnist / "env")))
    assert ex.find_mnist() == no_mnist / "env"
    assert ex.find_mnist(given) == given
    with pytest.raises(ex.ExampleError, match=r"not in .*nowhere.*--mnist DIR"):
        ex.find_mnist(no_mnist / "nowhere")
    # torchvision's download in the cache
    monkeypatch.delenv("LATENT_EXPLORER_MNIST")
    raw = _mnist_files(no_mnist / "cache" / "MNIST" / "raw")
    assert ex.find_mnist() == raw


def test_an_installed_copy_rebuilds_its_examples_only_into_a_folder_of_the_user(
    tmp_path, monkeypatch, capsys
):
    site = tmp_path / "site-packages" / "latent_explorer_assets"
    (site / "examples").mkdir(parents=True)
    monkeypatch.delenv("LATENT_EXPLORER_ASSETS", raising=False)
    monkeypatch.setattr(paths, "_packaged", lambda: site)

    def never(*args, **kwargs):  # were it to train anyway, nothing is written anywhere
        raise AssertionError("an installed copy's examples were about to be rebuilt")

    monkeypatch.setattr(ex, "train_command", never)
    assert paths.assets_are_installed()
    assert cli(["examples", "--rebuild", "--only", "shapes-vae-10d", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "belong to the installed package" in err and "--into DIR" in err
    assert list((site / "examples").iterdir()) == []  # nothing written there


def test_a_checkout_rebuilds_in_place():
    assert not paths.assets_are_installed()
    assert ex.default_root() == ROOT / "assets" / "examples"
