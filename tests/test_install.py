"""Latent Explorer installed like any Python package: the sdist and the wheel built from it
carry what the programs need at run time, and the wheel, installed into a fresh venv outside
the checkout, lists its examples, draws the figures and opens the bundled example on a first
launch, from a temporary folder with a fresh HOME.

The fresh venv takes its dependencies (torch, PySide6, ...) from the project's own venv
through a ``.pth`` line (a plain path: that venv's editable install of this checkout is not
run), so nothing is downloaded; the test checks that ``trainer``, ``explorer`` and the
assets come from the installed wheel, never from the checkout.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from trainer import examples as ex

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
FIGURES = {"figure4.png", "figure5.png", "cvae-classes.png", "ae-vs-vae.png", "kl-examples.md"}


def _uv() -> str:
    uv = os.environ.get("UV") or shutil.which("uv")
    if not uv:
        pytest.skip("building the package needs uv (uv run pytest sets $UV)")
    return uv


def _run(args, timeout=300, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=timeout, **kw
    )
    assert r.returncode == 0, (
        f"{args[0]} exited {r.returncode}:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    )
    return r


def _clone(dest: Path) -> Path:
    """The checkout's files as a clone of it has them (with changes not yet committed), and
    nothing else: no venv, and no build folder or egg-info, which setuptools would read back
    into the sdist and the wheel."""
    try:
        listed = (
            subprocess.run(
                ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                cwd=ROOT,
                capture_output=True,
                check=True,
            )
            .stdout.decode()
            .split("\0")
        )
    except (OSError, subprocess.CalledProcessError):  # not a git checkout
        skip = (".*", "build", "dist", "*.egg-info", "__pycache__", "runs")
        ignore = shutil.ignore_patterns(*skip)
        return Path(shutil.copytree(ROOT, dest, ignore=ignore, dirs_exist_ok=True))
    for name in filter(None, listed):
        if (ROOT / name).is_file():  # not one deleted since the last commit
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """The sdist, and the wheel built from it (as an installer building from source would)."""
    out = tmp_path_factory.mktemp("dist")
    _run([_uv(), "build", "--out-dir", out, _clone(tmp_path_factory.mktemp("src"))])
    return out


def _wheel(dist: Path) -> Path:
    (whl,) = dist.glob("latent_explorer-*.whl")
    return whl


def _expected_assets(prefix: str) -> set[str]:
    names = {f"{prefix}icon.png"}
    for name in ex.names():
        names |= {
            f"{prefix}examples/{name}/{f}" for f in (ex.MODEL_FILE, ex.INFO_FILE, ex.THUMB_FILE)
        }
    for bundle in ex.BUNDLES:
        names |= {
            f"{prefix}examples/data/{bundle}/{f}"
            for f in (ex.IMAGES_FILE, ex.LABELS_FILE, ex.BUNDLE_FILE)
        }
    return names


def test_the_wheel_carries_every_module_the_examples_and_the_icon(dist):
    files = set(zipfile.ZipFile(_wheel(dist)).namelist())
    modules = {
        p.relative_to(ROOT).as_posix()
        for pkg in ("trainer", "explorer")
        for p in (ROOT / pkg).rglob("*.py")
        if "__pycache__" not in p.parts
    }
    missing = sorted(modules - files)
    assert not missing, f"not in the wheel (list their packages in pyproject.toml): {missing}"
    assert not sorted(_expected_assets("latent_explorer_assets/") - files)
    tops = {f.split("/")[0] for f in files if not f.startswith("latent_explorer-")}
    assert tops == {"trainer", "explorer", "latent_explorer_assets"}  # no top-level "assets"
    assert not [f for f in files if "figures/" in f or "screenshot" in f or f.startswith("tests")]


def test_the_sdist_carries_the_assets(dist):
    (sdist,) = dist.glob("latent_explorer-*.tar.gz")
    with tarfile.open(sdist) as t:
        files = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    assert not sorted(_expected_assets("assets/") - files)
    assert {"pyproject.toml", "assets/__init__.py", "trainer/paths.py"} <= files


@pytest.fixture(scope="module")
def venv(dist, tmp_path_factory) -> Path:
    """A fresh venv outside the checkout with the wheel installed (no dependencies: they
    come from the project's venv through a path in a .pth file)."""
    v = tmp_path_factory.mktemp("venv") / "v"
    _run([sys.executable, "-m", "venv", "--without-pip", v])
    python = v / "bin" / "python"
    purelib = _run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"])
    ours = [p for p in site.getsitepackages() if Path(p).is_dir()]
    Path(purelib.stdout.strip(), "project-dependencies.pth").write_text("\n".join(ours) + "\n")
    _run([_uv(), "pip", "install", "--quiet", "--no-deps", "--python", python, _wheel(dist)])
    return v


@pytest.fixture(scope="module")
def user(venv, tmp_path_factory, program_env):
    """Run a command of the venv as a user would: from an empty folder, with a fresh HOME
    and nothing of the checkout or the test run in the environment."""
    home = tmp_path_factory.mktemp("home")
    cwd = tmp_path_factory.mktemp("cwd")
    env = {
        k: v
        for k, v in program_env.items()
        if not k.startswith(("LATENT_EXPLORER_", "XDG_", "VIRTUAL_ENV"))
        and k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")
    }
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        QT_QPA_PLATFORM="offscreen",
        PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    )

    def run(*args, timeout=300):
        return _run([venv / "bin" / args[0], *args[1:]], timeout=timeout, cwd=cwd, env=env)

    run.cwd = cwd
    return run


def _inside(path: str, folder: Path) -> bool:
    return Path(path).resolve().is_relative_to(folder.resolve())


def test_the_installed_code_and_assets_are_the_wheel_s_not_the_checkout_s(user, venv):
    names = ("trainer", "explorer", "latent_explorer_assets", "torch", "PySide6")
    code = f"import importlib.util as u\nfor m in {names}: print(u.find_spec(m).origin)"
    r = user("python", "-c", code)
    trainer, explorer, assets, torch, qt = r.stdout.splitlines()
    for origin in (trainer, explorer, assets):
        assert _inside(origin, venv) and not _inside(origin, ROOT), origin
    assert not _inside(torch, venv) and not _inside(qt, venv)  # the project venv's


def test_the_installed_examples_are_listed(user, venv):
    lines = user("latent-train", "examples").stdout.splitlines()
    assert [line.split()[0] for line in lines] == ex.names()
    assert all(_inside(line.split()[-1], venv) for line in lines)


def test_the_installed_figures_are_drawn_from_the_bundled_examples(user):
    user("latent-train", "figures", "--out", "figs")
    out = user.cwd / "figs"
    assert {p.name for p in out.iterdir()} == FIGURES  # nothing needed training
    assert all((out / f).stat().st_size > 1000 for f in FIGURES)


def test_a_first_launch_of_the_installed_window_opens_the_bundled_example(user):
    from PIL import Image

    r = user("latent-explorer", "--screenshot", "shot.png", "--quit-after", "120000")
    # the trained MNIST example, not an untrained model of whatever data is at hand
    assert "2-D VAE trained 50 epochs on MNIST digits" in r.stdout
    assert "a bundled example" in r.stdout
    shot = Image.open(user.cwd / "shot.png").convert("RGB")
    assert shot.width >= 800 and shot.height >= 500
    assert len(shot.getcolors(1 << 20)) > 1000  # a window with plots, not a blank image
