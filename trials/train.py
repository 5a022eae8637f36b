"""One trial: train a network with given hyperparameters and return its validation error.

``train_and_evaluate(hparams, spec) -> TrialResult``.  The structure follows pytorch/examples
``mnist/main.py`` (seed first; a train epoch and an evaluation kept apart) without its per-batch
``DataLoader``: the whole dataset sits on the training device as uint8 tensors and a batch is an
index gather of a seeded permutation, normalized (and randomly shifted) on the device.

Randomness comes only from generators seeded with ``spec.seed`` (weight init, batch order,
dropout masks, shifts) and ``spec.split_seed`` (which images are validation); torch's global RNG is
neither seeded nor advanced, so a CPU run with the same hparams, spec and thread count is
bit-for-bit repeatable.
"""

from __future__ import annotations

import dataclasses
import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .data import DATASETS, device_data, split_indices
from .hparams import HPARAMS, OPTIMIZERS, ignored_hparams, resolve_hparams
from .models import MODELS, Dropout, build_model
from .optim import make_optimizer, weight_decay_from_norm
from .schedules import make_sgdr

__all__ = ["TrialSpec", "TrialResult", "ResultStatus", "train_and_evaluate", "random_shift"]

_AUTO_MODEL = {"digits": "cnn", "mnist": "cnn", "cifar10": "resnet20", "imagenet32": "resnet20", "mnist1d": "cnn1d"}
#: datasets of 1-D signals and the models that take them (every other pair would fail every trial
#: on a shape error)
_SIGNAL_DATASETS, _SIGNAL_MODELS = ("mnist1d",), ("cnn1d",)
_EVAL_BATCH = 1024


def _int(v: Any) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


@dataclass
class TrialSpec:
    """What to train and how; everything about a trial except the tuned hyperparameters.

    Validated on construction (``ValueError`` naming the field), including that ``model`` fits
    ``dataset`` (``cnn1d`` takes the 1-D signals of ``mnist1d``, ``cnn`` and ``resnet20`` images).
    ``TrialSpec.from_dict`` builds one from a plain dict (the ``trial:`` section of a campaign YAML).
    """

    dataset: str = "digits"  # one of trials.DATASETS: digits (bundled), mnist, cifar10, imagenet32
    data_dir: str | None = None  # folder with the dataset's published files (not used by digits)
    model: str = "auto"  # "cnn", "resnet20", "cnn1d", or "auto" (cnn: digits/mnist, resnet20: 32x32, cnn1d: mnist1d)
    optimizer: str = "adamw"  # one of trials.OPTIMIZERS, used unless hparam "optimizer" is given
    epochs: int = 15  # training epochs (passes over the training split)
    batch_size: int = 64  # images per batch unless hparam log2_batch_size is given
    valid_fraction: float = 0.4  # share of the training pool for validation (digits: 600; lower for big sets)
    split_seed: int = 0  # seed of the validation split; keep it fixed across a campaign's trials
    seed: int = 0  # seed of weight init, batch order, dropout and shifts
    device: str = "auto"  # "auto" (CUDA when present), "cpu", "cuda" or "cuda:N"
    threads: int | None = None  # torch intra-op threads during the trial (restored after); None = leave
    amp: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    divergence_loss: float = 100.0  # a training loss above this (or non-finite) stops the trial
    evaluate_test: bool = True  # compute the test error of the final model (never the objective)
    fixed: dict = field(default_factory=dict)  # hyperparameter values not being tuned (names of HPARAMS)

    def __post_init__(self) -> None:
        self._check_what()
        self._check_how()

    def _bad(self, name: str, why: str):
        raise ValueError(f"TrialSpec.{name}={getattr(self, name)!r}: {why}")

    def _check_what(self) -> None:
        """Dataset, data_dir, model, optimizer and fixed hyperparameters (ValueError naming the field)."""
        bad = self._bad
        if self.dataset not in DATASETS:
            bad("dataset", f"unknown dataset; known: {list(DATASETS)}")
        if self.data_dir is not None:
            if not isinstance(self.data_dir, str):
                try:
                    self.data_dir = str(self.data_dir.__fspath__())
                except AttributeError:
                    bad("data_dir", "must be a path string or None")
        if self.model not in ("auto", *MODELS):
            bad("model", f"must be 'auto' or one of {list(MODELS)}")
        if self.model != "auto" and (self.model in _SIGNAL_MODELS) != (self.dataset in _SIGNAL_DATASETS):
            fits = [m for m in MODELS if (m in _SIGNAL_MODELS) == (self.dataset in _SIGNAL_DATASETS)]
            kind = "1-D signals" if self.dataset in _SIGNAL_DATASETS else "images"
            bad("model", f"does not fit dataset {self.dataset!r}, which holds {kind}: use 'auto' or one of {fits}")
        if self.optimizer not in OPTIMIZERS:
            bad("optimizer", f"must be one of {list(OPTIMIZERS)}")
        if not isinstance(self.fixed, dict):
            bad("fixed", "must be a dict of hyperparameter values")
        unknown = sorted(set(self.fixed) - set(HPARAMS))
        if unknown:
            bad("fixed", f"unknown hyperparameter(s) {unknown}; known: {sorted(HPARAMS)}")

    def _check_how(self) -> None:
        """Epochs, sizes, seeds, device and switches (ValueError naming the field)."""
        bad = self._bad
        if not _int(self.epochs) or self.epochs < 1:
            bad("epochs", "must be an integer >= 1")
        if not _int(self.batch_size) or self.batch_size < 1:
            bad("batch_size", "must be an integer >= 1")
        if isinstance(self.valid_fraction, bool) or not (
            isinstance(self.valid_fraction, float | int) and 0.0 < self.valid_fraction < 1.0
        ):
            bad("valid_fraction", "must be a number in (0, 1)")
        for name in ("seed", "split_seed"):
            if not _int(getattr(self, name)) or getattr(self, name) < 0:
                bad(name, "must be an integer >= 0")
        dev = self.device
        if not isinstance(dev, str) or not (
            dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit())
        ):
            bad("device", "must be 'auto', 'cpu', 'cuda' or 'cuda:N'")
        if self.threads is not None and (not _int(self.threads) or self.threads < 1):
            bad("threads", "must be None or an integer >= 1")
        if not isinstance(self.amp, bool):
            bad("amp", "must be True or False")
        if not isinstance(self.evaluate_test, bool):
            bad("evaluate_test", "must be True or False")
        if isinstance(self.divergence_loss, bool) or not (
            isinstance(self.divergence_loss, float | int) and self.divergence_loss > 0
        ):
            bad("divergence_loss", "must be a number > 0")

    @classmethod
    def from_dict(cls, d: dict | None) -> TrialSpec:
        """Build from a plain dict; ``ValueError`` naming any unknown key (and listing the known)."""
        if d is None:
            return cls()
        if not isinstance(d, dict):
            raise ValueError(f"a trial spec must be a dict, got {type(d).__name__}")
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ValueError(f"unknown TrialSpec key(s) {unknown}; known: {known}")
        return cls(**d)

    def resolved_model(self) -> str:
        """The model name after ``"auto"``: ``"cnn"``, ``"resnet20"`` or ``"cnn1d"``."""
        return _AUTO_MODEL[self.dataset] if self.model == "auto" else self.model


class ResultStatus(str, Enum):
    """``TrialResult.status``; a ``str`` enum, so it equals (and serializes as) its string."""

    OK = "ok"  # trained to the end; objective = final validation error
    DIVERGED = "diverged"  # training loss non-finite or above spec.divergence_loss; objective = majority-class error
    FAILED = "failed"  # building or training raised; objective = NaN, reason = the exception

    def __str__(self) -> str:
        return self.value


@dataclass
class TrialResult:
    """Outcome of one trial.  Every field holds plain Python values (``float``, ``int``, ``str``,
    lists and dicts of them); ``to_dict()`` gives a JSON-safe dict (NaN/inf become ``None``)."""

    objective: float  # validation error in [0, 1] of the final model (minimize); NaN when failed
    status: ResultStatus  # ok, diverged (objective = error of the majority-class predictor), failed
    reason: str  # why it diverged/failed ("" when ok)
    curves: dict  # per completed epoch: train_loss (mean), valid_error, lr (at its last batch)
    test_error: float | None  # final test error, None when not computed / no usable model
    wall_time_s: float  # seconds from call to return, data loading included
    epochs_run: int  # completed epochs
    device: str  # torch device used, e.g. "cpu" or "cuda:0"
    torch_version: str  # torch.__version__
    hparams: dict  # hyperparameters as used (aliases converted, defaults filled, None dropped), with "optimizer"
    valid_size: int  # validation images
    train_size: int = 0  # training images (training pool minus validation)
    batch_size: int = 0  # images per batch used
    n_params: int = 0  # trainable parameters of the model (0 if it was not built)
    ignored_hparams: dict = field(default_factory=dict)  # given but not applicable to the tuned optimizer choice
    stopped_at: int | None = None  # epoch after which the report callback stopped training; None = not stopped

    def __post_init__(self) -> None:
        self.status = ResultStatus(self.status)

    def to_dict(self) -> dict:
        """Plain, JSON-serializable dict of all fields; non-finite floats become ``None``."""
        d = dataclasses.asdict(self)
        d["status"] = ResultStatus(self.status).value
        d["objective"], d["test_error"] = _finite(self.objective), _finite(self.test_error)
        d["curves"] = {k: [_finite(v) for v in vals] for k, vals in self.curves.items()}
        return d


def _finite(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={name!r} requested but CUDA is not available; use 'auto' or 'cpu'")
        return torch.device("cuda", dev.index or 0)
    return dev


def random_shift(x: torch.Tensor, s: int, generator: torch.Generator | None) -> torch.Tensor:
    """Translate each image of ``x`` (N, C, H, W) by its own random offsets in ``{-s..s}`` per axis.

    Pixels moved in from outside are 0.  Offsets are drawn with ``generator`` (on ``x``'s device).
    Returns a new (N, C, H, W) tensor of ``x``'s dtype; ``s = 0`` returns ``x`` itself.
    """
    if s == 0:
        return x
    n, c, h, w = x.shape
    xp = F.pad(x, (s, s, s, s))  # (N, C, H+2s, W+2s), zero fill
    dy = torch.randint(0, 2 * s + 1, (n, 1, 1, 1), generator=generator, device=x.device)
    dx = torch.randint(0, 2 * s + 1, (n, 1, 1, 1), generator=generator, device=x.device)
    rows = dy + torch.arange(h, device=x.device).view(1, 1, h, 1)  # (N, 1, H, 1)
    cols = dx + torch.arange(w, device=x.device).view(1, 1, 1, w)  # (N, 1, 1, W)
    ni = torch.arange(n, device=x.device).view(n, 1, 1, 1)
    ci = torch.arange(c, device=x.device).view(1, c, 1, 1)
    return xp[ni, ci, rows, cols]


def _error_count(model, x_u8, y, data, device, amp, memfmt) -> int:
    """Number of misclassified images of ``x_u8`` (uint8, on device), in eval mode."""
    model.eval()
    wrong = torch.zeros((), dtype=torch.int64, device=device)
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        for i in range(0, x_u8.shape[0], _EVAL_BATCH):
            xb = (x_u8[i : i + _EVAL_BATCH].float() * data.scale + data.shift).contiguous(memory_format=memfmt)
            wrong += (model(xb).argmax(dim=1) != y[i : i + _EVAL_BATCH]).sum()
    return int(wrong.item())


def train_and_evaluate(
    hparams: dict | None = None,
    spec: TrialSpec | dict | None = None,
    report: Callable[[int, float], Any] | None = None,
) -> TrialResult:
    """Train ``spec``'s model on ``spec``'s dataset with ``hparams`` and return its validation error.

    ``hparams`` maps names of ``trials.HPARAMS`` to values (see ``trials.describe_hparams()``;
    missing ones take their defaults, ``spec.fixed`` supplies values not tuned).  Training: SGDR
    (arXiv 1608.03983, Eq. (5)) stepped per batch over ``spec.epochs`` epochs, one of
    ``trials.OPTIMIZERS`` (hparam ``optimizer``, else ``spec.optimizer``) with decoupled weight
    decay (arXiv 1711.05101), cross-entropy with label smoothing, optional random
    shifts and gradient-norm clipping.  The objective is the final model's error on the validation
    split (``spec.valid_fraction`` of the training pool, chosen by ``spec.split_seed``); the test
    split is only reported.  Both models run channels-last; on CUDA the forward pass uses bf16
    autocast when ``spec.amp``; AdamW is torch's fused implementation where available.

    Never raises for what happens during training: a non-finite training loss or one above
    ``spec.divergence_loss`` stops early with ``status="diverged"`` and the objective set to the
    error of a constant classifier (the validation set's majority class); any other exception while
    building or training the model gives ``status="failed"``, ``objective=nan`` and the exception
    in ``reason``.  Raises before training: ``ValueError`` for invalid hparams or spec (unknown
    names, out-of-range values), ``FileNotFoundError``/``ValueError`` for missing/malformed data.

    ``report`` (multi-fidelity, e.g. asynchronous successive halving, arXiv 1810.05934): if given,
    ``report(epoch, valid_error)`` is called after every completed epoch (epoch from 1, the value
    just appended to ``curves["valid_error"]``).  When it returns ``False`` training stops there:
    the result has ``status="ok"``, the objective is that epoch's validation error and
    ``stopped_at`` is the epoch (no test error is computed: it is the final model's only).  Any
    other return value (``True``, ``None``) goes on.  An exception raised by ``report`` fails the
    trial like any other exception during training (``status="failed"``, the exception in
    ``reason``).
    """
    t_start = time.perf_counter()
    if not isinstance(spec, TrialSpec):
        spec = TrialSpec.from_dict(spec)
    model_name = spec.resolved_model()
    hp = resolve_hparams(hparams, spec.fixed, spec.optimizer, model_name)
    device = _device(spec.device)
    data = device_data(spec.dataset, spec.data_dir, device)
    if hp["shift"] >= data.image_size:
        raise ValueError(f"hyperparameter shift={hp['shift']} must be smaller than the image side {data.image_size}")
    train_np, valid_np = split_indices(data.x_train.shape[0], spec.valid_fraction, spec.split_seed)
    n_train, n_valid = len(train_np), len(valid_np)
    batch_size = 2 ** hp["log2_batch_size"] if hp["log2_batch_size"] is not None else spec.batch_size
    if hp["T_0"] is None:
        hp["T_0"] = float(spec.epochs)
    if hp["weight_decay"] is None:
        hp["weight_decay"] = weight_decay_from_norm(hp["weight_decay_norm"], batch_size, n_train, spec.epochs)
    hp.pop("weight_decay_norm")
    used = {k: v for k, v in hp.items() if v is not None}

    train_idx = torch.from_numpy(train_np).to(device)
    valid_idx = torch.from_numpy(valid_np).to(device)
    x_valid, y_valid = data.x_train[valid_idx], data.y_train[valid_idx]
    constant_error = 1.0 - float(torch.bincount(y_valid, minlength=data.n_classes).max().item()) / n_valid
    curves: dict[str, list] = {"train_loss": [], "valid_error": [], "lr": []}
    result = TrialResult(
        objective=math.nan,
        status=ResultStatus.FAILED,
        reason="",
        curves=curves,
        test_error=None,
        wall_time_s=0.0,
        epochs_run=0,
        device=str(device),
        torch_version=torch.__version__,
        hparams=used,
        ignored_hparams=ignored_hparams(hparams, spec.fixed, spec.optimizer, model_name),
        valid_size=n_valid,
        train_size=n_train,
        batch_size=batch_size,
    )
    old_threads = torch.get_num_threads()
    if spec.threads is not None:
        torch.set_num_threads(spec.threads)
    try:
        _train(spec, hp, data, device, train_idx, x_valid, y_valid, batch_size, constant_error, result, report)
    except Exception as exc:  # a trial never raises once training has started
        result.status, result.objective, result.test_error = ResultStatus.FAILED, math.nan, None
        tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
        result.reason = f"{tb} (in epoch {result.epochs_run + 1})"
    finally:
        if spec.threads is not None:
            torch.set_num_threads(old_threads)
    result.wall_time_s = time.perf_counter() - t_start
    return result


def _stops(answer: Any) -> bool:
    """True when a report callback's answer says stop: ``False`` (also numpy's); ``None`` goes on."""
    return answer is not None and not bool(answer)


# oneDNN (torch 2.13 CPU) corrupts the heap in the backward pass of channels-last 2-D convolutions
# with fewer than 8 channels (seen on AMD EPYC: "double free or corruption" at 2, 4 and 6 channels,
# fine at 8 and more); such models train in the default (contiguous) layout on the CPU.
_MIN_CPU_CHANNELS_LAST = 8


def _memory_format(model: torch.nn.Module, cuda: bool) -> torch.memory_format:
    """``torch.channels_last`` (faster convolutions on CUDA and, for these small maps, on the CPU
    through oneDNN) unless on the CPU some 2-D convolution has fewer than 8 output channels; then
    ``torch.contiguous_format``.  Never raises."""
    if cuda:
        return torch.channels_last
    narrow = any(isinstance(m, torch.nn.Conv2d) and m.out_channels < _MIN_CPU_CHANNELS_LAST for m in model.modules())
    return torch.contiguous_format if narrow else torch.channels_last


def _train(spec, hp, data, device, train_idx, x_valid, y_valid, batch_size, constant_error, res, report=None) -> None:
    """The training loop; fills ``res`` in place (status, objective, curves, test error); ``report``
    as in :func:`train_and_evaluate`."""
    cuda = device.type == "cuda"
    amp = cuda and spec.amp
    model = build_model(
        spec.resolved_model(),
        data.channels,
        data.n_classes,
        data.x_train.shape[-1],  # image side (== height for square images), or the signal length (cnn1d)
        hp,
        torch.Generator().manual_seed(spec.seed),
    )
    res.n_params = sum(p.numel() for p in model.parameters())
    memfmt = _memory_format(model, cuda)
    model = model.to(device=device, memory_format=memfmt)
    gen = torch.Generator(device=device).manual_seed(spec.seed + 1)
    for m in model.modules():
        if isinstance(m, Dropout):
            m.generator = gen
    opt = make_optimizer(
        hp["optimizer"],
        model,
        hp["lr"],
        hp["weight_decay"],
        momentum=hp.get("momentum"),  # present for sgdw only
        betas=(hp["beta1"], hp["beta2"]) if "beta1" in hp else None,  # present for the Adam family only
        fused=True,
    )
    n_train = train_idx.shape[0]
    steps = math.ceil(n_train / batch_size)
    sched = make_sgdr(opt, hp["T_0"], hp["T_mult"], hp["eta_min"], steps)
    params = [p for p in model.parameters()]
    ls, clip, shift = hp["label_smoothing"], hp["grad_clip"], hp["shift"]
    check_every = 1 if device.type == "cpu" else 50  # a GPU sync per check
    thr = float(spec.divergence_loss)

    for epoch in range(spec.epochs):
        model.train()
        perm = train_idx[torch.randperm(n_train, generator=gen, device=device)]
        loss_sum = torch.zeros((), device=device)
        window = torch.zeros((), device=device)
        for b in range(steps):
            idx = perm[b * batch_size : (b + 1) * batch_size]
            xb = random_shift(data.x_train[idx], shift, gen)
            xb = (xb.float() * data.scale + data.shift).contiguous(memory_format=memfmt)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                logits = model(xb)
            loss = F.cross_entropy(logits.float(), data.y_train[idx], label_smoothing=ls)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(params, clip)
            opt.step()
            if b == steps - 1:
                last_lr = float(opt.param_groups[0]["lr"])  # lr of the epoch's last batch
            sched.step()
            window += loss.detach()
            if (b + 1) % check_every == 0 or b == steps - 1:
                n_win = (b % check_every) + 1
                mean_win = float(window.item()) / n_win
                if not math.isfinite(mean_win) or mean_win > thr:
                    res.status, res.objective = ResultStatus.DIVERGED, constant_error
                    why = "non-finite" if not math.isfinite(mean_win) else f"> divergence_loss={thr:g}"
                    res.reason = (
                        f"training loss {mean_win:.3g} ({why}) at epoch {epoch + 1}, batch {b + 1}; "
                        "objective = error of the majority-class predictor"
                    )
                    return
                loss_sum += window
                window.zero_()
        valid_error = _error_count(model, x_valid, y_valid, data, device, amp, memfmt) / y_valid.shape[0]
        curves = res.curves
        curves["train_loss"].append(float(loss_sum.item()) / steps)
        curves["valid_error"].append(valid_error)
        curves["lr"].append(last_lr)
        stop = report is not None and _stops(report(epoch + 1, valid_error))  # part of the epoch if it raises
        res.epochs_run = epoch + 1
        if stop:
            res.status, res.objective, res.reason, res.stopped_at = ResultStatus.OK, valid_error, "", epoch + 1
            return
    res.status, res.objective, res.reason = ResultStatus.OK, curves["valid_error"][-1], ""
    if spec.evaluate_test and data.y_test.shape[0] > 0:
        res.test_error = _error_count(model, data.x_test, data.y_test, data, device, amp, memfmt) / int(
            data.y_test.shape[0]
        )
