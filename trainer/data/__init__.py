"""Data: where images come from, and how they arrive as uint8 tensors.

=================  ============================================================================
``spec``           :class:`DataSpec` (which data), the sources, the bundles' names, DataError
``arrays``         :class:`ImageData`, :class:`Rows`, the checks every source's arrays pass
``idx``            IDX files (the MNIST family's format)
``folder``         a folder of images, one sub-folder per class
``npz``            NumPy arrays: an ``.npz`` archive, or ``.npy`` files
``celeba``         CelebA's aligned faces, from its standard extracted layout
``shapes``         the built-in shapes
``downloads``      the torchvision MNIST family, Debian's Fashion-MNIST
``bundles``        the test images bundled with the example models
``cache``          decoded images kept on disk, memory-mapped by later loads
``imaging``        decoding one picture file; tiling images into a grid
``load``           :func:`load_data`, the one entry point
=================  ============================================================================

The names below are this package's, as importers have always used them
(``from trainer.data import load_data``). They are looked up on first use (PEP 562), so that
importing a light part (``trainer.data.imaging``, ``trainer.data.spec``) does not import torch:
the window shows its splash, and tames torch's thread variables, before torch loads.
"""

from __future__ import annotations

from ..lazy import lazy_names

_WHERE = {
    "spec": ("SOURCES", "EXAMPLE", "SOURCE_TITLES", "CELEBA_SIZES", "CELEBA_SIZE", "Progress",
             "DataError", "DataSpec", "same_data", "BUNDLES", "Bundle", "bundle_title",
             "trained_on", "check_bundle_name"),
    "arrays": ("ImageData", "Rows", "Attributes", "nbytes", "describe_shape",
               "model_data_problem", "MAX_SIDE"),
    "idx": ("read_idx", "load_idx", "MAX_IDX_BYTES"),
    "npz": ("load_npz", "MAX_NPY_BYTES"),
    "celeba": ("load_celeba", "decode_face"),
    "folder": ("IMAGE_SUFFIXES", "check_informative", "load_folder", "_image_files"),
    "shapes": ("SHAPE_CLASSES", "SHAPES_CHUNK_BYTES", "make_shapes", "load_shapes"),
    "downloads": ("DEBIAN_FASHION", "MNIST_CLASSES", "FASHION_CLASSES", "KMNIST_CLASSES",
                  "offline_hint", "debian_fashion_available", "is_cached", "load_torchvision"),
    "bundles": ("load_bundle", "write_bundle", "bundle_dir", "ExampleError"),
    "load": ("load_data",),
}  # fmt: skip
__getattr__, __dir__, __all__ = lazy_names(__name__, _WHERE, globals())
