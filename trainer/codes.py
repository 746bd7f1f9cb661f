"""The codes of a set of images taken elsewhere: the latent codes, their labels and a 2-D map
of them, as ``.npz`` (NumPy), ``.csv`` (any spreadsheet) or a TensorBoard projector folder
(the layout ``SummaryWriter.add_embedding`` writes, which ``tensorboard --logdir DIR`` opens).

Every file is written atomically (:func:`trainer.export.write_file`); nothing here needs
TensorBoard or TensorFlow.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .export import ExportError, write_file

CODE_FORMATS = (".npz", ".csv")
SPRITE_MAX = 8192  # pixels on a side: the projector shows no larger sprite
PROJECTOR_STEP = "00000"  # add_embedding's subfolder for global step 0 ...
PROJECTOR_TAG = "default"  # ... and its default tag


@dataclass(frozen=True)
class MapCodes:
    """N codes (N, D), their labels (N,) (-1: no label), their places on a 2-D map (N, 2)
    by ``method``, the classes' names, and (optionally) the images (N, C, H, W) in [0, 1]."""

    codes: np.ndarray
    labels: np.ndarray
    xy: np.ndarray
    method: str
    class_names: tuple[str, ...] = ()
    images: np.ndarray | None = None

    def __post_init__(self):
        codes = np.asarray(self.codes, dtype=np.float32)
        n = len(codes)
        labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        xy = np.asarray(self.xy, dtype=np.float32)
        if codes.ndim != 2 or labels.shape != (n,) or xy.shape != (n, 2):
            raise ValueError(
                f"codes {codes.shape}, labels {labels.shape} and places {xy.shape} must be "
                "(N, D), (N,) and (N, 2)"
            )
        if self.images is not None and len(self.images) != n:
            raise ValueError(f"{len(self.images)} images for {n} codes")
        object.__setattr__(self, "codes", codes)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "xy", xy)
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))

    def class_name(self, label: int) -> str:
        return self.class_names[label] if 0 <= label < len(self.class_names) else ""


def codes_format(path: str | os.PathLike) -> str:
    """ ".npz" or ".csv" from a file name; ExportError for any other."""
    kind = Path(path).suffix.lower()
    if kind not in CODE_FORMATS:
        raise ExportError(
            f"{path}: codes are written as .npz or .csv, not {kind or '(no extension)'!r}"
        )
    return kind


def write_codes(path: str | os.PathLike, m: MapCodes) -> Path:
    """``m`` as .npz or .csv, by the file's extension."""
    return write_npz(path, m) if codes_format(path) == ".npz" else write_csv(path, m)


def write_npz(path: str | os.PathLike, m: MapCodes) -> Path:
    """``codes`` (N, D) float32, ``labels`` (N,) int64, ``xy`` (N, 2) float32, ``method``
    and ``class_names``: read back with ``np.load`` (no pickle needed)."""
    buf = io.BytesIO()
    np.savez(
        buf,
        codes=m.codes,
        labels=m.labels,
        xy=m.xy,
        method=np.array(m.method),
        class_names=np.array(m.class_names, dtype=str),
    )
    return write_file(path, buf.getvalue())


def _number(v: float) -> str:
    return f"{float(v):.7g}"


def write_csv(path: str | os.PathLike, m: MapCodes) -> Path:
    """One row a code: ``x``, ``y`` (its place on the map), ``label``, ``class``, then
    ``z0`` ... ``z{D-1}``."""
    text = io.StringIO()
    w = csv.writer(text, lineterminator="\n")
    w.writerow(["x", "y", "label", "class", *(f"z{k}" for k in range(m.codes.shape[1]))])
    for (x, y), label, code in zip(m.xy, m.labels, m.codes):
        w.writerow(
            [_number(x), _number(y), int(label), m.class_name(int(label))]
            + [_number(v) for v in code]
        )
    return write_file(path, text.getvalue().encode("utf-8"))


def _tsv_field(text: str) -> str:
    return " ".join(str(text).replace("\t", " ").splitlines())


def sprite(images: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """The projector's sprite of N images (N, C, H, W) in [0, 1]: a square grid of
    ceil(sqrt(N)) cells a side, row-major, no padding, as (S, S, 3) uint8; each cell shrunk
    (whole pixels) where the grid would pass :data:`SPRITE_MAX`. Returns the sprite and one
    cell's (width, height)."""
    imgs = np.asarray(images, dtype=np.float32)
    n, c, h, w = imgs.shape
    side = max(1, math.ceil(math.sqrt(n)))
    shrink = max(1, math.ceil(side * max(h, w) / SPRITE_MAX))
    th, tw = max(1, h // shrink), max(1, w // shrink)
    if shrink > 1:  # average shrink x shrink blocks
        imgs = imgs[:, :, : th * shrink, : tw * shrink]
        imgs = imgs.reshape(n, c, th, shrink, tw, shrink).mean(axis=(3, 5))
    if c == 1:
        imgs = np.repeat(imgs, 3, axis=1)
    elif c != 3:
        raise ValueError(f"images of {c} channels make no sprite (1 or 3)")
    full = np.zeros((side * side, 3, th, tw), dtype=np.float32)
    full[:n] = imgs
    grid = (
        full.reshape(side, side, 3, th, tw)
        .transpose(0, 3, 1, 4, 2)
        .reshape(side * th, side * tw, 3)
    )
    return np.clip(np.rint(grid * 255.0), 0, 255).astype(np.uint8), (tw, th)


def write_projector(folder: str | os.PathLike, m: MapCodes) -> Path:
    """The TensorBoard projector's files for ``m`` in ``folder``, laid out as
    ``add_embedding(codes, metadata, label_img)`` lays them out at step 0:
    ``projector_config.pbtxt`` and ``00000/default/`` with ``tensors.tsv`` (the codes),
    ``metadata.tsv`` (a header, then each code's label, class and place on this map) and,
    with images, ``sprite.png``. ``tensorboard --logdir FOLDER`` shows them under
    Projector."""
    from PIL import Image

    folder = Path(folder)
    sub = f"{PROJECTOR_STEP}/{PROJECTOR_TAG}"
    tensors = "".join("\t".join(_number(v) for v in code) + "\n" for code in m.codes)
    meta = io.StringIO()
    meta.write(f"label\tclass\t{m.method} x\t{m.method} y\n")
    for label, (x, y) in zip(m.labels, m.xy):
        name = _tsv_field(m.class_name(int(label))) or "-"
        meta.write(f"{int(label)}\t{name}\t{_number(x)}\t{_number(y)}\n")
    config = [
        "embeddings {",
        f'  tensor_name: "{PROJECTOR_TAG}:{PROJECTOR_STEP}"',
        f'  tensor_path: "{sub}/tensors.tsv"',
        f'  metadata_path: "{sub}/metadata.tsv"',
    ]
    write_file(folder / sub / "tensors.tsv", tensors.encode())
    write_file(folder / sub / "metadata.tsv", meta.getvalue().encode("utf-8"))
    if m.images is not None:
        pixels, (tw, th) = sprite(m.images)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="PNG")
        write_file(folder / sub / "sprite.png", buf.getvalue())
        config += [
            "  sprite {",
            f'    image_path: "{sub}/sprite.png"',
            f"    single_image_dim: {tw}",
            f"    single_image_dim: {th}",
            "  }",
        ]
    config.append("}")
    write_file(folder / "projector_config.pbtxt", ("\n".join(config) + "\n").encode())
    return folder


BACKGROUND = (30, 31, 36)  # the map's dark ground, on which the class colours are drawn


def scatter_picture(
    xy: np.ndarray,
    labels: np.ndarray,
    class_names: tuple[str, ...] | list[str] = (),
    title: str = "",
    size: int = 800,
    seed: int = 0,
) -> np.ndarray:
    """A picture of a map: each point a dot (3 x 3 pixels) in its class's colour on a dark
    ground, drawn in a seeded random order (no class hides another by being drawn last), a
    legend of the classes on the right and ``title`` above. Returns (H, W, 3) in [0, 1]."""
    from PIL import Image, ImageDraw, ImageFont

    from .data.imaging import class_rgb

    xy = np.asarray(xy, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if xy.ndim != 2 or xy.shape[1] != 2 or len(labels) != len(xy):
        raise ValueError(f"places {xy.shape} and labels {labels.shape} must be (N, 2) and (N,)")
    classes = sorted(int(k) for k in np.unique(labels)) if len(labels) else []
    try:
        font = ImageFont.load_default(size=14)
    except (TypeError, OSError):
        font = ImageFont.load_default()
    names = [class_names[k] if 0 <= k < len(class_names) else str(k) for k in classes]
    names = [n if k >= 0 else "no label" for n, k in zip(names, classes)]
    legend = int(max((font.getlength(n) for n in names), default=0)) + 40 if classes else 0
    top = 28 if title else 8
    margin = 8
    canvas = np.zeros((size + top + margin, size + 2 * margin + legend, 3), dtype=np.uint8)
    canvas[:] = BACKGROUND
    if len(xy):
        lo, hi = xy.min(0), xy.max(0)
        span = float(max(hi - lo)) or 1.0
        centre = (lo + hi) / 2
        inner = size - 4
        px = np.rint((xy[:, 0] - centre[0]) / span * inner + size / 2).astype(np.int64)
        py = np.rint((centre[1] - xy[:, 1]) / span * inner + size / 2).astype(np.int64)
        colours = np.array([class_rgb(int(k)) if k >= 0 else (200, 200, 200) for k in labels])
        order = np.random.default_rng(seed).permutation(len(xy))
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                r = np.clip(py[order] + dy, 0, size - 1) + top
                c = np.clip(px[order] + dx, 0, size - 1) + margin
                canvas[r, c] = colours[order]
    img = Image.fromarray(canvas)
    draw = ImageDraw.Draw(img)
    if title:
        draw.text((margin, 6), title, fill=(230, 230, 230), font=font)
    x0 = size + 2 * margin
    room = max(1, (size - 12) // 20)  # legend lines that fit beside the map
    shown = classes if len(classes) <= room else classes[: room - 1]
    for i, (k, name) in enumerate(zip(shown, names)):
        y = top + 6 + i * 20
        colour = class_rgb(k) if k >= 0 else (200, 200, 200)
        draw.rectangle((x0, y + 3, x0 + 10, y + 13), fill=colour)
        draw.text((x0 + 18, y), name, fill=(230, 230, 230), font=font)
    if len(shown) < len(classes):
        more = f"and {len(classes) - len(shown)} more"
        draw.text((x0 + 18, top + 6 + len(shown) * 20), more, fill=(230, 230, 230), font=font)
    return np.asarray(img, dtype=np.float32) / 255.0
