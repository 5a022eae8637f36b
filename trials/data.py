"""Datasets as uint8 image arrays, loaded once per process from their published formats.

Every loader returns a :class:`RawData` with ``x_* `` of shape ``(N, C, H, W)`` (uint8; float32 for
``mnist1d``) and ``y_*``
of shape ``(N,)`` (int64, classes ``0..n_classes-1``).  Nothing is ever downloaded: a missing file
raises ``FileNotFoundError`` and a malformed or truncated one raises ``ValueError``, both naming the
path and the expected format.

* ``digits`` -- scikit-learn's bundled 8x8 handwritten digits (1,797 images, pixel values 0..16).
  It has no official split; here a fixed permutation (``numpy.random.default_rng(0)``, the same
  in every process and trial) puts 297 images in the test set and 1,500 in the training pool.
  (The file's tail is written by other people than its head, so a tail split would make the test
  error systematically higher than the validation error.)
* ``mnist`` -- the four IDX files of LeCun et al. (``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``), raw or
  ``.gz``, in ``data_dir`` or ``data_dir/MNIST/raw``.  Test = the 10k t10k set.
* ``cifar10`` -- the "python version" batches (``data_batch_1..5``, ``test_batch``) in ``data_dir``
  or ``data_dir/cifar-10-batches-py``.  These are pickles; they are read with a restricted
  unpickler that resolves only numpy's array-reconstruction functions, so a file that tries to
  call anything else raises ``ValueError`` instead of running code.  Still, only load files you
  trust.
* ``imagenet32`` -- Downsampled ImageNet 32x32 (Chrabaszcz, Loshchilov & Hutter, arXiv 1707.08819):
  ``train_data_batch_1..10`` and ``val_data``, each a pickle or ``.npz`` with ``data`` (N, 3072
  uint8, channel planes R, G, B as in CIFAR) and ``labels`` (1..1000; shifted to 0..999), in
  ``data_dir`` or its ``Imagenet32_train``/``Imagenet32_val`` subfolders.  Test = ``val_data``.
* ``mnist1d`` -- MNIST-1D (Greydanus & Kobak, ICML 2024), generated in-process by the ``mnist1d``
  package (no file, no download; ``data_dir`` ignored): 4,000 training and 1,000 test signals of
  length 40 as **float32** ``(N, 1, 1, 40)``, see :mod:`trials.mnist1d`.

The validation split is carved from the training pool by :func:`split_indices`, seeded.
"""

from __future__ import annotations

import functools
import gzip
import importlib
import io
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "RawData",
    "DeviceData",
    "DATASETS",
    "load_dataset",
    "device_data",
    "split_indices",
    "channel_stats",
    "dataset_files",
]

DATASETS = ("digits", "mnist", "cifar10", "imagenet32", "mnist1d")
_GENERATED = ("digits", "mnist1d")  # need no data_dir: bundled (digits) or generated (mnist1d)


@dataclass(frozen=True)
class RawData:
    """A dataset in memory (numpy, uint8 images)."""

    name: str  # dataset name, one of DATASETS
    x_train: np.ndarray  # (N_train, C, H, W) uint8, the training pool (train + validation)
    y_train: np.ndarray  # (N_train,) int64 class indices
    x_test: np.ndarray  # (N_test, C, H, W) uint8; never used for the objective
    y_test: np.ndarray  # (N_test,) int64
    n_classes: int  # number of classes
    scale: float  # multiply pixel values by this to get [0, 1] (1/16 for digits, 1/255 otherwise)


# ----------------------------------------------------------------------------------------- helpers
def split_indices(n: int, valid_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of ``range(n)`` into disjoint, covering ``(train_idx, valid_idx)`` (sorted int64).

    ``round(n * valid_fraction)`` indices go to validation, drawn by
    ``numpy.random.default_rng(seed).permutation(n)``.  Raises ``ValueError`` when either part would
    be empty or ``valid_fraction`` is not in (0, 1).
    """
    if not (0.0 < valid_fraction < 1.0):
        raise ValueError(f"valid_fraction must be in (0, 1), got {valid_fraction!r}")
    n_valid = int(round(n * valid_fraction))
    if n_valid < 1 or n - n_valid < 1:
        raise ValueError(f"valid_fraction={valid_fraction} of {n} images leaves an empty train or validation set")
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_valid:]), np.sort(perm[:n_valid])


def channel_stats(x: np.ndarray, scale: float, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of ``x * scale``; ``x`` is (N, C, H, W).

    Computed in float64 over chunks of ``chunk`` images (no full-size float copy).  Returns two
    float32 arrays of shape ``(C,)``; a zero std is replaced by 1.
    """
    c = x.shape[1]
    s1 = np.zeros(c)
    s2 = np.zeros(c)
    for i in range(0, x.shape[0], chunk):
        b = x[i : i + chunk].astype(np.float64) * scale
        s1 += b.sum(axis=(0, 2, 3))
        s2 += (b * b).sum(axis=(0, 2, 3))
    count = x.shape[0] * x.shape[2] * x.shape[3]
    mean = s1 / count
    std = np.sqrt(np.maximum(s2 / count - mean**2, 0.0))
    std[std == 0] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)


def _first_existing(candidates: list[Path], what: str) -> Path:
    for p in candidates:
        if p.is_file():
            return p
    raise FileNotFoundError(
        f"{what} not found; looked for {[str(p) for p in candidates]}. "
        "Nothing is downloaded: put the file there (in its published format) or fix data_dir."
    )


def _need_dir(data_dir, name: str) -> Path:
    if data_dir is None:
        raise ValueError(f"dataset {name!r} needs spec.data_dir (a folder with the published files)")
    d = Path(os.fspath(data_dir)).expanduser()
    if not d.is_dir():
        raise FileNotFoundError(f"data_dir {str(d)!r} for dataset {name!r} is not a folder")
    return d


# ------------------------------------------------------------------------------------------ digits
_DIGITS_SPLIT_SEED = 0


def _digits_file() -> Path:
    """Path of scikit-learn's bundled ``datasets/data/digits.csv.gz`` (found without importing
    ``sklearn.datasets``, whose import costs seconds in every fresh Ray worker)."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("dataset 'digits' needs scikit-learn installed (pip install scikit-learn)")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "digits.csv.gz"


def _load_digits() -> RawData:
    """scikit-learn's bundled 8x8 digits (1797 images, values 0..16; the file ``load_digits`` reads:
    one row per image, 64 pixel columns then the label)."""
    path = _digits_file()
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.float64)
    except (OSError, ValueError) as e:
        raise ValueError(f"{str(path)!r} is not scikit-learn's digits CSV (64 pixels + label per row): {e}") from e
    if table.ndim != 2 or table.shape[1] != 65:
        raise ValueError(f"{str(path)!r}: expected 65 columns (64 pixels + label), got shape {table.shape}")
    order = np.random.default_rng(_DIGITS_SPLIT_SEED).permutation(len(table))  # fixed, not per trial
    x = table[:, :64].astype(np.uint8).reshape(-1, 1, 8, 8)[order]  # values 0..16
    y = table[:, 64].astype(np.int64)[order]
    return RawData("digits", x[:1500], y[:1500], x[1500:], y[1500:], 10, 1.0 / 16.0)


# ------------------------------------------------------------------------------------------- MNIST
_IDX_FORMAT = "IDX format (LeCun et al.: 2 zero bytes, type 0x08 = uint8, ndim, big-endian uint32 dims, data)"


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read one uint8 IDX file (raw or ``.gz``) with ``ndim`` dimensions; ``ValueError`` if malformed."""
    try:
        raw = gzip.open(path, "rb").read() if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path}: cannot read it as {_IDX_FORMAT} ({exc})") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or raw[3] != ndim:
        raise ValueError(f"{path}: bad header, expected {_IDX_FORMAT} with {ndim} dimension(s)")
    if len(raw) < 4 + 4 * ndim:
        raise ValueError(f"{path}: truncated header, expected {_IDX_FORMAT}")
    dims = tuple(int(v) for v in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    n = int(np.prod(dims))
    body = raw[4 + 4 * ndim :]
    if len(body) != n:
        raise ValueError(
            f"{path}: {len(body)} data bytes for dims {dims} (expected {n}); the file is truncated or "
            f"corrupt, expected {_IDX_FORMAT}"
        )
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def _load_mnist(data_dir) -> RawData:
    d = _need_dir(data_dir, "mnist")
    parts = {}
    for key, stem, ndim in (
        ("xtr", "train-images-idx3-ubyte", 3),
        ("ytr", "train-labels-idx1-ubyte", 1),
        ("xte", "t10k-images-idx3-ubyte", 3),
        ("yte", "t10k-labels-idx1-ubyte", 1),
    ):
        cands = [base / (stem + ext) for base in (d, d / "MNIST" / "raw") for ext in ("", ".gz")]
        parts[key] = read_idx(_first_existing(cands, f"MNIST file {stem} ({_IDX_FORMAT})"), ndim)
    for xs, ys in (("xtr", "ytr"), ("xte", "yte")):
        if parts[xs].shape[0] != parts[ys].shape[0]:
            raise ValueError(f"MNIST in {d}: {parts[xs].shape[0]} images but {parts[ys].shape[0]} labels")
    return RawData(
        "mnist",
        parts["xtr"][:, None].copy(),
        parts["ytr"].astype(np.int64),
        parts["xte"][:, None].copy(),
        parts["yte"].astype(np.int64),
        10,
        1.0 / 255.0,
    )


# ------------------------------------------------------------------------ CIFAR-10 and ImageNet32
class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that resolves only what pickled numpy arrays need (no arbitrary callables)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        canonical = module.replace("numpy._core", "numpy.core")
        if canonical.startswith("numpy.dtypes") and name.endswith("DType"):  # numpy >= 1.25 dtype classes
            return getattr(np.dtypes, name)
        if (canonical, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        if canonical == "_codecs":
            import _codecs

            return _codecs.encode
        if canonical == "numpy":
            return getattr(np, name)
        core = importlib.import_module("numpy._core" if hasattr(np, "_core") else "numpy.core")
        return getattr(getattr(core, canonical.split(".")[-1]), name)


def _get(d: dict, key: str):
    for k in (key, key.encode()):
        if k in d:
            return d[k]
    raise KeyError(key)


def read_batch(path: Path, fmt: str) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-style batch (pickle, or ``.npz``) -> ``(data (N, 3072) uint8, labels (N,) int64)``.

    ``ValueError`` naming ``path`` and ``fmt`` if it is truncated, not a dict with ``data`` and
    ``labels``, or the sizes disagree.
    """
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                d = {k: z[k] for k in z.files}
        else:
            with open(path, "rb") as fh:
                d = _ArrayUnpickler(io.BytesIO(fh.read()), encoding="bytes").load()
        data = np.asarray(_get(d, "data"))
        labels = np.asarray(_get(d, "labels"), dtype=np.int64)
    except FileNotFoundError:
        raise
    except Exception as exc:  # truncated pickle/zip, wrong content, refused global, ...
        raise ValueError(f"{path}: cannot read it as {fmt} ({type(exc).__name__}: {exc})") from exc
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{path}: expected {fmt} with data of shape (N, 3072) uint8 and N labels, got data "
            f"{data.shape} {data.dtype} and {labels.shape[0]} labels"
        )
    return data, labels


_CIFAR_FORMAT = "a CIFAR-10 python-version batch (pickled dict with b'data' (N, 3072) uint8 and b'labels')"


def _load_cifar10(data_dir) -> RawData:
    d = _need_dir(data_dir, "cifar10")
    bases = [d, d / "cifar-10-batches-py"]

    def batch(name):
        return read_batch(_first_existing([b / name for b in bases], f"CIFAR-10 file {name}"), _CIFAR_FORMAT)

    tr = [batch(f"data_batch_{i}") for i in range(1, 6)]
    te = batch("test_batch")
    x_train = np.concatenate([b[0] for b in tr]).reshape(-1, 3, 32, 32)
    y_train = np.concatenate([b[1] for b in tr])
    for y, what in ((y_train, "train"), (te[1], "test")):
        if y.size and (y.min() < 0 or y.max() > 9):
            raise ValueError(f"CIFAR-10 in {d}: {what} labels outside 0..9")
    return RawData("cifar10", x_train, y_train, te[0].reshape(-1, 3, 32, 32), te[1], 10, 1.0 / 255.0)


_IN32_FORMAT = "an ImageNet32 batch (pickle or .npz with 'data' (N, 3072) uint8 and 'labels' 1..1000)"


def _load_imagenet32(data_dir) -> RawData:
    d = _need_dir(data_dir, "imagenet32")

    def batch(name, sub):
        cands = [b / (name + ext) for b in (d, d / sub) for ext in ("", ".npz")]
        data, labels = read_batch(_first_existing(cands, f"ImageNet32 file {name}"), _IN32_FORMAT)
        if labels.size and (labels.min() < 1 or labels.max() > 1000):
            raise ValueError(f"{name} in {d}: labels must be 1..1000 ({_IN32_FORMAT})")
        return data.reshape(-1, 3, 32, 32), labels - 1  # labels are 1-based in the files

    tr = [batch(f"train_data_batch_{i}", "Imagenet32_train") for i in range(1, 11)]
    xte, yte = batch("val_data", "Imagenet32_val")
    return RawData(
        "imagenet32",
        np.concatenate([b[0] for b in tr]),
        np.concatenate([b[1] for b in tr]),
        xte,
        yte,
        1000,
        1.0 / 255.0,
    )


# ------------------------------------------------------------------------- expected files (no read)
_MAGIC = {  # leading bytes of each published format
    "idx3": (b"\x00\x00\x08\x03", "IDX uint8 with 3 dimensions"),
    "idx1": (b"\x00\x00\x08\x01", "IDX uint8 with 1 dimension"),
    "pickle": (b"\x80", "a pickle (protocol 2 or later, as published)"),
    "npz": (b"PK\x03\x04", "an .npz (zip) archive"),
}
_EXPECTED = {  # dataset -> (file stem, subfolders, extensions, format) per required file
    "mnist": [
        (f"{s}-idx{k}-ubyte", ("", "MNIST/raw"), ("", ".gz"), f"idx{k}")
        for s, k in (("train-images", 3), ("train-labels", 1), ("t10k-images", 3), ("t10k-labels", 1))
    ],
    "cifar10": [
        (n, ("", "cifar-10-batches-py"), ("",), "pickle")
        for n in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    ],
    "imagenet32": [(f"train_data_batch_{i}", ("", "Imagenet32_train"), ("", ".npz"), "pickle") for i in range(1, 11)]
    + [("val_data", ("", "Imagenet32_val"), ("", ".npz"), "pickle")],
}


def dataset_files(name: str, data_dir: str | os.PathLike | None) -> list[Path]:
    """The files dataset ``name`` reads from ``data_dir``, found where its loader looks, each
    checked to start like its published format (IDX magic, gzip, pickle protocol >= 2, or zip for
    ``.npz``); nothing else is read, so this is cheap even for ImageNet32.  ``digits`` and
    ``mnist1d`` (no files) -> ``[]``.

    Raises ``ValueError`` (unknown ``name``, ``data_dir`` None, a file not in its format) or
    ``FileNotFoundError`` (``data_dir`` not a folder, a file missing: the message lists where it
    was looked for), as the loaders of this module would later.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {list(DATASETS)}")
    if name in _GENERATED:
        return []
    d = _need_dir(data_dir, name)
    found = []
    for stem, subs, exts, fmt in _EXPECTED[name]:
        cands = [d / sub / (stem + ext) if sub else d / (stem + ext) for sub in subs for ext in exts]
        path = _first_existing(cands, f"{name} file {stem}")
        with open(path, "rb") as fh:
            head = fh.read(4)
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                head = fh.read(4) if head[:2] == b"\x1f\x8b" else b""
        magic, what = _MAGIC["npz" if path.suffix == ".npz" else fmt]
        if not head.startswith(magic):
            raise ValueError(f"{path}: does not start like {what}; put the published file there or fix data_dir")
        found.append(path)
    return found


# ------------------------------------------------------------------------------------------ entry
@functools.lru_cache(maxsize=2)
def _cached(name: str, data_dir: str | None) -> RawData:
    if name == "digits":
        return _load_digits()
    if name == "mnist":
        return _load_mnist(data_dir)
    if name == "cifar10":
        return _load_cifar10(data_dir)
    if name == "mnist1d":
        from .mnist1d import load_mnist1d

        return load_mnist1d()
    return _load_imagenet32(data_dir)


def load_dataset(name: str, data_dir: str | os.PathLike | None = None) -> RawData:
    """Load dataset ``name`` (one of ``DATASETS``) from ``data_dir``; cached per process.

    ``digits`` and ``mnist1d`` ignore ``data_dir``.  Raises ``ValueError`` for an unknown name or a
    malformed file, ``FileNotFoundError`` for a missing one (both name the path and the expected format).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {list(DATASETS)}")
    key = None if name in _GENERATED or data_dir is None else str(Path(os.fspath(data_dir)).expanduser().resolve())
    return _cached(name, key)


# ------------------------------------------------------------------------------- device tensors
@dataclass(frozen=True)
class DeviceData:
    """A dataset as tensors on one device, plus the per-channel normalization of its training pool."""

    x_train: object  # torch uint8 (N_train, C, H, W) on the device, the whole training pool
    y_train: object  # torch int64 (N_train,)
    x_test: object  # torch uint8 (N_test, C, H, W)
    y_test: object  # torch int64 (N_test,)
    scale: object  # torch float32 (1, C, 1, 1): scale / std, so x_norm = x * scale + shift
    shift: object  # torch float32 (1, C, 1, 1): -mean / std
    n_classes: int  # number of classes
    channels: int  # C
    image_size: int  # H (== W)


@functools.lru_cache(maxsize=2)
def _device_cached(name: str, key: str | None, device: str) -> DeviceData:
    import torch

    raw = _cached(name, key)
    mean, std = channel_stats(raw.x_train, raw.scale)  # training pool only, never test
    dev = torch.device(device)

    def t(a):
        return torch.from_numpy(np.ascontiguousarray(a)).to(dev)

    return DeviceData(
        t(raw.x_train),
        t(raw.y_train),
        t(raw.x_test),
        t(raw.y_test),
        t((raw.scale / std).reshape(1, -1, 1, 1).astype(np.float32)),
        t((-mean / std).reshape(1, -1, 1, 1).astype(np.float32)),
        raw.n_classes,
        raw.x_train.shape[1],
        raw.x_train.shape[2],
    )


def device_data(name: str, data_dir: str | os.PathLike | None, device) -> DeviceData:
    """Dataset ``name`` as tensors on ``device`` (images stay uint8; normalize per batch with
    ``x * scale + shift``, the training pool's per-channel mean/std).  Cached per process (the two
    most recent datasets/devices).  Raises like :func:`load_dataset`.
    """
    load_dataset(name, data_dir)  # validates the name, raises file errors, fills the cache
    key = None if name in _GENERATED or data_dir is None else str(Path(os.fspath(data_dir)).expanduser().resolve())
    return _device_cached(name, key, str(device))
