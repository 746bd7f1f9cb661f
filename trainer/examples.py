"""The bundled example models: their catalogue and data.

They are package data (``assets/examples`` in the repository; :mod:`trainer.paths` finds
them in an installed copy). Each example is a folder ``examples/<name>/`` holding

- ``model.safetensors``: the trained model (float16 weights, read back as float32), its
  history (the curves), and as its data the bundled test images below;
- ``example.json``: title, one line on what it shows, the exact ``latent-train train``
  command that trained it, and its metrics (test -ELBO, importance-sampled -log p(x),
  active units, the change float16 storage made to the test -ELBO);
- ``thumbnail.png``: a small picture for the gallery.

The test images live once per dataset in ``examples/data/<bundle>/`` (IDX files and
``bundle.json`` with the class names and the licence), so that an example can be explored
with no dataset and no network. They are held-out test images: data to explore a model
with, never to train on (:class:`trainer.loop.Trainer` refuses data with no training
images).

``latent-train examples --rebuild`` (:func:`trainer.cli.examples.rebuild`) trains every
example from scratch, seeded, and writes the table in ``assets/README.md`` (in a checkout; an
installed copy rebuilds ``--into`` a folder of its user's).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .data.arrays import ImageData
from .data.bundles import (  # noqa: F401 - the bundles' files, named here as they always were
    BUNDLE_FILE,
    BUNDLE_IMAGES,
    IMAGES_FILE,
    LABELS_FILE,
    ExampleError,
    _read_json,
    _write_text,
    bundle_dir,
    load_bundle,
    write_bundle,
)
from .data.spec import (  # noqa: F401 - the bundles' names, named here as they always were
    BUNDLES,
    EXAMPLE,
    Bundle,
    DataError,
    DataSpec,
    bundle_title,
    check_bundle_name,
    trained_on,
)
from .files import JSONFileError
from .paths import assets_are_installed, cache_dir, examples_dir

MODEL_FILE, INFO_FILE, THUMB_FILE = "model.safetensors", "example.json", "thumbnail.png"
REBUILD_FILE = "rebuild.json"  # how long the last rebuild of every example took
MNIST_ENV = "LATENT_EXPLORER_MNIST"  # a folder with the MNIST test set, for the rebuild
TABLE_START, TABLE_END = "<!-- examples table: start -->", "<!-- examples table: end -->"


# -- the catalogue ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Recipe:
    """How one example is trained: ``latent-train train`` with these arguments."""

    name: str  # the folder, e.g. "mnist-vae-2d"
    bundle: str  # its data: a key of BUNDLES
    title: str  # "2-D VAE"
    line: str  # one line on what it shows
    args: tuple[str, ...]  # model options
    epochs: int


# a 2-D latent cannot hold the shapes' class, size, place and turn (every shape came back
# a disc); 10 dimensions reconstruct all five
MNIST_EPOCHS, FASHION_EPOCHS, SHAPES_EPOCHS = 50, 30, 100
RECIPES = (
    Recipe("mnist-vae-2d", "mnist", "2-D VAE",
           "Kingma & Welling's Figure 4: every digit on one plane; drag across it",
           ("--model", "vae", "--latent-dim", "2"), MNIST_EPOCHS),
    Recipe("mnist-cvae-2d", "mnist", "2-D conditional VAE",
           "The class picks the digit, z the handwriting: the class row shows one style as 0-9",
           ("--model", "cvae", "--latent-dim", "2"), MNIST_EPOCHS),
    Recipe("mnist-vae-20d", "mnist", "20-D VAE",
           "Sharp samples and reconstructions; sliders ordered by KL show which dimensions work",
           ("--model", "vae", "--latent-dim", "20"), MNIST_EPOCHS),
    Recipe("mnist-ae-2d", "mnist", "2-D plain autoencoder",
           "No KL term: its codes leave holes, so prior samples and the manifold go wrong",
           ("--model", "ae", "--latent-dim", "2"), MNIST_EPOCHS),
    Recipe("mnist-vae-5d", "mnist", "5-D VAE",
           "Figure 5's middle: sharper samples than 2-D, every dimension still in use",
           ("--model", "vae", "--latent-dim", "5"), MNIST_EPOCHS),
    Recipe("mnist-vae-10d", "mnist", "10-D VAE",
           "Figure 5's middle: between the 2-D map and the 20-D samples",
           ("--model", "vae", "--latent-dim", "10"), MNIST_EPOCHS),
    Recipe("fashion-vae-2d", "fashion-mnist", "2-D VAE",
           "Clothes on one plane: trousers, bags and shoes each find their region",
           ("--model", "vae", "--latent-dim", "2"), FASHION_EPOCHS),
    Recipe("fashion-cvae-2d", "fashion-mnist", "2-D conditional VAE",
           "One z, ten garments: the class row keeps the shape's brightness and width",
           ("--model", "cvae", "--latent-dim", "2"), FASHION_EPOCHS),
    Recipe("fashion-vae-20d", "fashion-mnist", "20-D VAE",
           "Good samples; its KL bars show how many of 20 dimensions it needs",
           ("--model", "vae", "--latent-dim", "20"), FASHION_EPOCHS),
    Recipe("fashion-ae-2d", "fashion-mnist", "2-D plain autoencoder",
           "The autoencoder's lesson on clothes: codes far from N(0, I), holes between them",
           ("--model", "ae", "--latent-dim", "2"), FASHION_EPOCHS),
    Recipe("shapes-vae-10d", "shapes", "10-D VAE",
           "All five built-in shapes come back; the traversals show size, place and turn",
           ("--model", "vae", "--latent-dim", "10"), SHAPES_EPOCHS),
)  # fmt: skip
FIRST = "mnist-vae-2d"  # what a first launch opens


@dataclass(frozen=True)
class ExampleInfo:
    """A bundled example as listed for the gallery and the CLI."""

    name: str
    title: str  # "MNIST digits: 2-D VAE"
    line: str
    path: Path  # its model.safetensors
    thumbnail: Path | None
    metrics: dict
    command: str
    problem: str = ""  # why its example.json could not be read (its numbers are left out)


def recipe(name: str) -> Recipe:
    for r in RECIPES:
        if r.name == name:
            return r
    raise ExampleError(f"no example is called {name!r}; choose one of {', '.join(names())}")


def names() -> list[str]:
    return [r.name for r in RECIPES]


def full_title(r: Recipe) -> str:
    return f"{bundle_title(r.bundle)}: {r.title}"


def example_path(name: str, root: Path | None = None) -> Path:
    return (root or examples_dir()) / recipe(name).name / MODEL_FILE


def is_example(path: str | os.PathLike, root: Path | None = None) -> bool:
    """True if ``path`` lies inside the bundled examples' folder (which is read-only)."""
    try:
        Path(path).resolve().relative_to((root or examples_dir()).resolve())
        return True
    except (ValueError, OSError, RuntimeError):  # RuntimeError: a symbolic link loop
        return False


def title_for(path: str | os.PathLike) -> str:
    """ "MNIST digits: 2-D VAE" for an example's model file (else its folder's name)."""
    name = Path(path).parent.name
    try:
        return full_title(recipe(name))
    except ExampleError:
        return name


def list_examples(root: Path | None = None) -> list[ExampleInfo]:
    """The examples present in ``root`` (default: the bundled ones), in catalogue order."""
    root = root or examples_dir()
    out = []
    for r in RECIPES:
        folder = root / r.name
        if not (folder / MODEL_FILE).is_file():
            continue
        metrics, command, problem = {}, "", ""
        try:
            info = _read_json(folder / INFO_FILE)
            m = info.object("metrics", {})
            for k in ("test_nelbo", "test_nll_iw", "float16_nelbo_change"):
                m.number(k, None)
            for k in ("test_images", "active_units", "iw_samples"):
                m.whole(k, 0, default=None)
            metrics, command = m.value, info.text("command", "")
        except (DataError, JSONFileError) as e:
            problem = f"{e}; its numbers are left out"
        thumb = folder / THUMB_FILE
        out.append(
            ExampleInfo(
                name=r.name,
                title=full_title(r),
                line=r.line,
                path=folder / MODEL_FILE,
                thumbnail=thumb if thumb.is_file() else None,
                metrics=metrics,
                command=command,
                problem=problem,
            )
        )
    return out


# -- the rebuild ------------------------------------------------------------------------------
def find_mnist(given: str | os.PathLike | None = None) -> Path:
    """A folder with the MNIST test set's IDX files (t10k-images / t10k-labels, .gz or raw):
    ``given``, else ``$LATENT_EXPLORER_MNIST``, else torchvision's download in the cache."""
    env = os.environ.get(MNIST_ENV)
    if given or env:
        folder = Path(given or env).expanduser()
        where = f"is not in {folder}" + ("" if given else f" (${MNIST_ENV})")
    else:
        folder = cache_dir() / "MNIST" / "raw"
        where = f"was never downloaded here (it is not in {folder})"
    for suffix in (".gz", ""):
        if (folder / f"t10k-images-idx3-ubyte{suffix}").is_file():
            return folder
    raise ExampleError(
        "the MNIST examples train on the MNIST test set (t10k-images-idx3-ubyte[.gz] and "
        f"t10k-labels-idx1-ubyte[.gz]), which {where}; pass --mnist DIR, the folder that "
        "holds them"
    )


def default_root() -> Path:
    """The bundled examples' folder, if they may be rebuilt in place: a checkout's or one
    named by ``$LATENT_EXPLORER_ASSETS``, never an installed package's."""
    root = examples_dir()
    if assets_are_installed():
        raise ExampleError(
            f"the bundled examples ({root}) belong to the installed package and are not "
            "rebuilt in place; pass --into DIR to rebuild them into a folder of your own"
        )
    folder = root if root.is_dir() else root.parent
    if not os.access(folder, os.W_OK):
        raise ExampleError(f"the examples' folder {folder} is read-only; pass --into DIR")
    return root


def data_args(bundle: str, mnist: Path | None = None) -> list[str]:
    if bundle == "mnist":
        folder = find_mnist(mnist)
        gz = ".gz" if (folder / "t10k-images-idx3-ubyte.gz").is_file() else ""
        return [
            "--dataset",
            "idx",
            "--images",
            str(folder / f"t10k-images-idx3-ubyte{gz}"),
            "--labels",
            str(folder / f"t10k-labels-idx1-ubyte{gz}"),
        ]
    if bundle == "fashion-mnist":
        return ["--dataset", "fashion-mnist"]
    if bundle == "shapes":
        return ["--dataset", "shapes"]
    raise ExampleError(f"no recipe for data {bundle!r}")


def train_command(r: Recipe, mnist: Path | None = None, epochs: int | None = None) -> list[str]:
    return [
        "train",
        *data_args(r.bundle, mnist),
        *r.args,
        "--epochs",
        str(epochs or r.epochs),
        "--seed",
        "0",
    ]


def _half(model):
    """A copy of ``model`` whose weights went through float16 (as the bundled file holds)."""
    import copy

    m = copy.deepcopy(model)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(p.half().float())
    return m


def thumbnail(model, path: Path, seed: int = 0) -> Path:
    """The gallery's picture: the manifold of a 2-D model, else prior samples; a conditional
    model shows one row per class."""
    from .export import save_grid
    from .latent import class_rows, decode_batch, grid_latents, sample_prior

    gen = torch.Generator().manual_seed(seed)
    k = model.num_classes
    if k:
        z = torch.randn(8, model.latent_dim, generator=gen)
        imgs = decode_batch(model, *class_rows(z, min(k, 8)))
    elif model.latent_dim == 2:
        imgs = decode_batch(model, grid_latents(8, (0, 1), torch.zeros(2)))
    else:
        imgs = sample_prior(model, 64, generator=gen)
    return save_grid(imgs, path, nrow=8, padding=1)


def evaluate_example(model, data: ImageData, iw_samples: int, seed: int = 0, progress=None):
    """The table's numbers for ``model`` on ``data``'s test split."""
    from .evaluate import active_units, elbo_stats, iw_log_likelihood

    x = data.test_x
    y = data.test_y if model.num_classes else None

    def seeded(m):  # the same noise for both: the difference is float16's alone
        m.noise = torch.Generator().manual_seed(seed)
        return m

    st = elbo_stats(seeded(model), x, y)
    half = elbo_stats(seeded(_half(model)), x, y)
    out = {
        "test_images": len(x),
        "test_nelbo": st.nelbo,
        "test_recon": st.recon,
        "test_kl": st.kl,
        "float16_nelbo_change": half.nelbo - st.nelbo,
    }
    if model.is_variational:
        out["active_units"] = active_units(model, x, y)[0]
        out["kl_per_dim"] = [round(float(v), 4) for v in st.kl_per_dim]
        gen = torch.Generator().manual_seed(seed)
        t0 = time.perf_counter()
        ll = iw_log_likelihood(model, x, y, k=iw_samples, generator=gen, progress=progress)
        out["test_nll_iw"] = float(-ll.mean())
        out["iw_samples"] = iw_samples
        out["seconds_iw"] = round(time.perf_counter() - t0, 1)
    return out


def _size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def table(root: Path | None = None) -> str:
    """The examples' table (Markdown) from their ``example.json`` files."""
    root = root or examples_dir()
    lines = [
        "| dataset | model | latent | epochs | test -ELBO | -log p(x), K = 1000 | active units "
        "| float16 change | size |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for ex in list_examples(root):
        r = recipe(ex.name)
        m = ex.metrics
        folder = ex.path.parent
        latent = r.args[r.args.index("--latent-dim") + 1]
        nll = f"{m['test_nll_iw']:.1f}" if "test_nll_iw" in m else "n/a (no ELBO)"
        au = f"{m['active_units']} of {latent}" if "active_units" in m else "n/a"
        nelbo = m.get("test_nelbo")
        first = f"{nelbo:.1f}" if isinstance(nelbo, float) else "?"
        if r.args[r.args.index("--model") + 1] == "ae":
            first += " (recon.)"  # an autoencoder has no KL term: its loss is the recon.
        ch = m.get("float16_nelbo_change")
        lines.append(
            f"| {bundle_title(r.bundle)} ({m.get('test_images', '?'):,} test) | `{r.name}`: "
            f"{r.title} | {latent} | {_epochs(folder)} | {first} | {nll} | {au} | "
            f"{f'{ch:+.4f}' if isinstance(ch, float) else '?'} | "
            f"{_size(folder) / 1e6:.2f} MB |"
        )
    return "\n".join(lines)


def _epochs(folder: Path) -> str:
    try:
        return str(_read_json(folder / INFO_FILE).whole("epochs", 0, default="?"))
    except (DataError, JSONFileError):
        return "?"


def write_table(readme: Path, root: Path) -> None:
    """Put the table between the markers of ``readme`` (appended if they are missing)."""
    body = table(root)
    body += f"\n\nAll of `{root.parent.name}/`: {_size(root.parent) / 1e6:.1f} MB."
    try:
        seconds = _read_json(root / REBUILD_FILE).number("seconds", finite=True)
        body += f" The last full rebuild took {seconds / 60:.1f} minutes on this machine."
    except (DataError, JSONFileError):
        pass  # none yet (the table says nothing of it)
    block = f"{TABLE_START}\n{body}\n{TABLE_END}"
    text = readme.read_text() if readme.is_file() else ""
    if TABLE_START in text and TABLE_END in text:
        head, rest = text.split(TABLE_START, 1)
        text = head + block + rest.split(TABLE_END, 1)[1]
    else:
        text = text + ("\n" if text and not text.endswith("\n") else "") + block + "\n"
    _write_text(readme, text)
