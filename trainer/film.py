"""The training film: how the latent space organised itself, frame by frame.

While a model trains, a :class:`Film` keeps frames of it: the Figure 4 manifold decoded on
the latent plane, the map's test images encoded onto that plane, and where the run was
(step, epoch, the test loss at an epoch's end). The loss curves themselves are the run's
:class:`~trainer.loop.History`; a frame only says how far along them it was.

When frames are taken
    At the end of every epoch; and within the film's first :data:`FILM_EARLY_EPOCHS` epochs,
    when most change happens, at steps 1, 2, 3, 4, 5, 7, 9, 12, ... (each at least
    :data:`FILM_GROWTH` times the last): dense at the start, a few dozen in all.
The memory bound
    Frames are kept within a budget (:data:`FILM_MEMORY_MB` unless asked otherwise). When a
    new frame would exceed it, the film is thinned evenly: every other frame but the first
    and the newest is dropped, and from then on frames are taken half as often (one epoch's
    end in 2, then 4, ...; the newest epoch's end is always shown until the next one). The
    film says so (:meth:`Film.describe`), so nobody takes a thinned film for a whole one.

Frames are taken on the training thread, between two steps; a reader on another thread
(the window) reads them through :meth:`Film.frames_copy` and :attr:`Film.version`. Nothing
here imports Qt: ``latent-train train --film`` and the window's Film tab share all of it.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import FILM_MAX_MB, FILM_MEMORY_MB, FILM_MIN_MB, FILM_SIZES
from .data.imaging import class_rgb, tile
from .evaluate import to_float
from .files import RefusedOutput, atomic_write, not_written, output_target
from .latent import Plane, decode_batch, dims_plane, map_subset, principal_plane
from .loop.records import History
from .models import LatentModel

FILM_GROWTH = 1.25  # within an epoch, each frame's step is at least this times the last one's
FILM_EARLY_EPOCHS = 3  # frames within epochs are taken in a film's first 3 epochs only
FILM_MANIFOLD_PX = 420  # the manifold's grid has as many cells as fit (6 to 15 a side)
FILM_EXTENT = 4.0  # the map's square, [-4, 4]^2 in plane coordinates (at least)
FILM_FORMATS = (".gif", ".mp4")


class FilmError(Exception):
    """A film could not be written; the message says why (and names the file)."""


@dataclass(frozen=True)
class Frame:
    """One moment of a run."""

    step: int  # optimiser steps done
    epoch: float  # epochs done, with the fraction of the one in progress
    epoch_end: bool  # taken at the end of an epoch (after its test loss)
    manifold: np.ndarray  # uint8 (H, W) or (H, W, 3): the Figure 4 grid, top row = largest b
    codes: np.ndarray  # float16 (N, 2): the map's test images on the plane
    test_nelbo: float | None = None  # at an epoch's end: its test loss
    train_nelbo: float | None = None  # the training loss of the last step (its batch)

    @property
    def nbytes(self) -> int:
        return int(self.manifold.nbytes + self.codes.nbytes)


def film_grid(image_shape: Sequence[int]) -> int:
    """Cells a side of a film's manifold for images of ``image_shape`` (C, H, W)."""
    return int(min(15, max(6, FILM_MANIFOLD_PX // max(image_shape[1], image_shape[2]))))


class Film:
    """The frames of one model's training (a run continued carries on the same film).

    ``images`` (uint8 (N, C, H, W)) and ``labels`` are the held-out images the frames encode
    (the same seeded subset the window's map shows, :func:`~trainer.latent.map_subset`);
    ``klass`` is the class a conditional model's manifold is decoded with.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor | None = None,
        class_names: Sequence[str] = (),
        budget_mb: float = FILM_MEMORY_MB,
        klass: int = 0,
        growth: float = FILM_GROWTH,
    ) -> None:
        if not FILM_MIN_MB <= budget_mb <= FILM_MAX_MB:
            raise ValueError(
                f"a film's memory must be {FILM_MIN_MB:g} to {FILM_MAX_MB:g} MB, not {budget_mb:g}"
            )
        if images.ndim != 4 or len(images) == 0:
            raise ValueError("a film needs held-out images (N, C, H, W) to encode")
        idx = torch.as_tensor(map_subset(len(images)))
        self.images = images[idx.to(images.device)].cpu()
        self.labels = None if labels is None else labels[idx.to(labels.device)].cpu().numpy()
        self.class_names = list(class_names)
        self.image_shape = tuple(self.images.shape[1:])
        self.grid = film_grid(self.image_shape)
        self.klass = int(klass)
        self.budget = int(budget_mb * 2**20)
        self.growth = float(growth)
        self.frames: list[Frame] = []
        self.stride = 1  # every stride-th epoch's end is kept
        self.halvings = 0  # times the film was thinned
        self.dropped = 0  # frames thinned away so far
        self.next_step = 0  # the step at which the next within-epoch frame is due
        self.early_until: float | None = None  # ... and the epoch until which they are taken
        self.plane_names: tuple[str, str] = ("z0", "z1")
        self.conditional = False  # a conditional model's manifold is decoded as class klass
        self.version = 0  # changes whenever the frames do
        self.taken = 0  # frames taken in all (some may have been thinned away since)
        self.seconds = 0.0  # time spent taking them (on the training thread)
        self.owner: dict | None = None  # whose film it is, as kept with a run (read_film)
        self._lock = threading.Lock()

    # -- reading (any thread) ------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.frames)

    @property
    def nbytes(self) -> int:
        return sum(f.nbytes for f in self.frames)

    def frames_copy(self) -> list[Frame]:
        with self._lock:
            return list(self.frames)

    def describe(self) -> str:
        """What the film holds and what its memory bound did, in one line."""
        n = len(self.frames)
        used = self.nbytes / 2**20
        text = f"{n} frame{'s' if n != 1 else ''}, {used:.1f} MB of {self.budget / 2**20:g} MB"
        if self.dropped:
            times = "once" if self.halvings == 1 else f"{self.halvings} times"
            text += (
                f"; thinned {times} to stay within it ({self.dropped} frames dropped), "
                f"one epoch's end in {self.stride} kept from now on"
            )
        return text

    # -- recording (the training thread) ------------------------------------------------------
    def due(self, step: int, epoch: float) -> bool:
        """Whether a within-epoch frame is due after ``step`` steps, ``epoch`` epochs."""
        early = self.early_until is None or epoch < self.early_until
        return early and step >= self.next_step

    def keeps_epoch(self, epoch: float) -> bool:
        return round(epoch) % self.stride == 0

    @torch.no_grad()
    def capture(
        self,
        model: LatentModel,
        step: int,
        epoch: float,
        epoch_end: bool = False,
        test_nelbo: float | None = None,
        train_nelbo: float | None = None,
    ) -> Frame:
        """Take a frame of ``model`` as it is now (between two steps)."""
        t0 = time.perf_counter()
        frame = self._frame(model, step, epoch, epoch_end, test_nelbo, train_nelbo)
        with self._lock:
            self.taken += 1
            self.seconds += time.perf_counter() - t0
            if self.early_until is None:
                self.early_until = math.floor(epoch) + FILM_EARLY_EPOCHS
            if self.frames and self.frames[-1].step == step:  # one frame per step: the fuller
                if self.frames[-1].epoch_end and not epoch_end:
                    return self.frames[-1]
                self.frames.pop()
            last = self.frames[-1] if len(self.frames) > 1 else None
            if last is not None and last.epoch_end and not self.keeps_epoch(last.epoch):
                self.frames.pop()  # an epoch's end off the beat: shown only while newest
            self.frames.append(frame)
            if not epoch_end:
                self.next_step = max(step + 1, math.ceil(step * self.growth))
            self._thin()
            self.version += 1
        return frame

    def rewind(self, step: int) -> None:
        """Forget frames after ``step`` (a diverged run went back there)."""
        with self._lock:
            keep = [f for f in self.frames if f.step <= step]
            if len(keep) != len(self.frames):
                self.frames = keep
                self.version += 1

    def set_budget(self, budget_mb: float) -> None:
        if not FILM_MIN_MB <= budget_mb <= FILM_MAX_MB:
            raise ValueError(f"a film's memory must be {FILM_MIN_MB:g} to {FILM_MAX_MB:g} MB")
        with self._lock:
            self.budget = int(budget_mb * 2**20)
            self._thin()
            self.version += 1

    def _thin(self) -> None:
        """Halve the film until it fits its budget: every other frame between the first and
        the newest goes, and frames are taken half as often from then on."""
        while len(self.frames) > 2 and sum(f.nbytes for f in self.frames) > self.budget:
            inner = self.frames[1:-1]
            drop = {id(f) for f in inner[::2]}
            self.frames = [f for f in self.frames if id(f) not in drop]
            self.dropped += len(drop)
            self.halvings += 1
            self.stride *= 2
            self.growth = self.growth**2

    def _frame(self, model, step, epoch, epoch_end, test_nelbo, train_nelbo) -> Frame:
        was_training = model.training
        model.eval()
        try:
            device = next(model.parameters()).device
            y = None
            if model.num_classes:
                if self.labels is None:
                    raise ValueError("a conditional model's film needs the images' labels")
                y = torch.as_tensor(self.labels, device=device)
            codes = []
            for s in range(0, len(self.images), 1000):
                x = to_float(self.images[s : s + 1000], device)
                mu, _ = model.encode(x, None if y is None else y[s : s + 1000])
                codes.append(mu.float().cpu())
            z = torch.cat(codes)
            plane = film_plane(z)
            self.plane_names = plane.names
            self.conditional = bool(model.num_classes)
            klass = min(self.klass, model.num_classes - 1) if model.num_classes else None
            imgs = decode_batch(model, plane.grid(self.grid), klass).clamp(0, 1)
        finally:
            model.train(was_training)
        px = np.rint(tile(imgs.numpy(), self.grid, padding=0) * 255.0).astype(np.uint8)
        ab = plane.project(z).numpy()
        return Frame(
            step=int(step),
            epoch=float(epoch),
            epoch_end=bool(epoch_end),
            manifold=px,
            codes=np.clip(ab, -6e4, 6e4).astype(np.float16),
            test_nelbo=test_nelbo,
            train_nelbo=train_nelbo,
        )


def film_plane(z: torch.Tensor) -> Plane:
    """The plane a frame is laid on: a 1- or 2-D latent's own, else the principal plane of
    the frame's codes (its axes' signs fixed, so that consecutive frames agree)."""
    d = z.shape[1]
    if d <= 2 or len(z) < 3:
        return dims_plane(torch.zeros(d), (0, min(1, d - 1)))
    return principal_plane(z.numpy())


# -- pictures of frames (Pillow; no Qt) -------------------------------------------------------
BACKGROUND = (27, 29, 35)
FOREGROUND = (227, 230, 237)
MUTED = (154, 161, 177)
GRIDLINE = (58, 63, 75)
TRAIN_CURVE = (79, 157, 255)
TEST_CURVE = (90, 209, 127)


def map_extent(frames: Sequence[Frame]) -> float:
    """The half-width of the square the film's map is drawn in, one for all its frames: at
    least :data:`FILM_EXTENT`, wide enough for 99.5% of the newest frame's codes (where the
    run has arrived; an autoencoder's spread far). The first steps' codes may fall outside."""
    if not frames:
        return FILM_EXTENT
    c = np.abs(frames[-1].codes.astype(np.float32)).max(1)
    c = c[np.isfinite(c)]
    spread = float(np.quantile(c, 0.995)) if len(c) else 0.0
    return max(FILM_EXTENT, math.ceil(spread * 1.15))


def curve_range(history: History) -> tuple[float, float, float, float]:
    """(x0, x1, y0, y1) for the film's loss strip: steps on x; on y, the losses without the
    first steps' spike (which would flatten all the rest)."""
    steps = [r["step"] for r in history.steps] + [r["step"] for r in history.epochs]
    values = [r["nelbo"] for r in history.steps] + [r["test_nelbo"] for r in history.epochs]
    values = [v for v in values if math.isfinite(v)]
    if not steps or not values:
        return 0.0, 1.0, 0.0, 1.0
    lo, mid = min(values), float(np.median(values))
    hi = min(max(values), mid + 4 * max(mid - lo, 1e-6))
    pad = 0.05 * max(hi - lo, 1e-6)
    return 0.0, float(max(max(steps), 1)), lo - pad, hi + pad


def render_frame(
    film: Film,
    frame: Frame,
    history: History,
    extent: float | None = None,
    size: int = FILM_SIZES[2],
    title: str = "",
) -> np.ndarray:
    """One frame as an RGB picture (uint8 (H, W, 3)): the manifold and the map side by side,
    the loss curves below with the frame's place on them, and a caption."""
    from PIL import Image, ImageDraw

    extent = extent or map_extent(film.frames_copy())
    font = _font(13)
    small = _font(11)
    strip, caption, gap = round(size * 0.42), 24, 8
    w = 2 * size + 3 * gap
    h = caption + size + gap + strip + gap
    canvas = Image.new("RGB", (w, h), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    _draw_manifold(canvas, draw, film, frame, (gap, caption), size, small)
    _draw_map(draw, film, frame, (2 * gap + size, caption), size, extent, small)
    _draw_losses(draw, frame, history, (gap, caption + size + gap, w - 2 * gap, strip), small)
    _draw_caption(draw, frame, title, w, gap, caption, font)
    return np.asarray(canvas)


def _draw_manifold(canvas, draw, film: Film, frame: Frame, at, size: int, small) -> None:
    """The manifold, ``size`` pixels square with its top left at ``at``."""
    from PIL import Image

    gap, caption = at
    man = frame.manifold
    img = Image.fromarray(man if man.ndim == 3 else np.stack([man] * 3, -1))
    # magnified pixel for pixel; shrunk smoothly (nearest-neighbour shrinking tears strokes)
    shrink = size < img.width
    canvas.paste(
        img.resize((size, size), Image.LANCZOS if shrink else Image.NEAREST), (gap, caption)
    )
    if film.conditional:  # which class the manifold is drawn as
        k = film.klass
        name = film.class_names[k] if k < len(film.class_names) else str(k)
        _label(draw, (gap + 4, caption + size - 4), f"class {name}", small, "ld")


def _draw_map(draw, film: Film, frame: Frame, at, size: int, extent: float, small) -> None:
    """The map: plane coordinates [-extent, extent]^2, the prior's 1 and 2 sigma circles."""
    ox, oy = at
    scale = size / (2 * extent)
    draw.rectangle([ox, oy, ox + size - 1, oy + size - 1], fill=(22, 24, 29))
    cx, cy = ox + size / 2, oy + size / 2
    for r in (1, 2):
        draw.ellipse(
            [cx - r * scale, cy - r * scale, cx + r * scale, cy + r * scale], outline=GRIDLINE
        )
    draw.line([ox, cy, ox + size, cy], fill=GRIDLINE)
    draw.line([cx, oy, cx, oy + size], fill=GRIDLINE)
    codes = frame.codes.astype(np.float32)
    px = cx + codes[:, 0] * scale
    py = cy - codes[:, 1] * scale
    labels = film.labels if film.labels is not None else np.zeros(len(codes), dtype=int)
    inside = (
        np.isfinite(px)
        & np.isfinite(py)
        & (abs(px - cx) < size / 2 - 1)
        & (abs(py - cy) < size / 2 - 1)
    )
    colours = {int(k): class_rgb(int(k)) for k in np.unique(labels)}
    for x, y, k in zip(px[inside], py[inside], labels[inside]):
        draw.ellipse([x - 1.4, y - 1.4, x + 1.4, y + 1.4], fill=colours[int(k)])
    names = film.plane_names
    # (the default font has no arrows or sigma)
    names = [n.replace("σ", "sd") for n in names]
    _label(draw, (ox + size - 4, cy - 3), names[0], small, "rd")
    _label(draw, (cx + 4, oy + 3), names[1], small, "la")
    _label(draw, (ox + 4, oy + size - 4), "circles: 1 and 2 sd of the prior", small, "ld")


def _draw_losses(draw, frame: Frame, history: History, box, small) -> None:
    """The loss strip in ``box`` (x, y, width, height), with the frame's place on it."""
    sx, sy, sw, sh = box
    draw.rectangle([sx, sy, sx + sw - 1, sy + sh - 1], fill=(22, 24, 29))
    x0, x1, y0, y1 = curve_range(history)

    def at(step, v):
        return (
            sx + (step - x0) / (x1 - x0) * (sw - 1),
            sy + sh - 1 - (min(max(v, y0), y1) - y0) / (y1 - y0) * (sh - 1),
        )

    train = _smoothed([(r["step"], r["nelbo"]) for r in history.steps if math.isfinite(r["nelbo"])])
    test = [(r["step"], r["test_nelbo"]) for r in history.epochs if math.isfinite(r["test_nelbo"])]
    for pts, colour in ((train, TRAIN_CURVE), (test, TEST_CURVE)):
        past = [at(s, v) for s, v in pts if s <= frame.step]
        future = [at(s, v) for s, v in pts if s >= frame.step]
        if len(future) > 1:
            draw.line(future, fill=tuple(c // 3 + 20 for c in colour), width=1)
        if len(past) > 1:
            draw.line(past, fill=colour, width=2)
        elif len(past) == 1:
            x, y = past[0]
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
    mx = at(frame.step, y0)[0]
    draw.line([mx, sy, mx, sy + sh - 1], fill=FOREGROUND, width=1)
    legend = (("test -ELBO", TEST_CURVE), ("train -ELBO", TRAIN_CURVE))
    right = sx + sw - 6
    for text, colour in legend:  # top right, where a falling curve has left room
        _label(draw, (right, sy + 4), text, small, "ra", colour)
        right -= small.getlength(text) + 12
    _label(draw, (sx + sw - 6, sy + sh / 2), f"{y0:.0f} to {y1:.0f} nats", small, "rm")


def _draw_caption(draw, frame: Frame, title: str, w: int, gap: int, caption: int, font) -> None:
    """The caption: where the frame is and its loss, and ``title`` on the right."""
    text = f"epoch {frame.epoch:.2f} · step {frame.step:,}"
    loss = frame.test_nelbo if frame.test_nelbo is not None else frame.train_nelbo
    if loss is not None and math.isfinite(loss):
        text += f" · {'test' if frame.test_nelbo is not None else 'train'} -ELBO {loss:.1f}"
    draw.text((gap, caption / 2), text, fill=FOREGROUND, font=font, anchor="lm")
    room = w - 3 * gap - font.getlength(text)
    if title and font.getlength(title) > room:  # shortened to fit beside the caption
        while title and font.getlength(title + "…") > room:
            title = title[:-1]
        title = title.rstrip(" ,") + "…" if title else ""
    if title:
        draw.text((w - gap, caption / 2), title, fill=MUTED, font=font, anchor="rm")


def _label(draw, xy, text: str, font, anchor: str, fill=MUTED) -> None:
    """Text on a small dark plate, readable over the map's points and the curves."""
    box = draw.textbbox(xy, text, font=font, anchor=anchor)
    draw.rectangle([box[0] - 2, box[1] - 1, box[2] + 2, box[3] + 1], fill=(22, 24, 29))
    draw.text(xy, text, fill=fill, font=font, anchor=anchor)


def _smoothed(points: list[tuple[int, float]], window: int = 0) -> list[tuple[int, float]]:
    """A moving average of the training curve (its values are a few steps' means each, and
    noisy): about 1/100 of the run's points on either side."""
    if len(points) < 5:
        return points
    k = window or max(1, len(points) // 100)
    v = np.array([p[1] for p in points], dtype=float)
    c = np.concatenate([[0.0], np.cumsum(v)])
    idx = np.arange(len(v))
    lo, hi = np.maximum(0, idx - k), np.minimum(len(v), idx + k + 1)
    return [(points[i][0], float((c[hi[i]] - c[lo[i]]) / (hi[i] - lo[i]))) for i in idx]


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # an old Pillow: its one bitmap font
        return ImageFont.load_default()


# -- writing a film ---------------------------------------------------------------------------
def ffmpeg() -> str | None:
    """The ffmpeg program that MP4 films are encoded with, if there is one."""
    return shutil.which("ffmpeg")


def check_film_path(path: str | os.PathLike) -> Path:
    """Refuse a film file name the writer cannot honour, before any work is done."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FILM_FORMATS:
        raise FilmError(
            f"{path}: a film is saved as .gif or .mp4, not {path.suffix or '(no extension)'}"
        )
    if suffix == ".mp4" and ffmpeg() is None:
        raise FilmError(
            f"{path}: MP4 needs the ffmpeg program, which is not installed; "
            "save the film as .gif instead (or install ffmpeg)"
        )

    try:  # a named pipe or a device is never written, a link only to a regular file
        output_target(path)
    except RefusedOutput as e:
        raise FilmError(f"{path}: {e.strerror}") from None
    except (OSError, ValueError):
        pass  # for the writer to report
    if not path.parent.exists():
        raise FilmError(f"{path}: the folder {path.parent} does not exist")
    return path


def save_film(
    film: Film,
    history: History,
    path: str | os.PathLike,
    fps: float = 6.0,
    size: int = FILM_SIZES[2],
    title: str = "",
    progress: Callable[[float], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> Path:
    """Write the film as an animated GIF (looping; the last frame held 2 s) or, with ffmpeg,
    an MP4. ``progress`` hears the fraction done; ``cancelled`` returning True stops it and
    writes nothing. Raises :class:`FilmError` naming the file."""
    from PIL import Image

    path = check_film_path(path)
    frames = film.frames_copy()
    if not frames:
        raise FilmError(f"{path}: the film has no frames yet (frames are taken while training)")
    if not 0.5 <= fps <= 60:
        raise FilmError(f"a film plays at 0.5 to 60 frames a second, not {fps:g}")
    if not FILM_SIZES[0] <= size <= FILM_SIZES[1]:
        raise FilmError(f"a film's pictures are {FILM_SIZES[0]} to {FILM_SIZES[1]} px, not {size}")
    extent = map_extent(frames)
    pictures = []
    for i, frame in enumerate(frames):
        if cancelled is not None and cancelled():
            raise FilmCancelled
        pictures.append(render_frame(film, frame, history, extent, size, title))
        if progress is not None:
            progress(0.8 * (i + 1) / len(frames))
    if path.suffix.lower() == ".mp4":
        _write_mp4(pictures, path, fps)
    else:
        quantize = Image.Quantize.MEDIANCUT
        images = [
            Image.fromarray(p).quantize(colors=255, method=quantize, dither=Image.Dither.NONE)
            for p in pictures
        ]
        durations = [round(1000 / fps)] * len(images)
        durations[-1] = max(durations[-1], 2000)

        def write(f):
            images[0].save(
                f,
                format="GIF",
                save_all=True,
                append_images=images[1:],
                duration=durations,
                loop=0,
                optimize=False,
            )

        try:
            atomic_write(path, write)
        except OSError as e:
            raise FilmError(not_written(path, e)) from None
    if progress is not None:
        progress(1.0)
    return path


class FilmCancelled(Exception):
    """Writing a film was cancelled; nothing was written."""


def _write_mp4(pictures: list[np.ndarray], path: Path, fps: float) -> None:
    exe = ffmpeg()
    if exe is None:
        raise FilmError(f"{path}: MP4 needs the ffmpeg program, which is not installed")

    h, w = pictures[0].shape[:2]
    try:
        target = output_target(path)  # a link's regular file, written in its folder
    except OSError as e:
        raise FilmError(not_written(path, e)) from None
    fd, tmp = tempfile.mkstemp(suffix=".mp4", prefix=f".{target.stem}-", dir=target.parent)
    os.close(fd)
    # the last frame held two seconds, as in the GIF
    hold = max(1, round(2 * fps))
    cmd = [
        exe,
        "-y",
        "-loglevel",
        "error",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{w}x{h}",
        "-r",
        f"{fps:g}",
        "-i",
        "-",
        "-vf",
        "pad=ceil(iw/2)*2:ceil(ih/2)*2",
        "-pix_fmt",
        "yuv420p",
        "-movflags",
        "+faststart",
        tmp,
    ]
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            for p in pictures + [pictures[-1]] * (hold - 1):
                proc.stdin.write(np.ascontiguousarray(p).tobytes())
            proc.stdin.close()
        except BrokenPipeError:
            pass
        err = proc.stderr.read().decode(errors="replace").strip()
        if proc.wait() != 0:
            why = err.splitlines()[-1] if err else f"exit status {proc.returncode}"
            raise FilmError(f"{path}: ffmpeg could not encode it ({why})")
        output_target(target)  # still a regular file or a new name
        os.replace(tmp, target)
    except OSError as e:
        raise FilmError(not_written(path, e)) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
