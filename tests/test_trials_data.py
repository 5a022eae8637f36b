"""Dataset loaders on tiny files written in each real format; splits; the shift augmentation."""

import gzip
import os
import pickle

import numpy as np
import pytest
import torch

import trials
from trials.data import load_dataset, split_indices

RNG = np.random.default_rng(0)


# ---------------------------------------------------------------------------------- writers
def _write_idx(path, arr, gz=False):
    header = bytes([0, 0, 0x08, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    blob = header + arr.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as fh:
            fh.write(blob)
    else:
        path.write_bytes(blob)


def _mnist(dirpath, n_train=30, n_test=10, gz=False):
    xtr = RNG.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    ytr = np.arange(n_train) % 10
    xte = RNG.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)
    yte = np.arange(n_test) % 10
    for stem, a in (
        ("train-images-idx3-ubyte", xtr),
        ("train-labels-idx1-ubyte", ytr),
        ("t10k-images-idx3-ubyte", xte),
        ("t10k-labels-idx1-ubyte", yte),
    ):
        _write_idx(dirpath / stem, a, gz)
    return xtr, ytr, xte, yte


def _cifar_batch(path, n, protocol=2, label_base=0, npz=False, n_classes=10):
    # the published python batches: dict with bytes keys, data (N, 3072) uint8 as R, G, B planes
    data = RNG.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = [int(v) % n_classes + label_base for v in range(n)]
    if npz:
        np.savez(path, data=data, labels=np.asarray(labels), mean=data.mean(axis=0))
    else:
        d = {b"batch_label": b"tiny", b"labels": labels, b"data": data, b"filenames": [b"x.png"] * n}
        with open(path, "wb") as fh:
            pickle.dump(d, fh, protocol=protocol)
    return data, np.asarray(labels)


def _cifar(dirpath, n=8):
    sub = dirpath / "cifar-10-batches-py"
    sub.mkdir()
    tr = [_cifar_batch(sub / f"data_batch_{i}", n) for i in range(1, 6)]
    te = _cifar_batch(sub / "test_batch", n, protocol=pickle.HIGHEST_PROTOCOL)
    return tr, te


def _imagenet32(dirpath, n=4, npz=False):
    ext = ".npz" if npz else ""
    tr = [
        _cifar_batch(dirpath / f"train_data_batch_{i}{ext}", n, label_base=1, npz=npz, n_classes=1000)
        for i in range(1, 11)
    ]
    te = _cifar_batch(dirpath / f"val_data{ext}", n, label_base=1, npz=npz, n_classes=1000)
    return tr, te


def _truncate(path):
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])


# ------------------------------------------------------------------------------------ tests
def test_split_is_disjoint_covering_and_seeded():
    tr, va = split_indices(1500, 0.4, seed=3)
    assert len(va) == 600 and len(tr) == 900
    assert np.intersect1d(tr, va).size == 0
    np.testing.assert_array_equal(np.union1d(tr, va), np.arange(1500))
    tr2, va2 = split_indices(1500, 0.4, seed=3)
    np.testing.assert_array_equal(va, va2)
    assert not np.array_equal(va, split_indices(1500, 0.4, seed=4)[1])
    with pytest.raises(ValueError):
        split_indices(3, 0.1, 0)  # empty validation set


def test_digits_split_sizes():
    d = load_dataset("digits")
    assert d.x_train.shape == (1500, 1, 8, 8) and d.x_test.shape == (297, 1, 8, 8)
    assert d.x_train.dtype == np.uint8 and d.x_train.max() == 16
    assert set(np.unique(d.y_train)) == set(range(10))


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx(tmp_path, gz):
    xtr, ytr, xte, yte = _mnist(tmp_path, gz=gz)
    d = load_dataset("mnist", tmp_path)
    np.testing.assert_array_equal(d.x_train[:, 0], xtr)
    np.testing.assert_array_equal(d.y_train, ytr)
    np.testing.assert_array_equal(d.x_test[:, 0], xte)
    np.testing.assert_array_equal(d.y_test, yte)


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_truncated_file_names_path_and_format(tmp_path, gz):
    _mnist(tmp_path, gz=gz)
    victim = tmp_path / ("train-images-idx3-ubyte" + (".gz" if gz else ""))
    _truncate(victim)
    with pytest.raises(ValueError, match="IDX") as exc:
        load_dataset("mnist", tmp_path)
    assert str(victim) in str(exc.value)


def test_cifar10_python_batches(tmp_path):
    tr, te = _cifar(tmp_path)
    d = load_dataset("cifar10", tmp_path)
    assert d.x_train.shape == (40, 3, 32, 32) and d.x_test.shape == (8, 3, 32, 32)
    # row layout: 1024 red, then green, then blue values, each 32x32 row-major
    np.testing.assert_array_equal(d.x_train[0, 1], tr[0][0][0, 1024:2048].reshape(32, 32))
    np.testing.assert_array_equal(d.y_train, np.concatenate([b[1] for b in tr]))
    np.testing.assert_array_equal(d.x_test.reshape(8, -1), te[0])


def test_cifar10_truncated_and_hostile_files(tmp_path):
    _cifar(tmp_path)
    victim = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    _truncate(victim)
    with pytest.raises(ValueError, match="CIFAR-10") as exc:
        load_dataset("cifar10", tmp_path)
    assert str(victim) in str(exc.value)
    # a pickle that would call a function when loaded is refused, not executed
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    with open(victim, "wb") as fh:
        pickle.dump({b"data": Evil(), b"labels": [0]}, fh)
    with pytest.raises(ValueError, match="refusing"):
        load_dataset("cifar10", tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize("npz", [False, True])
def test_imagenet32_batches(tmp_path, npz):
    tr, te = _imagenet32(tmp_path, npz=npz)
    d = load_dataset("imagenet32", tmp_path)
    assert d.x_train.shape == (40, 3, 32, 32) and d.n_classes == 1000
    np.testing.assert_array_equal(d.y_train, np.concatenate([b[1] for b in tr]) - 1)  # 1-based in the files
    np.testing.assert_array_equal(d.x_test.reshape(4, -1), te[0])


def test_imagenet32_truncated_and_missing(tmp_path):
    _imagenet32(tmp_path, npz=True)
    victim = tmp_path / "val_data.npz"
    _truncate(victim)
    with pytest.raises(ValueError, match="ImageNet32") as exc:
        load_dataset("imagenet32", tmp_path)
    assert str(victim) in str(exc.value)
    (tmp_path / "train_data_batch_7.npz").unlink()
    with pytest.raises(FileNotFoundError, match="train_data_batch_7"):
        load_dataset("imagenet32", tmp_path)


def test_random_shift_translates_each_image_within_range():
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).reshape(2, 3, 5, 5) + 1
    g = torch.Generator().manual_seed(0)
    s = 2
    out = trials.random_shift(x, s, g)
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (s, s, s, s))
    for i in range(2):
        matches = [
            (dy, dx)
            for dy in range(2 * s + 1)
            for dx in range(2 * s + 1)
            if torch.equal(out[i], padded[i, :, dy : dy + 5, dx : dx + 5])
        ]
        assert len(matches) == 1
    assert trials.random_shift(x, 0, g) is x


def test_train_on_tiny_mnist_and_cifar_files(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "c").mkdir()
    _mnist(tmp_path / "m", n_train=40)
    _cifar(tmp_path / "c")
    small = {"filters1": 4, "filters2": 4, "filters3": 8}
    r = trials.train_and_evaluate(
        {**small, "dense_units": 8},
        {
            "dataset": "mnist",
            "data_dir": str(tmp_path / "m"),
            "epochs": 1,
            "valid_fraction": 0.25,
            "threads": 1,
        },
    )
    assert r.status == "ok" and (r.train_size, r.valid_size) == (30, 10) and r.test_error is not None
    r = trials.train_and_evaluate(
        {**small, "shift": 4},
        {
            "dataset": "cifar10",
            "data_dir": str(tmp_path / "c"),
            "epochs": 1,
            "optimizer": "sgdw",
            "threads": 1,
        },
    )
    assert r.status == "ok" and r.valid_size == 16 and r.n_params > 0
    # ResNet-20 with these widths: 19 3x3 convs + 2 projection shortcuts + 21 BN + linear
    assert r.hparams["filters3"] == 8 and r.epochs_run == 1
