"""explore(): the window opened on a user's own model and images, from a script or a notebook.

From a script it blocks until the window closes (like ``napari.run()``); from IPython or
Jupyter with a Qt event loop (started for the user where IPython allows), or with
``block=False``, it returns the window at once and the kernel stays usable.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np
import torch

from trainer.data.arrays import ImageData, _as_nchw, _finish, _labels, _split
from trainer.foreign import ForeignModelError, check_model, wrap

TEST_FRACTION = 0.2  # the images the views show and Evaluate measures; the rest train
SPLIT_SEED = 0


def _array(a: Any, what: str) -> np.ndarray:
    if torch.is_tensor(a):
        return a.detach().cpu().numpy()
    if isinstance(a, np.ndarray):
        return a
    raise ForeignModelError(f"{what} must be a tensor or a NumPy array, not a {type(a).__name__}")


def _from_dataset(ds) -> tuple[np.ndarray, np.ndarray | None]:
    xs, ys = [], []
    for i in range(len(ds)):
        item = ds[i]
        x, y = item if isinstance(item, (tuple, list)) and len(item) == 2 else (item, None)
        xs.append(_array(torch.as_tensor(x) if not isinstance(x, np.ndarray) else x, "images"))
        ys.append(y)
    if not xs:
        raise ForeignModelError("the dataset holds no images")
    x = np.stack(xs)
    y = None if any(v is None for v in ys) else np.asarray([int(v) for v in ys])
    return x, y


def images_data(
    images,
    labels=None,
    class_names=None,
    image_shape: tuple[int, int, int] | None = None,
    name: str = "your images",
) -> ImageData:
    """The user's images (and labels) as the window's data: uint8 (N, C, H, W), split."""
    if isinstance(images, torch.utils.data.Dataset):
        x, y = _from_dataset(images)
        labels = y if labels is None else labels
    else:
        x = _array(images, "images")
    if x.ndim == 2:  # (N, D): flat images
        if image_shape is None:
            raise ForeignModelError(
                f"flat images ({x.shape[0]}, {x.shape[1]}) need image_shape=(C, H, W)"
            )
        if math.prod(image_shape) != x.shape[1]:
            raise ForeignModelError(
                f"image_shape {tuple(image_shape)} has {math.prod(image_shape)} pixels, "
                f"and the images have {x.shape[1]}"
            )
        x = x.reshape(len(x), *image_shape)
    x = _as_nchw(x, "images")
    y = None
    if labels is not None:
        y = _array(labels, "labels").reshape(-1)
        if len(y) != len(x):
            raise ForeignModelError(f"there are {len(y)} labels for {len(x)} images")
        y, names = _labels(y, "labels")
        if class_names is not None:
            names = [str(c) for c in class_names]
            if len(names) < int(y.max()) + 1:
                raise ForeignModelError(
                    f"there are {len(names)} class names for labels 0 to {int(y.max())}"
                )
    elif class_names is not None:
        raise ForeignModelError("class_names were given without labels")
    xtr, xte, ytr, yte = _split(x, y, TEST_FRACTION, SPLIT_SEED)
    return _finish(name, xtr, xte, ytr, yte, names if y is not None else [])


def _in_ipython_loop() -> bool:
    """IPython runs here with a Qt event loop (started now for the user where it can be)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return False
    loop = getattr(shell, "active_eventloop", None)
    if loop is None and hasattr(shell, "enable_gui"):
        try:
            shell.enable_gui("qt")  # as napari does: the kernel stays usable
        except Exception:  # noqa: BLE001 - no Qt loop to be had: block like a script
            return False
        loop = getattr(shell, "active_eventloop", "qt")
    return loop is not None and "qt" in str(loop)


def explore(
    model=None,
    images=None,
    labels=None,
    class_names=None,
    output: str = "logits",
    block: bool | None = None,
    *,
    encode=None,
    decode=None,
    latent_dim: int | None = None,
    image_shape: tuple[int, int, int] | None = None,
    num_classes: int | None = None,
    std: float | None = None,
    one_hot: bool = False,
    settings=None,
):
    """Open Latent Explorer on ``model`` and ``images``; returns the window.

    ``model``: an object with ``encode(x)`` (the posterior mean, or ``(mu, logvar)``) and
    ``decode(z)`` (images or logits, (B, C, H, W) or flat); a conditional one takes the class
    as a second argument (integer labels; ``one_hot=True`` for one-hot vectors). Methods named
    or shaped otherwise: ``encode=``, ``decode=`` (and ``latent_dim=``). ``images``: a tensor
    or array (N, C, H, W), (N, H, W) or (N, D) with ``image_shape=``, uint8 or float in
    [0, 1], or a Dataset of ``(x, y)``. ``output``: what decode returns, ``"logits"``,
    ``"probs"`` or ``"mean"`` (Gaussian, its ``std`` optional). Everything is checked on a
    first batch before the window opens (a ForeignModelError or DataError says what does not
    fit). ``block``: wait until the window closes (default: from a script, not in IPython
    with a Qt event loop).
    """
    if images is None:
        raise ForeignModelError("give the images to explore the model on: explore(model, images)")
    data = images_data(images, labels, class_names, image_shape)
    fm = wrap(
        model,
        data,
        output=output,
        encode=encode,
        decode=decode,
        latent_dim=latent_dim,
        num_classes=num_classes,
        std=std,
        one_hot=one_hot,
    )
    check_model(fm, data.test_x, data.test_y)
    from PySide6.QtWidgets import QApplication

    from explorer import theme
    from explorer.constants import APP_NAME, ORG
    from explorer.window import MainWindow

    app = QApplication.instance()
    if app is None:
        app = QApplication(sys.argv[:1] or ["latent-explorer"])
        app.setApplicationName(APP_NAME)
        app.setOrganizationName(ORG)
        theme.apply(app)
    if block is None:
        block = not _in_ipython_loop()
    win = MainWindow(settings=settings, load=False)
    win.run.open_model(fm, data)
    win.show()
    if block:
        app.exec()
    return win
