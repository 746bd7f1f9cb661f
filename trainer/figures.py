"""The paper's figures and the lecture examples, drawn from the example models.

``latent-train figures --out DIR`` writes:

- ``figure4.png``: Kingma & Welling's Figure 4, the learned manifold of a 2-D latent (20 x 20,
  inverse-Gaussian-CDF spacing), MNIST digits beside Fashion-MNIST (in place of the Frey
  faces, which are not bundled);
- ``figure5.png``: Figure 5, random samples of MNIST models with 2, 5, 10 and 20 latent
  dimensions, side by side (the same seed for each);
- ``cvae-classes.png``: the conditional models, one row per class over the same latents;
- ``ae-vs-vae.png``: prior samples and the manifold of a VAE and of a plain autoencoder;
- ``kl-examples.md``: textbook KL divergences computed by
  :func:`trainer.losses.gaussian_kl` beside their exact values.
"""

from __future__ import annotations

import decimal
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from . import examples as ex
from .checkpoint import load_checkpoint
from .export import grid_image
from .files import atomic_write
from .latent import class_rows, decode_batch, grid_latents
from .losses import gaussian_kl

FIG4_N = 20  # Figure 4's grid side
SAMPLES_N = 10  # samples per side in Figure 5 and the comparisons
MARGIN, GAP, CAPTION = 12, 18, 22  # pixels around, between panels, for a caption line


# -- composing panels -------------------------------------------------------------------------
def _panel(images: torch.Tensor, nrow: int) -> np.ndarray:
    """(N, C, H, W) in [0, 1] -> (H', W', 3) uint8, no padding (as in the paper)."""
    g = grid_image(images, nrow=nrow, padding=0)  # (C, H', W')
    g = g.expand(3, -1, -1) if g.shape[0] == 1 else g
    return np.clip(np.rint(g.permute(1, 2, 0).numpy() * 255), 0, 255).astype(np.uint8)


def compose(panels: list[tuple[str, np.ndarray]], path: Path, columns: int, scale: int = 1):
    """Panels (caption, RGB array) in a grid of ``columns`` on white, captions above."""
    from PIL import Image, ImageDraw, ImageFont

    arrs = [np.kron(a, np.ones((scale, scale, 1), dtype=np.uint8)) for _, a in panels]
    rows = [arrs[i : i + columns] for i in range(0, len(arrs), columns)]
    cell_w = max(a.shape[1] for a in arrs)
    cell_h = max(a.shape[0] for a in arrs)
    width = 2 * MARGIN + columns * cell_w + (columns - 1) * GAP
    height = 2 * MARGIN + len(rows) * (cell_h + CAPTION) + (len(rows) - 1) * GAP
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)

    def font_for(text: str, room: int):
        """Pillow's own scalable font (FreeType), as large as fits; its bitmap font else."""
        for size in (14, 13, 12, 11, 10, 9):
            try:
                font = ImageFont.load_default(size=size)
            except (TypeError, OSError, ImportError):
                return ImageFont.load_default()
            if font.getlength(text) <= room:
                break
        return font

    for k, ((caption, _), a) in enumerate(zip(panels, arrs, strict=True)):
        r, c = divmod(k, columns)
        x = MARGIN + c * (cell_w + GAP)
        y = MARGIN + r * (cell_h + CAPTION + GAP)
        draw.text((x, y + 3), caption, fill=(30, 30, 30), font=font_for(caption, a.shape[1]))
        canvas.paste(Image.fromarray(a), (x, y + CAPTION))

    def write(f):
        canvas.save(f, format="PNG", optimize=True)

    atomic_write(path, write)
    return path


# -- the models -------------------------------------------------------------------------------
class Models:
    """The example models the figures need: bundled ones, or trained into ``out/models`` by
    ``rebuild`` (:func:`trainer.cli.examples.rebuild`; without it a missing one is refused)."""

    def __init__(self, out: Path, root: Path | None, mnist, log, rebuild=None) -> None:
        self.out, self.root, self.mnist, self.log = out, root or ex.examples_dir(), mnist, log
        self.rebuild = rebuild
        self.cache: dict[str, torch.nn.Module] = {}

    def __call__(self, name: str):

        if name not in self.cache:
            path = ex.example_path(name, self.root)
            if not path.is_file():
                trained = self.out / "models"
                path = ex.example_path(name, trained)
                if not path.is_file() and self.rebuild is None:
                    raise ex.ExampleError(f"{name} is not in {self.root}")
                if not path.is_file():
                    self.log(f"{name} is not in {self.root}: training it into {trained}")
                    self.rebuild(
                        only=[name],
                        root=trained,
                        mnist=self.mnist,
                        log=self.log,
                        readme=trained / "README.md",
                    )
            self.cache[name] = load_checkpoint(path).model.eval()
        return self.cache[name]


def _samples(model, n: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return decode_batch(model, torch.randn(n, model.latent_dim, generator=gen))


def _manifold(model, n: int) -> torch.Tensor:
    return decode_batch(model, grid_latents(n, (0, 1), torch.zeros(model.latent_dim)))


def _class_rows(model, columns: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(columns, model.latent_dim, generator=gen)
    return decode_batch(model, *class_rows(z, model.num_classes))


# -- the figures ------------------------------------------------------------------------------
def figure4(models: Models, path: Path) -> Path:
    panels = [
        (
            "MNIST digits, 2-D latent (mnist-vae-2d)",
            _panel(_manifold(models("mnist-vae-2d"), FIG4_N), FIG4_N),
        ),
        (
            "Fashion-MNIST, 2-D latent (fashion-vae-2d)",
            _panel(_manifold(models("fashion-vae-2d"), FIG4_N), FIG4_N),
        ),
    ]
    return compose(panels, path, columns=2)


FIG5 = (("mnist-vae-2d", 2), ("mnist-vae-5d", 5), ("mnist-vae-10d", 10), ("mnist-vae-20d", 20))


def figure5(models: Models, path: Path) -> Path:
    n = SAMPLES_N
    panels = [(f"{d}-D latent space", _panel(_samples(models(name), n * n), n)) for name, d in FIG5]
    return compose(panels, path, columns=4, scale=1)


def cvae_classes(models: Models, path: Path) -> Path:
    panels = []
    for name, what in (("mnist-cvae-2d", "MNIST digits"), ("fashion-cvae-2d", "Fashion-MNIST")):
        m = models(name)
        panels.append(
            (
                f"{what}: one row per class, the same z in each column",
                _panel(_class_rows(m, SAMPLES_N), SAMPLES_N),
            )
        )
    return compose(panels, path, columns=2, scale=2)


def ae_vs_vae(models: Models, path: Path) -> Path:
    n = SAMPLES_N
    panels = []
    for data, what in (("mnist", "MNIST"), ("fashion", "Fashion-MNIST")):
        vae, ae = models(f"{data}-vae-2d"), models(f"{data}-ae-2d")
        panels += [
            (f"{what} VAE: prior samples", _panel(_samples(vae, n * n), n)),
            (f"{what} autoencoder: prior samples", _panel(_samples(ae, n * n), n)),
            (f"{what} VAE: manifold", _panel(_manifold(vae, n), n)),
            (f"{what} autoencoder: manifold", _panel(_manifold(ae, n), n)),
        ]
    return compose(panels, path, columns=4)


# -- the KL table -----------------------------------------------------------------------------
# (mu, sigma, what it teaches); sigma given as text so that the exact value uses it exactly
SIGMA_SHOWN = {"100001": "1 + 1e5", "1.00001": "1 + 1e-5"}
KL_CASES = (
    ("0", "1", "q equals the prior"),
    ("1", "1", "a shifted mean costs mu^2 / 2"),
    ("0", "2", "too wide"),
    ("0", "0.5", "too narrow"),
    ("3", "0.5", "shifted and narrow"),
    ("0", "0.001", "nearly a point: -log sigma grows without bound"),
    ("1e5", "100001", "far away and wide: about 1.0e10 nats"),
    ("1e-5", "1.00001", "almost the prior: about 1.5e-10 nats"),
)


def kl_exact(mu: str, sigma: str) -> decimal.Decimal:
    """KL(N(mu, sigma^2) || N(0, 1)) = (mu^2 + sigma^2 - 1) / 2 - ln sigma, to 60 digits."""
    with decimal.localcontext() as c:
        c.prec = 60
        m, s = decimal.Decimal(mu), decimal.Decimal(sigma)
        return (m * m + s * s - 1) / 2 - s.ln()


def kl_rows() -> list[dict]:

    rows = []
    for mu, sigma, what in KL_CASES:
        exact = kl_exact(mu, sigma)
        row = {"mu": mu, "sigma": sigma, "what": what, "exact": exact}
        for dtype, key in ((torch.float32, "float32"), (torch.float64, "float64")):
            m = torch.tensor([[float(mu)]], dtype=dtype)
            lv = torch.tensor([[2 * float(decimal.Decimal(sigma).ln())]], dtype=dtype)
            row[key] = float(gaussian_kl(m, lv)[0])
            row[f"naive_{key}"] = float(0.5 * (m.square() + lv.exp() - 1 - lv)[0, 0])
        rows.append(row)
    return rows


def _rel(v: float, exact: decimal.Decimal) -> str:
    if exact == 0:
        return "exact" if v == 0 else f"{v:.1e} off"
    err = abs(decimal.Decimal(v) - exact) / exact
    return f"{float(err):.0e}" if err else "0"


def _sigma(text: str) -> str:
    return f"({SIGMA_SHOWN[text]})" if text in SIGMA_SHOWN else text


def kl_table_markdown() -> str:
    lines = [
        "| q | exact KL (nats) | `gaussian_kl`, float32 | rel. error | `gaussian_kl`, float64 "
        "| rel. error | textbook formula, float32 | rel. error |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in kl_rows():
        e = r["exact"]
        lines.append(
            f"| N({r['mu']}, {_sigma(r['sigma'])}^2): {r['what']} | "
            f"{float(e):.6g} | "
            f"{r['float32']:.6g} | {_rel(r['float32'], e)} | {r['float64']:.6g} | "
            f"{_rel(r['float64'], e)} | {r['naive_float32']:.6g} | {_rel(r['naive_float32'], e)} |"
        )
    return "\n".join(lines)


def write_kl_table(path: Path) -> Path:
    text = (
        "# KL(q || N(0, 1)) for textbook choices of q = N(mu, sigma^2)\n\n"
        "Computed by `trainer.losses.gaussian_kl(mu, logvar)` with logvar = 2 ln sigma, "
        "against the exact value (mu^2 + sigma^2 - 1) / 2 - ln sigma worked out to 60 digits, "
        "and the textbook formula (mu^2 + exp(logvar) - 1 - logvar) / 2 evaluated as written "
        "in float32. Regenerate with `latent-train figures --out DIR`.\n\n"
        + kl_table_markdown()
        + "\n"
    )
    blob = text.encode()
    atomic_write(path, lambda f: f.write(blob))
    return path


FIGURES = (
    ("figure4.png", figure4),
    ("figure5.png", figure5),
    ("cvae-classes.png", cvae_classes),
    ("ae-vs-vae.png", ae_vs_vae),
)


def write_all(
    out: str | os.PathLike,
    examples_root: Path | None = None,
    mnist=None,
    progress: Callable[[float, str], None] | None = None,
    log: Callable[[str], None] | None = None,
    rebuild=None,
) -> list[Path]:
    """Write every figure and the KL table into ``out``; returns the files written. An
    example missing from ``examples_root`` is trained by ``rebuild`` (see :class:`Models`)."""
    out = Path(out)
    log = log or (lambda text: None)
    models = Models(out, examples_root, mnist, log, rebuild)
    written = []
    for i, (name, draw) in enumerate(FIGURES):
        if progress is not None:
            progress(i / (len(FIGURES) + 1), name)
        written.append(draw(models, out / name))
    written.append(write_kl_table(out / "kl-examples.md"))
    if progress is not None:
        progress(1.0, "done")
    return written
