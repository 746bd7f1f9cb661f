"""One entry point for every source: :func:`load_data`."""

from __future__ import annotations

from .arrays import ImageData
from .bundles import load_bundle
from .celeba import load_celeba
from .downloads import _TV, load_torchvision
from .folder import load_folder
from .idx import load_idx
from .npz import load_npz
from .shapes import load_shapes
from .spec import EXAMPLE, DataSpec, Progress


def load_data(spec: DataSpec, progress: Progress | None = None) -> ImageData:
    """Load the dataset ``spec`` describes, on the CPU.

    Parameters
    ----------
    spec
        Which data: a source and its files or options.
    progress
        ``progress(fraction, text)``, if given, is called now and then during long work
        (``fraction`` in 0..1, or None when there is nothing to measure); an exception it
        raises ends the load (the window cancels a load that way when it closes).

    Returns
    -------
    ImageData
        Both splits as uint8 images (N, C, H, W) and int64 labels (or None).

    Raises
    ------
    DataError
        Saying what is wrong with the data and what to do, in the command line's terms
        (``e.gui``: in the window's, where they differ).
    """
    if progress is not None:
        progress(None, f"Loading {spec.describe()}…")
    if spec.source in _TV:
        return load_torchvision(spec, progress)
    if spec.source == "idx":
        return load_idx(spec, progress)
    if spec.source == "folder":
        return load_folder(spec, progress)
    if spec.source == "npz":
        return load_npz(spec, progress)
    if spec.source == "celeba":
        return load_celeba(spec, progress)
    if spec.source == EXAMPLE:
        return load_bundle(spec.bundle, progress)
    return load_shapes(spec, progress)
