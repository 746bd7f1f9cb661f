"""The left-hand panel: data, model, optimiser and device choices; run buttons; progress."""

from __future__ import annotations

import math
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from explorer.constants import EPOCHS_MAX
from explorer.run_status import RunState, RunStatus
from trainer.config import MAX_LATENT, ConfigError, TrainConfig
from trainer.data import EXAMPLE, DataSpec
from trainer.loop import available_devices, bf16_problem, resolve_device

from .common import hint
from .inputs import RangeSpinBox, space_goes_to_window

SOURCES = [
    ("mnist", "MNIST digits"),
    ("fashion-mnist", "Fashion-MNIST"),
    ("kmnist", "Kuzushiji-MNIST"),
    ("idx", "IDX files…"),
    ("folder", "Image folder…"),
    ("npz", "NumPy file…"),
    ("celeba", "CelebA faces…"),
    ("shapes", "Shapes (built in)"),
]
FACE_SIZES = [("32", "32 px"), ("64", "64 px"), ("128", "128 px")]  # CelebA's sides
# what the Images, Labels and Folder rows hold, for each source that shows them
FILE_HINTS = {
    "idx": ("images .idx / .idx.gz", "IDX images file (the MNIST format), gzipped or not"),
    "npz": (
        "images .npz / .npy",
        "NumPy file: an .npz holding arrays x (images) and y (labels), or x_train, y_train, "
        "x_test, y_test; or an .npy of images (N, H, W) or (N, C, H, W)",
    ),
    "folder": (
        "folder with one sub-folder per class",
        "ROOT/<class name>/<image files>; class names come from the folders",
    ),
    "celeba": (
        "the extracted CelebA folder",
        "The folder holding img_align_celeba/, list_attr_celeba.txt and "
        "list_eval_partition.txt (see the README); its official split is used",
    ),
}
MODELS = [("vae", "VAE"), ("cvae", "Conditional VAE"), ("ae", "Autoencoder (no KL)")]
ARCHS = [("mlp", "MLP"), ("conv", "Convolutional")]
LIKELIHOODS = [("bernoulli", "Bernoulli"), ("gaussian", "Gaussian")]
BACKGROUNDS = [("white", "White"), ("black", "Black")]
PRECISION_NAMES = {"fp32": "float32", "bf16": "bfloat16 (mixed)"}
DEVICE_NAMES = {
    "auto": "Auto (best available)",
    "cpu": "CPU",
    "cuda": "CUDA GPU",
    "mps": "Apple MPS",
}


def _combo(items: list[tuple[str, str]], tip: str) -> QComboBox:
    c = QComboBox()
    for key, text in items:
        c.addItem(text, key)
    c.setToolTip(tip)
    return c


def _set_key(combo: QComboBox, key) -> None:
    i = combo.findData(key)
    if i >= 0:
        combo.setCurrentIndex(i)


def _float(text: str, what: str) -> float:
    try:
        v = float(text.strip())
    except ValueError:
        raise ConfigError(f"{what} must be a number, not {text.strip()!r}") from None
    if not math.isfinite(v):
        raise ConfigError(f"{what} must be a finite number, not {text.strip()!r}")
    return v


def short_number(v: float) -> str:
    """The shorter of plain and scientific notation: 0.001 -> "1e-3", 0.5 -> "0.5"."""
    plain = f"{v:g}"
    mant, _, exp = f"{v:.6e}".partition("e")
    sci = f"{mant.rstrip('0').rstrip('.')}e{int(exp)}"
    return sci if len(sci) < len(plain) else plain


class TrainPanel(QWidget):
    """Settings in, requests out. Validation happens in the trainer's own dataclasses."""

    startRequested = Signal()
    continueRequested = Signal(int)  # more epochs
    pauseRequested = Signal()
    stopRequested = Signal()
    dataSpecChanged = Signal()
    lrEdited = Signal(float)
    betaEdited = Signal(float)
    invalid = Signal(str)  # a setting the user typed cannot be used
    corrected = Signal(str)  # a number out of range was set to the nearest allowed value
    edited = Signal()  # any setting changed (the window rechecks a reported mistake)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 0, 6, 6)
        lay.setSpacing(8)
        lay.addWidget(self._data_group())
        lay.addWidget(self._model_group())
        lay.addWidget(self._optimiser_group())
        lay.addWidget(self._run_group())
        lay.addStretch(1)
        self._connect()
        self._source_changed()
        self._likelihood_changed()
        self._offered: tuple | None = None

    # -- the groups ---------------------------------------------------------------------------
    def _data_group(self) -> QGroupBox:
        """Data: the source, its files or folder, the image size and ground."""
        g = QGroupBox("Data")
        f = QFormLayout(g)
        f.setLabelAlignment(Qt.AlignRight)
        self.source = _combo(SOURCES, "Which images to learn from")
        self.images = QLineEdit()
        self.images.setPlaceholderText("images .idx / .idx.gz")
        self.images.setToolTip("IDX images file (the MNIST format), gzipped or not")
        self.labels = QLineEdit()
        self.labels.setPlaceholderText("labels (optional)")
        self.labels.setToolTip("IDX labels file; needed for colours and the conditional VAE")
        self.root = QLineEdit()
        self.root.setPlaceholderText("folder with one sub-folder per class")
        self.root.setToolTip("ROOT/<class name>/<image files>; class names come from the folders")
        self.image_size = RangeSpinBox(
            8, 256, 28, "Images are resized to this square size", "Image size", 4
        )
        self.face_size = _combo(
            FACE_SIZES, "CelebA's faces are cropped to the face and resized to this square size"
        )
        _set_key(self.face_size, "64")
        self.background = _combo(
            BACKGROUNDS,
            "What the images' transparent pixels are put on (an icon's drawing on "
            "transparency): white, as a page shows it, or black",
        )
        self.images_row = self._with_browse(self.images, self._browse_images)
        self.labels_row = self._with_browse(self.labels, self._browse_labels)
        self.root_row = self._with_browse(self.root, self._browse_root)
        f.addRow("Dataset", self.source)
        f.addRow("Images", self.images_row)
        f.addRow("Labels", self.labels_row)
        f.addRow("Folder", self.root_row)
        f.addRow("Size", self.image_size)
        f.addRow("Face size", self.face_size)
        f.addRow("Background", self.background)
        self.shapes_count = 6000  # not on screen; settings key train/shapes_count
        self.places = None  # where dialogs start (explorer.places.Places; the window sets it)
        # a shown checkpoint's --data-memory (no field here): kept, so that continuing it
        # trains as it did
        self.data_memory: float | None = None
        self.data_info = hint("")
        f.addRow(self.data_info)
        self._data_form = f
        return g

    def _model_group(self) -> QGroupBox:
        """Model: type, body, latent size, decoder and the KL weight."""
        g = QGroupBox("Model")
        f = QFormLayout(g)
        f.setLabelAlignment(Qt.AlignRight)
        self.model = _combo(
            MODELS, "VAE; conditional VAE (decoder also sees the class); plain autoencoder"
        )
        self.arch = _combo(ARCHS, "Encoder/decoder body. Conv needs square 28, 32 or 64 px images")
        self.latent = RangeSpinBox(
            1, MAX_LATENT, 2, "Latent dimensions. 2 makes the latent map exact", "Latent size"
        )
        self.hidden = RangeSpinBox(
            8,
            8192,
            400,
            "Hidden units of the MLP (or the conv body's dense layer)",
            "Hidden size",
            50,
        )
        self.likelihood = _combo(
            LIKELIHOODS,
            "Decoder distribution: Bernoulli for near-binary images, Gaussian otherwise",
        )
        self.gauss_std = QLineEdit("learned")
        self.gauss_std.setToolTip("Gaussian decoder std: a number in (0, 10], or 'learned'")
        self.beta = QLineEdit("1")
        self.beta.setToolTip(
            "Weight of the KL term (beta-VAE). Editable during training: press Enter to apply"
        )
        self.warmup = QLineEdit("0")
        self.warmup.setToolTip("Epochs over which the KL weight ramps from 0 to beta")
        f.addRow("Type", self.model)
        f.addRow("Body", self.arch)
        f.addRow("Latent size", self.latent)
        f.addRow("Hidden", self.hidden)
        f.addRow("Decoder", self.likelihood)
        f.addRow("Gaussian σ", self.gauss_std)
        f.addRow("β (KL weight)", self.beta)
        f.addRow("KL warm-up", self.warmup)
        # where these settings differ from the model on screen (Continue trains that one)
        self.model_info = hint("")
        self.model_info.setObjectName("warning")
        self.model_info.setVisible(False)
        f.addRow(self.model_info)
        # a user's own model on screen: what it is, in place of the settings of a new model
        self.own_info = hint("")
        self.own_info.setObjectName("own_model")
        self.own_info.setWordWrap(True)
        self.own_info.setVisible(False)
        f.insertRow(0, self.own_info)
        self._model_form = f
        return g

    _model_shown = None  # the model config the Model box was last shown for

    OWN_OUTPUTS = {
        "logits": "logits (Bernoulli)",
        "probs": "probabilities (Bernoulli)",
        "mean": "a Gaussian mean",
    }

    def show_model_on_screen(self, config) -> None:
        """The Model box follows the model on screen (``config``: the session's model
        config): a user's own model (``arch`` "foreign", trainer.foreign.ForeignConfig) is
        shown as its source, latent size and output kind, and the settings of a model built
        here (type, body, latent size, hidden, decoder, σ) are hidden while it is on screen:
        they are not its. β and the warm-up stay: Train weighs its KL by them."""
        if config is self._model_shown:  # (called for every new set of weights)
            return
        self._model_shown = config
        own = getattr(config, "arch", None) == "foreign"
        for w in (self.model, self.arch, self.latent, self.hidden, self.likelihood):
            self._model_form.setRowVisible(w, not own)
        self._likelihood_changed()  # σ: a Gaussian decoder's, never a user's model's
        self.own_info.setVisible(own)
        if not own:
            self.own_info.setText("")
            return
        source = config.source or "your model"
        spec = getattr(config, "spec", "")
        file, colon, function = spec.rpartition(":")
        if colon:  # FILE.py:FUNCTION, by the file's name (the tooltip has the whole path)
            shown = f"{Path(file).name}:{function}"
        else:  # an ONNX pair's folder, or a model given from Python
            shown = f"ONNX pair {Path(spec).name}" if spec else source
        kind = {"vae": "VAE", "cvae": "conditional VAE", "ae": "autoencoder (means only)"}
        output = self.OWN_OUTPUTS.get(config.output, config.output)
        std = f", σ {config.gaussian_std:g}" if config.gaussian_std else ""
        self.own_info.setText(
            f"Your model: {shown}\n{kind.get(config.model, config.model)}, latent size "
            f"{config.latent_dim}; decode gives {output}{std}"
        )
        self.own_info.setToolTip(f"{source} (the settings below are a new model's)")

    def _optimiser_group(self) -> QGroupBox:
        """Optimiser: learning rate, batch, epochs, seed, device, precision."""
        g = QGroupBox("Optimiser")
        f = QFormLayout(g)
        f.setLabelAlignment(Qt.AlignRight)
        self.lr = QLineEdit("1e-3")
        self.lr.setToolTip("Adam learning rate. Editable during training: press Enter to apply")
        self.batch = RangeSpinBox(1, 65536, 128, "Images per optimisation step", "Batch size", 32)
        self.epochs = RangeSpinBox(
            1, EPOCHS_MAX, 20, "Passes over the training set when Train starts a model", "Epochs"
        )
        self.seed = RangeSpinBox(
            0, 2**31 - 1, 0, "Random seed: the same seed gives the same run", "Seed"
        )
        self.device = QComboBox()
        self.device.setToolTip("Where training runs; the explorer always decodes on the CPU")
        for d in ["auto", *available_devices()]:
            self.device.addItem(DEVICE_NAMES[d], d)
        self.precision = QComboBox()
        for key, name in PRECISION_NAMES.items():
            self.precision.addItem(name, key)
        self.device.currentIndexChanged.connect(self._device_changed)
        self._device_changed()
        f.addRow("Learning rate", self.lr)
        f.addRow("Batch size", self.batch)
        f.addRow("Epochs", self.epochs)
        f.addRow("Seed", self.seed)
        f.addRow("Device", self.device)
        f.addRow("Precision", self.precision)
        return g

    def _run_group(self) -> QGroupBox:
        """Run: the buttons, the epochs Continue adds, the progress and its line."""
        g = QGroupBox("Run")
        self.run_box = g  # the window pins it below the scrolling settings
        v = QVBoxLayout(g)
        row = QHBoxLayout()
        self.start_btn = QPushButton("▶  Train")
        self.start_btn.setObjectName("primary")
        self.start_btn.setToolTip(
            "Train a new model from scratch on the chosen data with these settings "
            "(Ctrl+T or Space)"
        )
        self.pause_btn = QPushButton("Pause")
        self.pause_btn.setToolTip("Pause or resume training (Ctrl+T or Space)")
        self.stop_btn = QPushButton("Stop")
        self.stop_btn.setToolTip("Stop after the current step; the model is kept (Ctrl+.)")
        self.continue_btn = QPushButton("Continue")
        self.more_epochs = RangeSpinBox(
            1, EPOCHS_MAX, 20, "Epochs that Continue adds to the current model", "More epochs"
        )
        self.continue_btn.setToolTip(
            "Train the current model further: its weights, optimiser state and curves carry "
            "on for the number of epochs beside it (Ctrl+Shift+T)"
        )
        for b in (self.start_btn, self.pause_btn, self.stop_btn):
            row.addWidget(b)
        v.addLayout(row)
        crow = QHBoxLayout()
        crow.addWidget(self.continue_btn)
        crow.addWidget(self.more_epochs)
        crow.addWidget(QLabel("more epochs"))
        crow.addStretch(1)
        v.addLayout(crow)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setFormat("idle")
        self.progress.setToolTip("Epoch, step, throughput and time left")
        v.addWidget(self.progress)
        self.progress_info = hint("Press Train to start.")
        v.addWidget(self.progress_info)
        return g

    def _connect(self) -> None:
        """Buttons to requests, edits to ``edited``; Space on a field goes to the window."""
        self.start_btn.clicked.connect(self.startRequested)
        self.continue_btn.clicked.connect(
            lambda: self.continueRequested.emit(self.more_epochs.value())
        )
        self.pause_btn.clicked.connect(self.pauseRequested)
        self.stop_btn.clicked.connect(self.stopRequested)
        self.source.currentIndexChanged.connect(self._source_changed)
        self.source.currentIndexChanged.connect(self.dataSpecChanged)
        for w in (self.images, self.labels, self.root):
            w.editingFinished.connect(self.dataSpecChanged)
        self.image_size.valueChanged.connect(self.dataSpecChanged)
        self.face_size.currentIndexChanged.connect(self.dataSpecChanged)
        self.background.currentIndexChanged.connect(self.dataSpecChanged)
        self.likelihood.currentIndexChanged.connect(self._likelihood_changed)
        self.lr.returnPressed.connect(self._lr_entered)
        self.beta.returnPressed.connect(self._beta_entered)
        for box in (*self._spins().values(), self.more_epochs):
            box.refused.connect(self.corrected)
            box.valueChanged.connect(self.edited)
        for edit in self._edits().values():
            edit.editingFinished.connect(self.edited)
        for combo in self._combos().values():
            combo.currentIndexChanged.connect(self.edited)
        space_goes_to_window(
            self.lr,
            self.beta,
            self.warmup,
            self.gauss_std,
            *self._spins().values(),
            self.more_epochs,
        )

    # -- helpers ------------------------------------------------------------------------------
    def _with_browse(self, edit: QLineEdit, slot) -> QWidget:
        w = QWidget()
        h = QHBoxLayout(w)
        h.setContentsMargins(0, 0, 0, 0)
        h.setSpacing(4)
        b = QPushButton("…")
        b.setFixedWidth(32)
        b.setStyleSheet("padding: 3px 0px;")
        b.setToolTip("Browse")
        b.clicked.connect(slot)
        h.addWidget(edit, 1)
        h.addWidget(b)
        return w

    def _start(self, beside: str = "") -> str:
        """Where a data dialog opens: beside ``beside`` (the images file, for its labels),
        else the folder of the data last chosen."""
        if beside and Path(beside).expanduser().parent.is_dir():
            return str(Path(beside).expanduser().parent)
        return self.places.start("data") if self.places is not None else ""

    def _chosen(self, edit: QLineEdit, path: str) -> None:
        if self.places is not None:
            self.places.remember("data", path)
        edit.setText(path)
        self.dataSpecChanged.emit()

    def _browse_images(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "NumPy images" if self.source.currentData() == "npz" else "IDX images",
            self._start(self.images.text().strip()),
            "NumPy files (*.npz *.npy);;All (*)"
            if self.source.currentData() == "npz"
            else "IDX files (*idx* *.gz);;All (*)",
        )
        if path:
            self._chosen(self.images, path)

    def _browse_labels(self) -> None:
        # the labels lie beside their images, as MNIST's do
        beside = self.labels.text().strip() or self.images.text().strip()
        npz = self.source.currentData() == "npz"
        path, _ = QFileDialog.getOpenFileName(
            self,
            "NumPy labels" if npz else "IDX labels",
            self._start(beside),
            "NumPy files (*.npy);;All (*)" if npz else "IDX files (*idx* *.gz);;All (*)",
        )
        if path:
            self._chosen(self.labels, path)

    def _browse_root(self) -> None:
        root = self.root.text().strip()
        title = (
            "CelebA folder (img_align_celeba/ and its lists)"
            if self.source.currentData() == "celeba"
            else "Image folder (one sub-folder per class)"
        )
        path = QFileDialog.getExistingDirectory(self, title, self._start(root))
        if path:
            self._chosen(self.root, path)

    def _source_changed(self) -> None:
        src = self.source.currentData()
        f = self._data_form
        f.setRowVisible(self.images_row, src in ("idx", "npz"))
        f.setRowVisible(self.labels_row, src in ("idx", "npz"))
        f.setRowVisible(self.root_row, src in ("folder", "celeba"))
        f.setRowVisible(self.image_size, src in ("folder", "shapes"))
        f.setRowVisible(self.face_size, src == "celeba")
        f.setRowVisible(self.background, src == "folder")
        edit = self.images if src in ("idx", "npz") else self.root
        if src in FILE_HINTS:
            edit.setPlaceholderText(FILE_HINTS[src][0])
            edit.setToolTip(FILE_HINTS[src][1])

    def _likelihood_changed(self) -> None:
        own = getattr(self._model_shown, "arch", None) == "foreign"  # (σ is not its)
        gaussian = self.likelihood.currentData() == "gaussian"
        self._model_form.setRowVisible(self.gauss_std, gaussian and not own)

    def _lr_entered(self) -> None:
        self._live_value(self.lr, "learning rate", "lr", self.lrEdited)

    def _beta_entered(self) -> None:
        self._live_value(self.beta, "beta", "beta", self.betaEdited)

    def _live_value(self, box, name: str, field: str, signal) -> None:
        """Check a value typed during a run against TrainConfig's range, then announce it."""
        try:
            v = _float(box.text(), name)
            TrainConfig(**{field: v})
        except ConfigError as e:
            self.invalid.emit(str(e))
            return
        signal.emit(v)

    # -- reading the settings -----------------------------------------------------------------
    def data_spec(self) -> DataSpec:
        """The chosen data; raises DataError for an incomplete choice."""
        src = self.source.currentData()
        return DataSpec(
            source=src,
            images=self.images.text().strip() or None if src in ("idx", "npz") else None,
            labels=self.labels.text().strip() or None if src in ("idx", "npz") else None,
            root=self.root.text().strip() or None if src in ("folder", "celeba") else None,
            image_size=int(self.face_size.currentData())
            if src == "celeba"
            else self.image_size.value()
            if src in ("folder", "shapes")
            else 28,
            shapes_count=self.shapes_count,
            background=self.background.currentData() if src == "folder" else "white",
        )

    def seed_value(self) -> int:
        return self.seed.value()

    def model_kwargs(self) -> dict:
        std_text = self.gauss_std.text().strip().lower()
        std = None
        if self.likelihood.currentData() == "gaussian" and std_text not in ("", "learned", "auto"):
            std = _float(std_text, "Gaussian σ")
        return dict(
            model=self.model.currentData(),
            arch=self.arch.currentData(),
            latent_dim=self.latent.value(),
            hidden=self.hidden.value(),
            likelihood=self.likelihood.currentData(),
            gaussian_std=std,
        )

    def train_config(self) -> TrainConfig:
        """The optimiser settings; raises ConfigError naming the bad one."""
        return TrainConfig(
            epochs=self.epochs.value(),
            batch_size=self.batch.value(),
            lr=_float(self.lr.text(), "learning rate"),
            beta=_float(self.beta.text(), "beta"),
            warmup_epochs=_float(self.warmup.text(), "KL warm-up"),
            seed=self.seed.value(),
            device=self.device.currentData(),
            precision=self.precision.currentData(),
            data_memory=self.data_memory,
        )

    def _device_changed(self) -> None:
        """bfloat16 is offered where the chosen device computes in it (elsewhere it would be
        emulated, slower than float32): the item is greyed out, and its tooltip says why."""
        try:
            why = bf16_problem(resolve_device(self.device.currentData() or "auto"))
        except ConfigError as e:
            why = str(e)
        item = self.precision.model().item(self.precision.findData("bf16"))
        item.setEnabled(why is None)
        if why is not None and self.precision.currentData() == "bf16":
            _set_key(self.precision, "fp32")
        self.precision.setToolTip(
            "bfloat16 (mixed): each training step's layers compute in bfloat16, the loss, the "
            "latent statistics and the weights stay float32; about 1.1 to 1.9 times as fast "
            "for a convolutional body" + ("" if why is None else f". Not here: {why}.")
        )

    # -- showing a checkpoint's settings ------------------------------------------------------
    def show_data_spec(self, data_spec: DataSpec) -> None:
        """Show ``data_spec`` as the chosen data (without asking to load it)."""
        widgets = (
            self.source,
            self.images,
            self.labels,
            self.root,
            self.image_size,
            self.face_size,
            self.background,
        )
        for w in widgets:
            w.blockSignals(True)
        _set_key(self.source, data_spec.source)
        self.images.setText(data_spec.images or "")
        self.labels.setText(data_spec.labels or "")
        self.root.setText(data_spec.root or "")
        if data_spec.source == "celeba":
            _set_key(self.face_size, str(data_spec.image_size))
        else:
            self.image_size.setValue(data_spec.image_size)
        _set_key(self.background, data_spec.background)
        self.shapes_count = data_spec.shapes_count
        for w in widgets:
            w.blockSignals(False)
        self._source_changed()

    def show_config(self, model_config, train_config, data_spec) -> None:
        # an example's bundled test images are for exploring: the data to train on stays
        if data_spec is not None and data_spec.source != EXAMPLE:
            self.show_data_spec(data_spec)
        _set_key(self.model, model_config.model)
        _set_key(self.arch, model_config.arch)
        self.latent.setValue(model_config.latent_dim)
        self.hidden.setValue(model_config.hidden)
        _set_key(self.likelihood, model_config.likelihood)
        self.gauss_std.setText(
            "learned" if model_config.gaussian_std is None else f"{model_config.gaussian_std:g}"
        )
        self.show_train_config(train_config)

    def show_train_config(self, train_config) -> None:
        """Show how a model was trained (a user's own model's run: it has no model settings
        here)."""
        self.lr.setText(short_number(train_config.lr))
        self.beta.setText(short_number(train_config.beta))
        self.warmup.setText(short_number(train_config.warmup_epochs))
        self.batch.setValue(train_config.batch_size)
        self.seed.setValue(train_config.seed)
        _set_key(self.device, train_config.device)
        _set_key(self.precision, train_config.precision)  # (float32 where bf16 is not here)
        self._device_changed()
        self.data_memory = train_config.data_memory

    # -- run state ----------------------------------------------------------------------------
    def show_status(self, st: RunStatus) -> None:
        """Render the run's status: buttons, progress bar, the line under it, the data line."""
        self.start_btn.setEnabled(st.can_start)
        self.continue_btn.setEnabled(st.can_continue)
        self.more_epochs.setEnabled(st.can_continue)
        self.pause_btn.setEnabled(st.can_pause)
        self.pause_btn.setText("Resume" if st.state is RunState.PAUSED else "Pause")
        self.stop_btn.setEnabled(st.can_stop)
        for w in self._settings_widgets():
            w.setEnabled(not st.running)  # a data load leaves them (and the focus) alone
        if st.progress is None:
            self.progress.setRange(0, 0)  # busy indicator
        else:
            self.progress.setRange(0, 1000)
            self.progress.setValue(round(1000 * st.progress))
        self.progress.setFormat(st.headline)
        self.progress_info.setText(st.detail)
        self.data_info.setText(st.data_text)
        self.model_info.setText(st.model_note)
        self.model_info.setVisible(bool(st.model_note))
        offered = (st.state, st.remaining)
        if offered != self._offered:
            # Continue offers what a stopped (or saved) run left undone, else the Epochs
            if st.state is RunState.PREPARING and not st.continuing:
                self.more_epochs.setValue(self.epochs.value())
            elif not st.busy:
                self.more_epochs.setValue(st.remaining or self.epochs.value())
        self._offered = offered

    def _settings_widgets(self) -> list[QWidget]:
        return [
            self.source,
            self.images_row,
            self.labels_row,
            self.root_row,
            self.image_size,
            self.face_size,
            self.model,
            self.arch,
            self.latent,
            self.hidden,
            self.likelihood,
            self.gauss_std,
            self.warmup,
            self.batch,
            self.epochs,
            self.seed,
            self.device,
            self.precision,
            self.background,
        ]

    # -- persistence --------------------------------------------------------------------------
    def save_settings(self, s: QSettings) -> None:
        s.beginGroup("train")
        for key, combo in self._combos().items():
            s.setValue(key, combo.currentData())
        for key, edit in self._edits().items():
            s.setValue(key, edit.text())
        for key, spin in self._spins().items():
            s.setValue(key, spin.value())
        s.setValue("shapes_count", self.shapes_count)
        s.endGroup()

    def load_settings(self, s: QSettings) -> None:
        s.beginGroup("train")
        try:
            self.shapes_count = int(s.value("shapes_count", self.shapes_count))
        except (TypeError, ValueError):
            pass
        for key, combo in self._combos().items():
            v = s.value(key)
            if v is not None:
                _set_key(combo, v)
        for key, edit in self._edits().items():
            v = s.value(key)
            if v is not None:
                edit.setText(str(v))
        for key, spin in self._spins().items():
            v = s.value(key)
            if v is not None:
                try:  # a hand-edited file may hold anything: clamp what is a number
                    spin.setValue(max(spin.minimum(), min(spin.maximum(), int(v))))
                except (TypeError, ValueError, OverflowError):
                    pass
        s.endGroup()
        self._source_changed()
        self._likelihood_changed()
        self._device_changed()  # (bfloat16 kept only where the device has it)

    def _combos(self) -> dict[str, QComboBox]:
        return {
            "source": self.source,
            "model": self.model,
            "arch": self.arch,
            "likelihood": self.likelihood,
            "device": self.device,
            "precision": self.precision,
            "background": self.background,
            "face_size": self.face_size,
        }

    def _edits(self) -> dict[str, QLineEdit]:
        return {
            "images": self.images,
            "labels": self.labels,
            "root": self.root,
            "gauss_std": self.gauss_std,
            "beta": self.beta,
            "warmup": self.warmup,
            "lr": self.lr,
        }

    def _spins(self) -> dict[str, RangeSpinBox]:
        return {
            "image_size": self.image_size,
            "latent": self.latent,
            "hidden": self.hidden,
            "batch": self.batch,
            "epochs": self.epochs,
            "seed": self.seed,
        }


__all__ = ["TrainPanel"]
