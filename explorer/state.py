"""The session model: the GUI's own copy of the model, the current z, class and dims.

Widgets take a :class:`Session` in their constructor and subscribe to its signals; they
never see the training loop. The session's model is a separate module from the one being
trained: new weights arrive as detached CPU ``state_dict`` copies (``load_weights``), so
decoding here never races the optimiser.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from PySide6.QtCore import QObject, Signal

from trainer.config import (
    ARCH_TITLES,
    LIKELIHOOD_TITLES,
    MODEL_TITLES,
    ModelConfig,
    TrainConfig,
)
from trainer.data import EXAMPLE, DataSpec, ImageData, same_data
from trainer.examples import bundle_title, is_example
from trainer.latent import (
    MAP_POINTS,
    Plane,
    decode_batch,
    dims_plane,
    map_subset,
    principal_plane,
)
from trainer.loop import History, Snapshot
from trainer.models import LatentModel, build_model

from .selection import Selection

Z_RANGE = 4.0  # sliders and the latent map span +-Z_RANGE


class Session(QObject):
    """Everything the views share. All methods run on the GUI thread."""

    dataChanged = Signal()  # new dataset (test images, class names)
    structureChanged = Signal()  # new model config: latent size / classes may differ
    weightsChanged = Signal()  # same model, new weights: every view re-decodes
    zChanged = Signal()  # the current latent point moved
    classChanged = Signal(int)
    dimsChanged = Signal(int, int)  # the two dimensions shown by the map and the grid
    testLatentsChanged = Signal()  # the encoded test set was refreshed
    klChanged = Signal()  # new KL-per-dimension numbers
    historyReset = Signal()  # a different history (another model, or a run's final one)
    savedChanged = Signal()  # ``unsaved`` may have changed (training, saving, another model)
    epochsChanged = Signal()  # an epoch of training ended
    stepped = Signal()  # the model has trained further (a snapshot of its run arrived)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.data: ImageData | None = None
        self.data_spec: DataSpec | None = None
        self.model: LatentModel | None = None
        self.model_config: ModelConfig | None = None
        self.weights_version = 0
        self.model_serial = 0  # +1 for each other model adopted (weights may change within one)
        self.z = torch.zeros(2)
        # the test images picked on the map (rows of data.test_x): one selection per session,
        # read by the directions panel and kept in a bookmark; new data clears it
        self.selection = Selection(self)
        self.cls = 0
        self.dims = (0, 1)
        self.kl_per_dim: np.ndarray | None = None
        self.pca = False  # the map and the manifold show the principal plane
        self._plane: tuple | None = None  # (latents version, Plane) of the principal plane
        # the model's record: how it was trained, and how much of that is in a file
        self.history = History()
        self.epochs_done = 0
        self.step = 0  # optimiser steps the model has had
        self.saved_step = 0  # steps that are in a file (saved to or opened from)
        self.source: Path | None = None  # the file it was opened from or last saved to
        # the data its training used, in order (a model continued on other data was
        # fine-tuned on it): not the data the views show, which may be any that fits
        self.trained_on: list[DataSpec] = []
        self.train_config: TrainConfig | None = None  # the settings it was trained with
        self.optimizer_state: dict | None = None
        self.position: dict | None = None  # inside an unfinished epoch (Trainer.position)
        self.test_latents: np.ndarray | None = None  # (M, D) posterior means
        self.test_labels: np.ndarray | None = None  # (M,) or None
        self.test_index: np.ndarray = np.zeros(0, dtype=np.int64)  # rows of data.test_x
        self._latents_version = -1
        self._enc: tuple | None = None  # an encoding of the test subset in progress
        self.last_encode_ms = 0.0

    # -- data and model -----------------------------------------------------------------------
    @property
    def class_names(self) -> list[str]:
        return list(self.data.class_names) if self.data is not None else []

    @property
    def latent_dim(self) -> int:
        return self.model.latent_dim if self.model is not None else 0

    @property
    def conditional(self) -> bool:
        return self.model is not None and self.model.num_classes > 0

    def set_data(self, data: ImageData, spec: DataSpec | None = None) -> None:
        self.data, self.data_spec = data, spec
        idx = map_subset(len(data.test_x), MAP_POINTS)
        self.test_index = idx
        self.test_labels = None if data.test_y is None else data.test_y[idx].numpy()
        self.test_latents = None
        self._latents_version = -1
        self._enc = None
        if self.cls >= max(1, data.num_classes):
            self.cls = 0
        self.selection.clear()
        self.dataChanged.emit()

    def set_model(
        self, config: ModelConfig, weights: dict | None = None, model: torch.nn.Module | None = None
    ) -> None:
        """Build the GUI's own model for ``config`` (optionally with weights); ``model``: one
        already built, which no config rebuilds (a user's own, trainer.foreign)."""
        model = build_model(config) if model is None else model
        if weights is not None:
            model.load_state_dict(weights)
        model.eval().requires_grad_(False)
        model.noise = torch.Generator()  # never draw from the training thread's stream
        same_shape = self.model_config is not None and (
            self.model_config.latent_dim == config.latent_dim
            and self.model_config.num_classes == config.num_classes
            and self.model_config.model == config.model
        )
        self.model, self.model_config = model, config
        self.weights_version += 1
        # the codes of the map are the last model's: gone before anyone hears of this one
        # (a 20-D model's principal plane must never be taken from a 2-D model's codes)
        self.test_latents = None
        self._enc = None
        if not same_shape:
            d = config.latent_dim
            self.z = torch.zeros(d)
            self.dims = (0, 1) if d > 1 else (0, 0)
            # a larger latent opens on its principal plane: two of its dimensions alone
            # show a shapeless blob of most data
            self.pca = d > 2
            self._plane = None
            self.kl_per_dim = None
            self.cls = min(self.cls, max(0, config.num_classes - 1))
            self.structureChanged.emit()
        self.weightsChanged.emit()

    def adopt(
        self,
        config: ModelConfig,
        weights: dict | None = None,
        *,
        history: History | None = None,
        epochs_done: int = 0,
        optimizer_state: dict | None = None,
        train_config: TrainConfig | None = None,
        source: Path | None = None,
        step: int | None = None,
        position: dict | None = None,
        trained_on: DataSpec | None = None,
        model: torch.nn.Module | None = None,
    ) -> None:
        """Make another model the session's (a new run, an untrained preview, an opened
        checkpoint): every number that described the previous one goes with it.

        ``source``: the file it comes from, which holds all of its training so far;
        ``trained_on``: the data it was (or is being) trained on.
        """
        self.model_serial += 1
        self.set_model(config, weights, model)
        self.history = history if history is not None else History()
        self.epochs_done = epochs_done
        self.optimizer_state = optimizer_state
        self.position = position
        self.train_config = train_config
        self.step = self.history.last_step if step is None else step
        self.saved_step = self.step if source is not None else 0
        self.source = source
        self.trained_on = [trained_on] if trained_on is not None else []
        self.historyReset.emit()
        self.set_kl(None)
        self.savedChanged.emit()

    def record(self, snap: Snapshot) -> None:
        """A snapshot of the run that trains this model: extend its record."""
        h = self.history
        if snap.step > h.last_step:
            h.add_snapshot(snap)
        if snap.test is not None:
            h.add_epoch(snap.test)
            self.epochs_done = snap.test.epoch
            self.epochsChanged.emit()
        was = self.unsaved
        self.step = snap.step
        if self.unsaved != was:
            self.savedChanged.emit()
        self.stepped.emit()

    def end_run(
        self,
        weights: dict | None,
        history: History,
        optimizer_state,
        epochs_done,
        step,
        position: dict | None = None,
    ) -> None:
        """The run's final state: its weights (if the model still has their shape), its own
        history (a diverged run's ends at the last good epoch) and the optimiser's state."""
        if weights is not None and self.model is not None:
            try:
                self.load_weights(weights)
            except RuntimeError:
                pass
        self.history = history
        self.optimizer_state = optimizer_state
        self.epochs_done = epochs_done
        self.step = step
        self.position = position
        self.historyReset.emit()
        self.savedChanged.emit()

    def mark_saved(self, path: Path, step: int | None = None) -> None:
        """The model's training up to ``step`` (default: all of it) is now in ``path``."""
        self.saved_step = self.step if step is None else step
        self.source = Path(path)
        self.savedChanged.emit()

    def mark_kept(self) -> None:
        """The model's training is all kept where the model lives (a user's own model: its
        object holds the weights; trainer.foreign), so nothing is lost when it goes."""
        self.saved_step = self.step
        self.savedChanged.emit()

    @property
    def example(self) -> bool:
        """The model is a bundled example (its file is read-only: saving makes a new one)."""
        return self.source is not None and is_example(self.source)

    @property
    def unsaved(self) -> bool:
        """The model has training that no file holds."""
        return self.model is not None and self.step > self.saved_step

    def train_on(self, spec: DataSpec) -> None:
        """The model is being trained on ``spec`` (continued on other data: fine-tuned)."""
        if not self.trained_on or not same_data(self.trained_on[-1], spec):
            self.trained_on.append(spec)
            self.savedChanged.emit()  # (what describes the model changed)

    @property
    def loss_name(self) -> str:
        """What the model's loss is called: an autoencoder has no ELBO, only its
        reconstruction loss (the same -log p(x|z) of its codes)."""
        mc = self.model_config
        return "reconstruction loss" if mc is not None and mc.model == "ae" else "−ELBO"

    def short_model(self) -> str:
        """ "2-D autoencoder"."""
        mc = self.model_config
        return f"{mc.latent_dim}-D {MODEL_TITLES[mc.model]}" if mc is not None else "no model"

    def trained_text(self) -> str:
        """How much training the model has had, and on what: "trained 12 epochs on shapes",
        "trained 77 steps (part of the first epoch) on MNIST digits, then Fashion-MNIST"."""
        n, steps = self.epochs_done, self.step
        if steps == 0:  # a user's own model comes as their code made it (trainer.foreign)
            return getattr(self.model, "origin", "untrained")
        # inside an epoch: steps past the last epoch's end (while training, and in a file
        # saved mid-epoch)
        ends = self.history.epochs
        inside = steps > int(ends[-1]["step"]) if ends else n == 0
        if n == 0:  # "0 epochs" after 77 steps said nothing of them
            done = f"{steps:,} step{'s' if steps != 1 else ''} (part of the first epoch)"
        else:
            done = f"{n} epoch{'s' if n != 1 else ''}" + (" and part of one" if inside else "")
        on = self.trained_data()
        return f"trained {done}" + (f" on {on}" if on else "")

    def trained_data(self) -> str:
        """The data the model was trained on: "MNIST digits, then the built-in shapes"."""
        return ", then ".join(self.data_title(d) for d in self.trained_on)

    @staticmethod
    def data_title(spec: DataSpec) -> str:
        """An example's bundled test images name its dataset (it was trained on that)."""
        return bundle_title(spec.bundle) if spec.source == EXAMPLE else spec.describe()

    def describe_model(self) -> str:
        """For dialogs: "2-D VAE trained 12 epochs on shapes"."""
        if self.model_config is None:
            return "no model"
        return f"{self.short_model()} {self.trained_text()}"

    def model_line(self) -> str:
        """The status bar's line of the model on screen: what it is, its training and, where
        the views show other data than its own, that data ("" with no model)."""
        if self.model is None:
            return ""
        mc = self.model_config
        shown = ""
        if self.data_spec is not None and not (
            self.trained_on and same_data(self.trained_on[-1], self.data_spec)
        ):
            shown = f" · showing {self.data_spec.describe()}"
        unsaved = " · not saved" if self.unsaved else ""
        kind = MODEL_TITLES[mc.model]
        return (
            f"{kind[:1].upper()}{kind[1:]} · {ARCH_TITLES[mc.arch]} · {mc.latent_dim}-D latent · "
            f"{LIKELIHOOD_TITLES[mc.likelihood]} decoder · {self.trained_text()}{shown}{unsaved}"
        )

    def load_weights(self, state_dict: dict) -> None:
        """Copy new weights (a detached CPU state_dict) into the GUI's model."""
        if self.model is None:
            return
        self.model.load_state_dict(state_dict)
        self.weights_version += 1
        self.weightsChanged.emit()

    def set_kl(self, kl_per_dim: np.ndarray | None) -> None:
        self.kl_per_dim = None if kl_per_dim is None else np.asarray(kl_per_dim, dtype=float)
        self.klChanged.emit()

    # -- the current point --------------------------------------------------------------------
    def set_z(self, z) -> None:
        z = torch.as_tensor(np.asarray(z, dtype=np.float32)).reshape(-1)
        if z.numel() != self.z.numel():
            raise ValueError(f"z has {z.numel()} values; the model's latent has {self.z.numel()}")
        if not torch.equal(z, self.z):
            self.z = z
            self.zChanged.emit()

    def set_z_values(self, values: dict[int, float]) -> None:
        z = self.z.clone()
        for i, v in values.items():
            z[i] = float(v)
        self.set_z(z)

    def set_class(self, c: int) -> None:
        c = int(c)
        if c != self.cls:
            self.cls = c
            self.classChanged.emit(c)

    def set_dims(self, dx: int, dy: int) -> None:
        if (dx, dy) != self.dims:
            self.dims = (int(dx), int(dy))
            self.dimsChanged.emit(*self.dims)

    # -- the plane the map and the manifold show ----------------------------------------------
    @property
    def dark_ground(self) -> bool:
        """The data's images are light on a dark ground (MNIST's are): the mean of the test
        images' edge pixels is below one half."""
        if self.data is None or len(self.data.test_x) == 0:
            return True
        x = self.data.test_x[:500].float() / 255
        edges = torch.cat([x[..., 0, :], x[..., -1, :], x[..., :, 0], x[..., :, -1]], -1)
        return float(edges.mean()) < 0.5

    @property
    def pca_available(self) -> bool:
        """The principal plane is offered for a latent larger than 2 (a 2-D latent's is its
        own plane, rotated)."""
        return self.latent_dim > 2

    def set_pca(self, on: bool) -> None:
        """Show the principal plane of the encoded test set (True) or two dimensions."""
        on = bool(on) and self.pca_available
        if on != self.pca:
            self.pca = on
            self.dimsChanged.emit(*self.dims)

    def plane(self) -> Plane:
        """The plane the map and the manifold show: two dimensions through the current z, or
        the principal plane of the map's encoded test images (recomputed when they are)."""
        if self.pca and self.test_latents is not None and len(self.test_latents) >= 3:
            if self._plane is None or self._plane[0] != self._latents_version:
                self._plane = (self._latents_version, principal_plane(self.test_latents))
            return self._plane[1]
        return dims_plane(self.z, self.dims)

    def plane_key(self) -> tuple:
        """What the manifold's grid depends on (it is re-decoded when this changes)."""
        if self.pca and self.test_latents is not None:
            return ("pca", self._latents_version)
        z = self.z.clone()
        for d in self.dims:
            if d < len(z):
                z[d] = 0
        return ("dims", self.dims, tuple(z.tolist()))

    def plane_xy(self) -> tuple[float, float]:
        """The current z's coordinates on the plane."""
        a, b = self.plane().project(self.z)[0].tolist()
        return a, b

    def move_on_plane(self, x: float, y: float) -> None:
        """Move z to the plane's point (x, y) (two dimensions: the others are kept)."""
        dx, dy = self.dims
        if not self.pca and dx == dy:
            self.set_z_values({dx: x})
            return
        self.set_z(self.plane().lift(torch.tensor([[x, y]]))[0])

    # -- decoding and encoding (one forward pass each) ----------------------------------------
    def label(self, y: int | None = None) -> int | None:
        if not self.conditional:
            return None
        return self.cls if y is None else int(y)

    def decode(self, z: torch.Tensor, y=None) -> np.ndarray:
        """(N, D) latents -> (N, C, H, W) float images in [0, 1] with the GUI's model."""
        if self.model is None:
            raise RuntimeError("no model yet")
        if self.conditional and y is None:
            y = self.cls
        elif not self.conditional:
            y = None
        return decode_batch(self.model, z, y).numpy()

    def decode_current(self) -> np.ndarray:
        return self.decode(self.z.reshape(1, -1))[0]

    @torch.no_grad()
    def encode(self, x_u8: torch.Tensor, y: torch.Tensor | None = None) -> np.ndarray:
        """uint8 images (N, C, H, W) -> posterior means (N, D)."""
        if self.model is None:
            raise RuntimeError("no model yet")
        x = x_u8.float().div_(255.0)
        mu, _ = self.model.encode(x, y if self.conditional else None)
        return mu.numpy()

    @torch.no_grad()
    def reconstruct(self, x_u8: torch.Tensor, y: torch.Tensor | None = None) -> np.ndarray:
        x = x_u8.float().div_(255.0)
        return self.model(x, y if self.conditional else None).numpy()

    def test_image(self, i: int) -> tuple[torch.Tensor, int | None]:
        """One test image (1, C, H, W) uint8 and its label."""
        d = self.data
        i = int(i) % len(d.test_x)
        y = None if d.test_y is None else int(d.test_y[i])
        return d.test_x[i : i + 1], y

    def encode_test(self, i: int) -> np.ndarray:
        x, y = self.test_image(i)
        yt = None if y is None else torch.tensor([y])
        return self.encode(x, yt)[0]

    def refresh_test_latents(self, force: bool = False, chunk: int | None = None) -> bool:
        """Encode the map's test subset with the current weights.

        With ``chunk``, encode at most that many images per call and emit
        ``testLatentsChanged`` only once the whole subset is done (so a busy window spends
        a few milliseconds per call, never tens). Returns True when it did any work.
        """
        if self.model is None or self.data is None:
            return False
        if self.data.image_shape != tuple(self.model.config.image_shape):
            return False
        version = self.weights_version
        if force or self._enc is None or self._enc[0] != version:
            if not force and self._latents_version == version:
                return False
            self._enc = (version, [], 0)  # (weights version, parts, next row)
        _v, parts, start = self._enc
        n = len(self.test_index)
        stop = n if chunk is None else min(n, start + chunk)
        t0 = time.perf_counter()
        idx = torch.from_numpy(self.test_index[start:stop])
        x = self.data.test_x[idx]
        y = None if self.data.test_y is None else self.data.test_y[idx]
        parts.append(self.encode(x, y))
        self.last_encode_ms = (time.perf_counter() - t0) * 1e3
        if stop < n:
            self._enc = (version, parts, stop)
            return True
        self._enc = None
        self.test_latents = np.concatenate(parts) if parts else np.zeros((0, self.latent_dim))
        self._latents_version = version
        self.testLatentsChanged.emit()
        return True
