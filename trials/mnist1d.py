"""MNIST-1D (Greydanus & Kobak, "Scaling down deep learning with MNIST-1D", ICML 2024, arXiv 2011.14439),
generated locally by the ``mnist1d`` package: nothing is downloaded.

The package's ``get_dataset`` downloads the published pickle from GitHub when no local copy
exists (``requests.get(args.url)`` in ``mnist1d/data.py``) and writes ``./mnist1d_data.pkl``;
this module never calls it.  It calls only ``mnist1d.data.make_dataset(get_dataset_args())``,
which builds the 10 digit templates and transforms them (padding, shear, translation, correlated
and i.i.d. noise, resampling to 40 points) with NumPy/SciPy from the default arguments (5,000
signals, ``seed=42``, ``train_split=0.8``): the paper's 4,000 training and 1,000 test signals of
length 40, standardized by the package to overall mean 0 and standard deviation 1.

``make_dataset`` seeds NumPy's and Python's *global* generators (``mnist1d.utils.set_seed``);
:func:`load_mnist1d` saves and restores both states around the call, so loading the data leaves
every other random stream of the process as it was.
"""

from __future__ import annotations

import random

import numpy as np

__all__ = ["load_mnist1d", "MNIST1D_LENGTH"]

MNIST1D_LENGTH = 40  # samples per signal with the default dataset arguments (final_seq_length)


def load_mnist1d():
    """The MNIST-1D split as a :class:`trials.data.RawData` (name ``"mnist1d"``, 10 classes).

    ``x_train`` ``(4000, 1, 1, 40)`` and ``x_test`` ``(1000, 1, 1, 40)`` are **float32** signals
    (unlike the uint8 images of the other datasets: one channel, height 1, length 40 along the
    last axis, the layout the trainer's image pipeline expects; ``scale = 1.0``), ``y_*`` int64
    classes 0..9.  The validation split is carved from the 4,000 training signals by the trainer
    (``trials.data.split_indices``); the 1,000 test signals are the paper's fixed test split.

    Raises ``FileNotFoundError`` when the ``mnist1d`` package is not installed (``pip install
    mnist1d``, or the ``trials`` extra of esopt) and ``ValueError`` when it returns other shapes
    than the defaults give (a changed package version).
    """
    from .data import RawData

    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as exc:
        raise FileNotFoundError(f"dataset 'mnist1d' needs the mnist1d package (pip install mnist1d): {exc}") from exc
    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002 (restore, not draw)
    try:
        d = make_dataset(get_dataset_args())  # generation only; never get_dataset (it downloads)
    finally:
        np.random.set_state(np_state)  # noqa: NPY002
        random.setstate(py_state)
    shapes = {k: np.shape(d[k]) for k in ("x", "y", "x_test", "y_test")}
    want = {"x": (4000, MNIST1D_LENGTH), "y": (4000,), "x_test": (1000, MNIST1D_LENGTH), "y_test": (1000,)}
    if shapes != want:
        raise ValueError(f"mnist1d.data.make_dataset returned shapes {shapes}, expected {want} (package changed?)")

    def signals(x):
        return np.ascontiguousarray(np.asarray(x, dtype=np.float32).reshape(-1, 1, 1, MNIST1D_LENGTH))

    y, y_test = np.asarray(d["y"], dtype=np.int64), np.asarray(d["y_test"], dtype=np.int64)
    return RawData("mnist1d", signals(d["x"]), y, signals(d["x_test"]), y_test, 10, 1.0)
