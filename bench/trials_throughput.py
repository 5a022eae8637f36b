"""Training throughput of ``trials.train_and_evaluate`` against plain ``DataLoader`` loops.

CPU (always): the digits CNN (default hyperparameters, batch 64), images per second over a few
epochs, for

* ``train_and_evaluate``: data as tensors, index-sliced batches, augmentation on the whole batch;
  its wall time includes model build and the per-epoch validation pass;
* a plain loop over ``DataLoader(TensorDataset(...), shuffle=True)`` of pre-normalized float tensors
  (the most favourable DataLoader set-up), with the same per-epoch validation pass;
* a plain loop over a ``Dataset`` that converts/normalizes (and, with shift, pads and crops) one
  image per ``__getitem__``, as torchvision-style transforms do;

same model, optimizer, SGDR schedule and batch size; without and with the shift augmentation.
Each is run ``--repeats`` times interleaved and the best time kept (other processes on the machine
only ever slow a run down).  Threads are pinned (``--threads``, default 1) for torch and BLAS.
Also prints the wall time of one default digits trial of 15 and 30 epochs.

GPU (only when CUDA is present): CIFAR-10-shaped synthetic data (50,000 random images written in
the real python-batch format) through ResNet-20, images per second with bf16 autocast on and off.

Usage: ``python bench/trials_throughput.py [--epochs 5] [--repeats 3] [--threads 1]``
"""

from __future__ import annotations

import argparse
import os
import sys

_THREADS = "1"
for _i, _a in enumerate(sys.argv):
    if _a == "--threads" and _i + 1 < len(sys.argv):
        _THREADS = sys.argv[_i + 1]
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = _THREADS

import math  # noqa: E402
import pickle  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils.data import DataLoader, Dataset, TensorDataset  # noqa: E402

import trials  # noqa: E402
from trials.data import channel_stats, load_dataset, split_indices  # noqa: E402
from trials.hparams import resolve_hparams  # noqa: E402
from trials.models import build_model  # noqa: E402
from trials.optim import make_optimizer  # noqa: E402
from trials.schedules import make_sgdr  # noqa: E402


class PerItemDigits(Dataset):
    """torchvision-style dataset: uint8 image -> float, normalize, optional pad+random crop, per item."""

    def __init__(self, x_u8, y, mean, std, shift, seed):
        self.x, self.y, self.mean, self.std, self.shift = x_u8, y, float(mean), float(std), shift
        self.rng = np.random.default_rng(seed)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        img = torch.from_numpy(self.x[i].astype(np.float32) / 16.0)  # like ToTensor
        if self.shift:
            s = self.shift
            pad = F.pad(img, (s, s, s, s))  # like RandomCrop(padding=s)
            dy, dx = self.rng.integers(0, 2 * s + 1, 2)
            img = pad[:, dy : dy + img.shape[1], dx : dx + img.shape[2]]
        return (img - self.mean) / self.std, int(self.y[i])  # like Normalize


def dataloader_run(kind: str, hp_user: dict, epochs: int, batch_size: int, seed: int = 0) -> float:
    """Seconds for ``epochs`` epochs (train + validation pass) of the DataLoader loop ``kind``."""
    t0 = time.perf_counter()
    raw = load_dataset("digits")
    tr, va = split_indices(len(raw.y_train), 0.4, 0)
    mean, std = (float(a[0]) for a in channel_stats(raw.x_train, raw.scale))
    hp = resolve_hparams(hp_user, None, "adamw", "cnn")
    gen = torch.Generator().manual_seed(seed)
    model = build_model("cnn", 1, 10, 8, hp, gen)
    opt = make_optimizer("adamw", model, hp["lr"], hp["weight_decay"])
    steps = math.ceil(len(tr) / batch_size)
    sched = make_sgdr(opt, float(epochs), hp["T_mult"], hp["eta_min"], steps)
    if kind == "tensor":
        xt = (torch.from_numpy(raw.x_train.astype(np.float32)) * raw.scale - mean) / std
        yt = torch.from_numpy(raw.y_train)
        train_ds = TensorDataset(xt[tr], yt[tr])
        valid_ds = TensorDataset(xt[va], yt[va])
    else:
        train_ds = PerItemDigits(raw.x_train[tr], raw.y_train[tr], mean, std, hp["shift"], seed)
        valid_ds = PerItemDigits(raw.x_train[va], raw.y_train[va], mean, std, 0, seed)
    train_dl = DataLoader(train_ds, batch_size=batch_size, shuffle=True, generator=gen)
    valid_dl = DataLoader(valid_ds, batch_size=1024)
    for _ in range(epochs):
        model.train()
        for xb, yb in train_dl:
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        wrong = 0
        with torch.inference_mode():
            for xb, yb in valid_dl:
                wrong += int((model(xb).argmax(1) != yb).sum())
    return time.perf_counter() - t0


def ours_run(hp_user: dict, epochs: int, batch_size: int, **spec) -> tuple[float, float]:
    spec = {"epochs": epochs, "batch_size": batch_size, "evaluate_test": False, **spec}
    r = trials.train_and_evaluate(hp_user, spec)
    if r.status != "ok":
        raise RuntimeError(f"trial did not finish: {r.status} {r.reason}")
    return r.wall_time_s, r.objective


def cpu_section(epochs: int, repeats: int, threads: int) -> None:
    torch.set_num_threads(threads)
    bs = 64
    n_train = 900
    ours_run({}, 1, bs, device="cpu")  # warm-up: loads and caches the data
    print(
        f"## CPU, digits CNN (default hparams), batch {bs}, {epochs} epochs x {n_train} images, "
        f"{threads} thread(s), best of {repeats}; torch {torch.__version__}"
    )
    print(f"{'augmentation':<14}{'method':<44}{'images/s':>10}{'ratio':>8}")
    for shift in (0, 1):
        hp = {"shift": shift}
        times = {"ours": [], "tensor": [], "per_item": []}
        for _ in range(repeats):
            times["ours"].append(ours_run(hp, epochs, bs, device="cpu")[0])
            if shift == 0:
                times["tensor"].append(dataloader_run("tensor", hp, epochs, bs))
            times["per_item"].append(dataloader_run("per_item", hp, epochs, bs))
        ips = {k: epochs * n_train / min(v) for k, v in times.items() if v}
        label = "none" if shift == 0 else f"shift={shift}"
        names = {
            "ours": "train_and_evaluate (tensors, index slices)",
            "tensor": "DataLoader(TensorDataset), same model",
            "per_item": "DataLoader(per-item transforms), same model",
        }
        for k in ("ours", "tensor", "per_item"):
            if k in ips:
                print(f"{label:<14}{names[k]:<44}{ips[k]:>10.0f}{ips['ours'] / ips[k]:>8.2f}")
    print()
    print("## one default digits trial, wall time (s), best of", repeats)
    for ep in (15, 30):
        ts, objs = zip(*[ours_run({}, ep, bs, device="cpu") for _ in range(repeats)])
        print(f"epochs={ep:<3} wall_time_s={min(ts):.2f} (max {max(ts):.2f})  valid_error={objs[0]:.4f}")


def _write_synthetic_cifar(d: Path, n_train: int = 50000, n_test: int = 10000) -> None:
    rng = np.random.default_rng(0)
    sizes = [n_train // 5] * 5 + [n_test]
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name, n in zip(names, sizes):
        batch = {
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"labels": list(rng.integers(0, 10, n)),
        }
        with open(d / name, "wb") as fh:
            pickle.dump(batch, fh, protocol=2)


def gpu_section(epochs: int) -> None:
    print()
    print(f"## GPU ({torch.cuda.get_device_name(0)}), ResNet-20 on CIFAR-10-shaped synthetic data, batch 128")
    with tempfile.TemporaryDirectory() as tmp:
        _write_synthetic_cifar(Path(tmp))
        spec = {"dataset": "cifar10", "data_dir": tmp, "device": "cuda", "valid_fraction": 0.1}
        ours_run({}, 1, 128, **spec, amp=True)  # warm-up: data to the GPU, cuDNN autotune
        print(f"{'bf16 autocast':<16}{'images/s':>10}")
        for amp in (True, False):
            t, _ = ours_run({}, epochs, 128, **spec, amp=amp)
            print(f"{str(amp):<16}{epochs * 45000 / t:>10.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    cpu_section(args.epochs, args.repeats, args.threads)
    if torch.cuda.is_available():
        gpu_section(max(2, args.epochs // 2))


if __name__ == "__main__":
    main()
