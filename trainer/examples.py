"""The bundled example models: their catalogue, data and rebuild.

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

``latent-train examples --rebuild`` trains every example from scratch, seeded, and writes
the table in ``assets/README.md`` (in a checkout; an installed copy rebuilds ``--into`` a
folder of its user's).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shlex
import struct
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import MAX_CLASSES
from .data import EXAMPLE, DataError, DataSpec, ImageData, Progress, read_idx
from .files import JSONFields, JSONFileError, atomic_write, is_text, kind_of, read_json
from .paths import assets_are_installed, assets_dir

BUNDLE_IMAGES = 2000  # test images bundled per dataset (at most)
MODEL_FILE, INFO_FILE, THUMB_FILE = "model.safetensors", "example.json", "thumbnail.png"
IMAGES_FILE, LABELS_FILE, BUNDLE_FILE = (
    "test-images-idx3-ubyte.gz", "test-labels-idx1-ubyte.gz", "bundle.json",
)  # fmt: skip
REBUILD_FILE = "rebuild.json"  # how long the last rebuild of every example took
MNIST_ENV = "LATENT_EXPLORER_MNIST"  # a folder with the MNIST test set, for the rebuild
_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,47}")
TABLE_START, TABLE_END = "<!-- examples table: start -->", "<!-- examples table: end -->"


class ExampleError(Exception):
    """An example that cannot be found, read or built; the message says why."""


def examples_dir() -> Path:
    return assets_dir() / "examples"


def check_bundle_name(name) -> str:
    """``name`` if it can name a bundled test set (a plain name, never a path)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise DataError(
            f"bundled example data must be named by a short lowercase name, not {name!r}"
        )
    return name


# -- the bundled test sets --------------------------------------------------------------------
@dataclass(frozen=True)
class Bundle:
    name: str
    title: str  # "MNIST digits"
    origin: str  # which images, from where
    licence: str
    trained_on: str  # what its examples were trained on, for the runs table


BUNDLES = {
    "mnist": Bundle(
        "mnist", "MNIST digits",
        "the 2,000 held-out digits of the seeded 8,000 / 2,000 split of the official MNIST "
        "test set (t10k)",
        "MNIST, by Yann LeCun, Corinna Cortes and Christopher J. C. Burges: CC BY-SA 3.0",
        "MNIST digits: 8,000 of the official test set (t10k), 2,000 held out",
    ),
    "fashion-mnist": Bundle(
        "fashion-mnist", "Fashion-MNIST",
        "2,000 images drawn (seed 0) from the 10,000 of the official Fashion-MNIST test set",
        "Fashion-MNIST, by Zalando SE (Han Xiao, Kashif Rasul, Roland Vollgraf): MIT licence",
        "Fashion-MNIST: its 60,000 training images",
    ),
    "shapes": Bundle(
        "shapes", "shapes",
        "the 1,200 test images of the built-in shapes (6,000 made with seed 0, 20% held out)",
        "made by this program",
        "shapes: 4,800 of 6,000 made with seed 0, 1,200 held out",
    ),
}  # fmt: skip


def bundle_title(name: str | None) -> str:
    b = BUNDLES.get(name or "")
    return b.title if b is not None else str(name)


def trained_on(name: str | None) -> str:
    """What the examples of bundle ``name`` were trained on ("MNIST digits: 8,000 of …")."""
    b = BUNDLES.get(name or "")
    return b.trained_on if b is not None else f"the bundled {bundle_title(name)} test images"


def bundle_dir(name: str, root: Path | None = None) -> Path:
    return (root or examples_dir()) / "data" / check_bundle_name(name)


def _write_idx(path: Path, arr: np.ndarray) -> None:
    """``arr`` (uint8) as a gzipped IDX file, byte for byte the same each time."""
    head = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    body = np.ascontiguousarray(arr, dtype=np.uint8).tobytes()

    def write(raw):
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
            f.write(head + body)

    atomic_write(path, write)


def _write_text(path: Path, text: str) -> None:
    blob = text.encode()
    atomic_write(path, lambda f: f.write(blob))


def write_bundle(name: str, data: ImageData, root: Path | None = None, seed: int = 0) -> Path:
    """Write at most :data:`BUNDLE_IMAGES` of ``data``'s test images (and labels) as the
    bundled test set ``name``; returns its folder."""
    x, y = data.test_x.numpy(), data.test_y
    if y is None:
        raise ExampleError(f"{name}: bundled test images need labels")
    idx = np.arange(len(x))
    if len(x) > BUNDLE_IMAGES:
        idx = np.sort(np.random.default_rng(seed).choice(len(x), BUNDLE_IMAGES, replace=False))
    folder = bundle_dir(name, root)
    folder.mkdir(parents=True, exist_ok=True)
    imgs = x[idx]
    _write_idx(folder / IMAGES_FILE, imgs[:, 0] if imgs.shape[1] == 1 else imgs)
    _write_idx(folder / LABELS_FILE, y.numpy()[idx].astype(np.uint8))
    b = BUNDLES.get(name)
    info = {
        "title": b.title if b else name,
        "classes": list(data.class_names),
        "images": len(idx),
        "origin": b.origin if b else "",
        "licence": b.licence if b else "",
    }
    _write_text(folder / BUNDLE_FILE, json.dumps(info, indent=1) + "\n")
    return folder


def _read_json(path: Path, what: str = "") -> JSONFields:
    """The object the JSON file ``path`` holds (read as every file a user could have
    edited or damaged is: :func:`trainer.files.read_json`); DataError naming it, with
    ``what`` to do about it."""
    try:
        return JSONFields(path, read_json(path))
    except JSONFileError as e:
        raise DataError(f"{e}; {what}" if what else str(e)) from None


def load_bundle(name: str | None, progress: Progress | None = None, root: Path | None = None):
    """The bundled test set ``name`` as :class:`ImageData` with no training images."""
    from .data import _as_nchw, _labels

    folder = bundle_dir(check_bundle_name(name), root)
    hint = "reinstall Latent Explorer or run latent-train examples --rebuild"
    if not folder.is_dir():
        raise DataError(f"the bundled {bundle_title(name)} test images are not in {folder}; {hint}")
    info = _read_json(folder / BUNDLE_FILE, hint)
    try:
        names = info.items("classes")
        title = info.text("title", None)
        if not 1 <= len(names) <= MAX_CLASSES:
            raise info.error("classes", f"must name 1 to {MAX_CLASSES} classes, not {len(names)}")
        for i, n in enumerate(names):
            if not (isinstance(n, str) and is_text(n)):
                raise info.error(f"classes[{i}]", f"must be a class's name, not {kind_of(n)}")
    except JSONFileError as e:
        raise DataError(f"{e}; {hint}") from None
    x = _as_nchw(read_idx(folder / IMAGES_FILE, "images", progress), str(folder / IMAGES_FILE))
    y = read_idx(folder / LABELS_FILE, "labels", progress)
    if len(y) != len(x):
        raise DataError(f"{folder}: {len(y)} labels for {len(x)} images; {hint}")
    y, _ = _labels(y, str(folder / LABELS_FILE), classes=len(names))
    title = title if title is not None else bundle_title(name)
    xt, yt = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y.astype(np.int64))
    return ImageData(
        name=f"{title} (bundled test images)",
        train_x=xt[:0], test_x=xt, train_y=yt[:0], test_y=yt, class_names=list(names),
    )  # fmt: skip


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
        out.append(ExampleInfo(
            name=r.name, title=full_title(r), line=r.line, path=folder / MODEL_FILE,
            thumbnail=thumb if thumb.is_file() else None, metrics=metrics,
            command=command, problem=problem,
        ))  # fmt: skip
    return out


# -- the rebuild ------------------------------------------------------------------------------
def find_mnist(given: str | os.PathLike | None = None) -> Path:
    """A folder with the MNIST test set's IDX files (t10k-images / t10k-labels, .gz or raw):
    ``given``, else ``$LATENT_EXPLORER_MNIST``, else torchvision's download in the cache."""
    from .data import cache_dir

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
        return ["--dataset", "idx", "--images", str(folder / f"t10k-images-idx3-ubyte{gz}"),
                "--labels", str(folder / f"t10k-labels-idx1-ubyte{gz}")]  # fmt: skip
    if bundle == "fashion-mnist":
        return ["--dataset", "fashion-mnist"]
    if bundle == "shapes":
        return ["--dataset", "shapes"]
    raise ExampleError(f"no recipe for data {bundle!r}")


def _shown_path(arg: str) -> str:
    """A path as the command line shows it: relative to the working folder when inside it."""
    try:
        rel = os.path.relpath(arg)
    except ValueError:
        return arg
    return rel if len(rel) < len(arg) else arg


def train_command(r: Recipe, mnist: Path | None = None, epochs: int | None = None) -> list[str]:
    return ["train", *data_args(r.bundle, mnist), *r.args,
            "--epochs", str(epochs or r.epochs), "--seed", "0"]  # fmt: skip


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


Log = Callable[[str], None]


def rebuild(
    only: list[str] | None = None,
    root: Path | None = None,
    mnist: str | os.PathLike | None = None,
    epochs: int | None = None,
    iw_samples: int = 1000,
    log: Log | None = None,
    progress: Callable[[float, str], None] | None = None,
    readme: Path | None = None,
) -> list[dict]:
    """Train the examples (``only`` these names, default all) from scratch, seeded, into
    ``root`` (default: the bundled folder, in a checkout: :func:`default_root`) and write
    the table into ``readme`` (default ``README.md`` beside ``root``). ``epochs`` overrides
    every recipe's (for tests). Returns one row per example built."""
    from . import __main__ as cli
    from .checkpoint import load_checkpoint, save_checkpoint
    from .data import load_data

    root = Path(root) if root else default_root()
    readme = readme or root.parent / "README.md"
    log = log or (lambda text: None)
    chosen = [recipe(n) for n in (only or names())]
    root.mkdir(parents=True, exist_ok=True)
    mnist_dir = find_mnist(mnist) if any(r.bundle == "mnist" for r in chosen) else None
    datas: dict[str, ImageData] = {}
    rows = []
    t_all = time.perf_counter()
    for i, r in enumerate(chosen):
        base = i / len(chosen)
        if progress is not None:
            progress(base, f"{r.name}: training")
        argv = train_command(r, mnist_dir, epochs)
        if r.bundle not in datas:  # the same split the command trains on: its test part
            spec = cli._spec_from_args(cli.build_parser().parse_args([*argv, "--out", "x"]))
            datas[r.bundle] = load_data(spec)
            write_bundle(r.bundle, datas[r.bundle], root)
        data = datas[r.bundle]
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="latent-example-") as tmp:
            log(f"[{i + 1}/{len(chosen)}] {r.name}: latent-train {' '.join(argv)}")
            code = cli.main([*argv, "--out", tmp])
            if code != 0:
                raise ExampleError(f"{r.name}: latent-train train ended with exit code {code}")
            ck = load_checkpoint(Path(tmp) / "checkpoint.safetensors")
        seconds_train = time.perf_counter() - t0
        model = ck.model.eval()
        if progress is not None:
            progress(base + 0.8 / len(chosen), f"{r.name}: evaluating")

        def iw_progress(done, total, base=base, name=r.name):
            if progress is not None:
                progress(base + (0.8 + 0.2 * done / total) / len(chosen), f"{name}: log p(x)")

        metrics = evaluate_example(model, data, iw_samples, progress=iw_progress)
        folder = root / r.name
        folder.mkdir(exist_ok=True)
        path = save_checkpoint(
            folder / MODEL_FILE, model, ck.train_config,
            data_spec=DataSpec(source=EXAMPLE, bundle=r.bundle), class_names=ck.class_names,
            history=ck.history, epochs_done=ck.epochs_done, step=ck.step,
            weights_dtype=torch.float16,
        )  # fmt: skip
        thumbnail(model, folder / THUMB_FILE)
        command = "latent-train " + " ".join(shlex.quote(_shown_path(a)) for a in argv)
        info = {
            "name": r.name,
            "title": full_title(r),
            "line": r.line,
            "bundle": r.bundle,
            "command": command,
            "converted": "weights stored as float16, optimiser state left out, data: the "
            "bundled test images",
            "epochs": ck.epochs_done,
            "seconds_train": round(seconds_train, 1),
            "metrics": metrics,
            "model_bytes": path.stat().st_size,
        }
        _write_text(folder / INFO_FILE, json.dumps(info, indent=1) + "\n")
        rows.append(info)
        log(
            f"    test -ELBO {metrics['test_nelbo']:.2f}"
            + (f", -log p(x) {metrics['test_nll_iw']:.2f}" if "test_nll_iw" in metrics else "")
            + f", float16 changes it by {metrics['float16_nelbo_change']:+.4f} nats, "
            f"{path.stat().st_size / 1e6:.2f} MB, {seconds_train:.0f} s"
        )
    if progress is not None:
        progress(1.0, "done")
    if only is None:  # the whole set: the time the table quotes
        _write_text(
            root / REBUILD_FILE,
            json.dumps({"seconds": round(time.perf_counter() - t_all, 1), "examples": len(rows)})
            + "\n",
        )
    write_table(readme, root)
    return rows


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
