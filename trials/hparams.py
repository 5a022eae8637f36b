"""The hyperparameters a trial accepts: names, units, valid ranges, defaults, and their validation.

``HPARAMS`` is the registry (name -> :class:`HParam`).  :func:`resolve_hparams` turns a user dict
(plus ``TrialSpec.fixed``) into the complete, canonical dict a trial trains with, or raises
``ValueError`` before anything is trained.

Conventions (each also in the entry's ``doc``):

* ``weight_decay`` is the decoupled decay factor lambda of Loshchilov & Hutter (arXiv 1711.05101,
  Algorithms 1 and 2): every step does ``theta <- theta - eta_t * lambda * theta`` with ``eta_t`` the SGDR
  schedule multiplier in [eta_min, 1]; it is *not* multiplied by the learning rate.  (torch's
  ``AdamW`` multiplies its ``weight_decay`` by the current lr, so :mod:`trials.optim` passes
  ``lambda / lr`` to it; the product is then exactly ``eta_t * lambda``.)
* ``weight_decay_norm`` is the paper's normalized weight decay (Appendix B.1):
  ``lambda = lambda_norm * sqrt(b / (B * T))`` with batch size ``b``, training-set size ``B`` and
  epochs ``T``.  Give at most one of ``weight_decay`` and ``weight_decay_norm``.
* Momentum-like coefficients close to 1 are best tuned on a log scale of ``1 - beta``:
  ``log10_one_minus_beta1 = x`` means ``beta1 = 1 - 10**x`` (so ``x = -1`` is 0.9, ``x = -3`` is
  0.999); likewise ``log10_one_minus_beta2`` and ``log10_one_minus_momentum``.  Give either the
  plain or the log form of a coefficient, not both.
* ``optimizer`` is categorical, one of :data:`OPTIMIZERS` (``adamw``, ``sgdw``, ``radam``,
  ``nadam``, ``amsgrad``; all with decoupled weight decay, see :mod:`trials.optim`).  Not given, it
  is ``TrialSpec.optimizer``; given (tuned or in ``spec.fixed``), it overrides the spec.
* Optimizer-specific coefficients: ``momentum`` (and its log form) applies to ``sgdw`` only,
  ``beta1``/``beta2`` (and their log forms) to the Adam family (``adamw``, ``radam``, ``nadam``,
  ``amsgrad``) only.  When the optimizer is fixed (``TrialSpec.optimizer``), giving one that does
  not apply is a ``ValueError``: nothing would be tuned.  When ``optimizer`` itself is among the
  hyperparameters, an inapplicable one is *ignored* and listed by :func:`ignored_hparams` (and in
  ``TrialResult.ignored_hparams``): a search space over the optimizer choice and betas is a
  conditional space whose every candidate carries all coordinates, so an error there would reject
  every ``sgdw`` candidate, and dropping the value silently would hide which coordinates the
  objective actually saw.
* Integer hyperparameters (``filters*``, ``dense_units``, ``log2_batch_size``, ``shift``) accept
  ints or integral floats (``3.0``); a non-integral value (``3.5``) is a ``ValueError``: round it in
  the search space.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

__all__ = ["HParam", "HPARAMS", "OPTIMIZERS", "resolve_hparams", "ignored_hparams", "describe_hparams"]

OPTIMIZERS = ("adamw", "sgdw", "radam", "nadam", "amsgrad")  # trials.optim.make_optimizer's names
_ADAM_FAMILY = ("adamw", "radam", "nadam", "amsgrad")  # the optimizers with betas


@dataclass(frozen=True)
class HParam:
    """One hyperparameter: its unit, closed/open valid range, default and meaning.

    ``low``/``high`` are the bounds; ``low_open``/``high_open`` make them strict.  ``default`` is a
    number, ``None`` (feature off / taken from the spec, see ``doc``), or a dict keyed by optimizer
    name.  ``applies_to`` lists the optimizers or models the name is meaningful for (empty = all);
    giving it for another one raises ``ValueError`` rather than silently tuning nothing.  ``alias_of``
    names the canonical hyperparameter a log-form alias sets.  ``scale`` is a hint for search spaces
    (``"log10"`` or ``"linear"``, the scale names of ``cluster.space.Param``).
    """

    name: str  # the key in the hparams dict
    unit: str  # what one unit of the value is
    low: float  # lower bound of the valid range
    high: float  # upper bound of the valid range
    default: Any  # value used when not given (number, None, or {optimizer: value})
    doc: str  # one-line meaning
    integer: bool = False  # value must be integral
    low_open: bool = False  # low itself is invalid
    high_open: bool = False  # high itself is invalid
    applies_to: tuple[str, ...] = ()  # optimizers/models it applies to; () = all
    alias_of: str | None = None  # canonical name set by this log-form alias
    scale: str = "linear"  # suggested search scale: "linear" or "log10" (the names of cluster.space.Param)
    choices: tuple = ()  # categorical: the allowed values (low/high unused); () = numeric

    def range_text(self) -> str:
        """The valid range in interval notation, e.g. ``(0, 100]``; a categorical's choices as a set,
        e.g. ``{adamw, sgdw}``."""
        if self.choices:
            return "{" + ", ".join(str(c) for c in self.choices) + "}"
        lo = "(" if self.low_open else "["
        hi = ")" if self.high_open else "]"
        return f"{lo}{self.low:g}, {self.high:g}{hi}"

    def check(self, value: Any) -> float | int:
        """Return ``value`` as a float (or int for integer ones); ``ValueError`` when it is not a
        finite real number inside the valid range (or not integral for an integer one).  A
        categorical returns ``value`` itself when it is one of ``choices``, else ``ValueError``
        listing them."""
        if self.choices:
            if isinstance(value, bool) or value not in self.choices:
                raise ValueError(f"hyperparameter {self.name!r}={value!r} is not one of {list(self.choices)}")
            return value
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"hyperparameter {self.name!r} must be a real number, got {value!r}")
        v = float(value)
        if not math.isfinite(v):
            raise ValueError(f"hyperparameter {self.name!r} must be finite, got {value!r}")
        too_low = v <= self.low if self.low_open else v < self.low
        too_high = v >= self.high if self.high_open else v > self.high
        if too_low or too_high:
            raise ValueError(
                f"hyperparameter {self.name!r}={value!r} is outside its valid range {self.range_text()} "
                f"({self.unit}); fix the value or the search-space bounds"
            )
        if self.integer:
            if v != round(v):
                raise ValueError(
                    f"hyperparameter {self.name!r} must be an integer, got {value!r}; round it in the search space"
                )
            return int(round(v))
        return v


_H = [
    HParam(
        name="optimizer",
        unit="name of the inner optimizer",
        low=0.0,
        high=0.0,
        default=None,
        doc="adamw, sgdw, radam, nadam or amsgrad, all with decoupled weight decay; default (None) = spec.optimizer",
        choices=OPTIMIZERS,
    ),
    HParam(
        name="lr",
        unit="learning rate at schedule multiplier 1 (peak of each SGDR period)",
        low=0.0,
        high=100.0,
        default={"cnn1d": 0.01, "adamw": 0.004, "sgdw": 0.05, "radam": 0.004, "nadam": 0.004, "amsgrad": 0.004},
        doc="peak learning rate alpha; lr at fractional epoch t is alpha * eta_t",
        low_open=True,
        scale="log10",
    ),
    HParam(
        name="weight_decay",
        unit="fraction of each weight removed per step at multiplier 1",
        low=0.0,
        high=1.0,
        default=0.0005,
        doc="decoupled decay: theta -= eta_t*lambda*theta per step, no lr factor; conv/linear weights",
        high_open=True,
        scale="log10",
    ),
    HParam(
        name="weight_decay_norm",
        unit="dimensionless",
        low=0.0,
        high=100.0,
        default=None,
        doc="normalized weight decay, sets lambda = value*sqrt(batch_size/(n_train*epochs))",
        scale="log10",
    ),
    HParam(
        name="T_0",
        unit="epochs (may be fractional)",
        low=0.0,
        high=10000.0,
        default=None,
        doc="length of the first SGDR period; default (None) = spec.epochs: one cosine decay, no restart",
        low_open=True,
        scale="log10",
    ),
    HParam(
        name="T_mult",
        unit="dimensionless factor",
        low=1.0,
        high=10.0,
        default=1.0,
        doc="each SGDR period is T_mult times longer than the previous one (may be fractional)",
    ),
    HParam(
        name="eta_min",
        unit="fraction of lr",
        low=0.0,
        high=1.0,
        default=0.0,
        doc="schedule multiplier at the end of each period (lr falls to eta_min*lr)",
    ),
    HParam(
        name="momentum",
        unit="dimensionless",
        low=0.0,
        high=1.0,
        default=0.9,
        doc="SGDW momentum beta (Algorithm 1 of 1711.05101)",
        high_open=True,
        applies_to=("sgdw",),
    ),
    HParam(
        name="beta1",
        unit="dimensionless",
        low=0.0,
        high=1.0,
        default=0.9,
        doc="first-moment decay of the Adam family (adamw, radam, nadam, amsgrad)",
        high_open=True,
        applies_to=_ADAM_FAMILY,
    ),
    HParam(
        name="beta2",
        unit="dimensionless",
        low=0.0,
        high=1.0,
        default=0.999,
        doc="second-moment decay of the Adam family (adamw, radam, nadam, amsgrad)",
        high_open=True,
        applies_to=_ADAM_FAMILY,
    ),
    HParam(
        name="log10_one_minus_momentum",
        unit="log10 of (1 - momentum)",
        low=-6.0,
        high=0.0,
        default=None,
        doc="sets momentum = 1 - 10**value",
        applies_to=("sgdw",),
        alias_of="momentum",
    ),
    HParam(
        name="log10_one_minus_beta1",
        unit="log10 of (1 - beta1)",
        low=-6.0,
        high=0.0,
        default=None,
        doc="sets beta1 = 1 - 10**value (-1 is 0.9)",
        applies_to=_ADAM_FAMILY,
        alias_of="beta1",
    ),
    HParam(
        name="log10_one_minus_beta2",
        unit="log10 of (1 - beta2)",
        low=-6.0,
        high=0.0,
        default=None,
        doc="sets beta2 = 1 - 10**value (-3 is 0.999)",
        applies_to=_ADAM_FAMILY,
        alias_of="beta2",
    ),
    HParam(
        name="filters1",
        unit="channels",
        low=1,
        high=512,
        default={"cnn": 16, "resnet20": 16, "cnn1d": 25},
        doc="output channels of conv layer 1 (CNN, 1-D CNN) / of stage 1 (ResNet-20)",
        integer=True,
        scale="log10",
    ),
    HParam(
        name="filters2",
        unit="channels",
        low=1,
        high=512,
        default={"cnn": 32, "resnet20": 32, "cnn1d": 25},
        doc="output channels of conv layer 2 (CNN, 1-D CNN) / of stage 2 (ResNet-20)",
        integer=True,
        scale="log10",
    ),
    HParam(
        name="filters3",
        unit="channels",
        low=1,
        high=512,
        default={"cnn": 64, "resnet20": 64, "cnn1d": 25},
        doc="output channels of conv layer 3 (CNN, 1-D CNN) / of stage 3 (ResNet-20)",
        integer=True,
        scale="log10",
    ),
    HParam(
        name="dense_units",
        unit="units",
        low=1,
        high=4096,
        default=128,
        doc="width of the CNN's hidden dense layer",
        integer=True,
        applies_to=("cnn",),
        scale="log10",
    ),
    HParam(
        name="dropout1",
        unit="probability",
        low=0.0,
        high=1.0,
        default=0.0,
        doc="dropout after conv layer / stage 1",
        high_open=True,
    ),
    HParam(
        name="dropout2",
        unit="probability",
        low=0.0,
        high=1.0,
        default=0.0,
        doc="dropout after conv layer / stage 2",
        high_open=True,
    ),
    HParam(
        name="dropout3",
        unit="probability",
        low=0.0,
        high=1.0,
        default=0.0,
        doc="dropout after conv layer / stage 3",
        high_open=True,
    ),
    HParam(
        name="dropout_dense",
        unit="probability",
        low=0.0,
        high=1.0,
        default=0.0,
        doc="dropout before the output layer",
        high_open=True,
    ),
    HParam(
        name="log2_batch_size",
        unit="log2 of images per batch",
        low=0,
        high=14,
        default=None,
        doc="batch size = 2**value; default (None) = spec.batch_size",
        integer=True,
    ),
    HParam(
        name="label_smoothing",
        unit="probability mass",
        low=0.0,
        high=1.0,
        default=0.0,
        doc="label smoothing of the cross-entropy loss (torch's label_smoothing)",
        high_open=True,
    ),
    HParam(
        name="shift",
        unit="pixels",
        low=0,
        high=8,
        default=0,
        doc="augmentation: random translation of each training image by up to +-shift pixels per axis "
        "(zero fill); must be smaller than the image side",
        integer=True,
    ),
    HParam(
        name="grad_clip",
        unit="L2 norm of the full gradient",
        low=0.0,
        high=1000000.0,
        default=None,
        doc="clip the gradient's global L2 norm to this value before each step; default (None) = off",
        low_open=True,
        scale="log10",
    ),
]
HPARAMS: dict[str, HParam] = {h.name: h for h in _H}


def _default(h: HParam, optimizer: str, model: str) -> Any:
    """``h.default``, or for a dict default its entry for ``model`` if it has one, else for ``optimizer``
    (so ``lr`` is 0.01 on ``cnn1d``, the Adam lr of the MNIST-1D paper's CNN, whatever the optimizer)."""
    if not isinstance(h.default, dict):
        return h.default
    return h.default[model] if model in h.default else h.default[optimizer]


def _merged(hparams: dict | None, fixed: dict | None) -> dict:
    """``{**fixed, **hparams}`` after checking the keys (strings, known, not in both)."""
    hparams = dict(hparams or {})
    fixed = dict(fixed or {})
    for what, d in (("hparams", hparams), ("spec.fixed", fixed)):
        if not all(isinstance(k, str) for k in d):
            raise ValueError(f"{what} keys must be strings, got {list(d)!r}")
        unknown = sorted(set(d) - set(HPARAMS))
        if unknown:
            raise ValueError(f"unknown hyperparameter(s) {unknown} in {what}; known: {sorted(HPARAMS)}")
    both = sorted(set(hparams) & set(fixed))
    if both:
        raise ValueError(f"hyperparameter(s) {both} are both tuned (hparams) and fixed (spec.fixed); keep one")
    return {**fixed, **hparams}


def _optimizer_of(given: dict, optimizer: str) -> tuple[str, bool]:
    """(optimizer name in effect, whether it came from the hyperparameters rather than the spec)."""
    if "optimizer" in given:
        return HPARAMS["optimizer"].check(given["optimizer"]), True
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choices: {list(OPTIMIZERS)}")
    return optimizer, False


def _ignored(h: HParam, optimizer: str, tuned: bool) -> bool:
    """An optimizer-specific name that does not apply to ``optimizer``, while the optimizer is tuned."""
    return tuned and bool(h.applies_to) and set(h.applies_to) <= set(OPTIMIZERS) and optimizer not in h.applies_to


def _applies(h: HParam, optimizer: str, model: str) -> bool:
    return not h.applies_to or optimizer in h.applies_to or model in h.applies_to


def ignored_hparams(hparams: dict | None, fixed: dict | None, optimizer: str, model: str) -> dict:
    """The given hyperparameters that :func:`resolve_hparams` ignores: ``{name: value as given}``.

    Non-empty only when ``optimizer`` is among ``hparams``/``fixed`` (the optimizer is tuned) and
    some optimizer-specific name does not apply to the chosen one, e.g. ``beta1`` with
    ``optimizer="sgdw"`` or ``momentum`` with ``"nadam"`` (see the module doc for why these are
    ignored rather than errors).  Arguments and errors as for :func:`resolve_hparams`.
    """
    given = _merged(hparams, fixed)
    opt, tuned = _optimizer_of(given, optimizer)
    return {n: v for n, v in given.items() if _ignored(HPARAMS[n], opt, tuned)}


def _canonical(name: str, value: Any, given: dict, optimizer: str, model: str, out: dict) -> None:
    """Check one given hyperparameter and write its canonical form into ``out``."""
    h = HPARAMS[name]
    if not _applies(h, optimizer, model):
        raise ValueError(
            f"hyperparameter {name!r} applies to {list(h.applies_to)} only, not to "
            f"optimizer={optimizer!r} / model={model!r}; remove it or change the spec"
        )
    v = h.check(value)
    if h.alias_of is not None:
        if h.alias_of in given:
            raise ValueError(f"give either {h.alias_of!r} or {name!r}, not both")
        out[h.alias_of] = 1.0 - 10.0**v
    else:
        out[name] = v


def resolve_hparams(hparams: dict | None, fixed: dict | None, optimizer: str, model: str) -> dict:
    """Merge ``hparams`` and ``fixed`` and return the complete canonical hyperparameter dict.

    Parameters: ``hparams`` and ``fixed`` map names of ``HPARAMS`` to values (a name may be in
    only one of them); ``optimizer`` is ``TrialSpec.optimizer`` (one of :data:`OPTIMIZERS`), used
    unless ``optimizer`` is among the hyperparameters; ``model`` the resolved model name
    (``"cnn"``, ``"resnet20"`` or ``"cnn1d"``).

    Returns a dict with ``"optimizer"`` (the one in effect) and every canonical name that applies
    to that optimizer/``model`` (aliases converted, e.g. ``beta1 = 1 - 10**log10_one_minus_beta1``;
    defaults filled, per optimizer or model where ``HParam.default`` is a dict) and the values that
    depend on the spec or the data left as ``None``: ``T_0``, ``log2_batch_size``, ``grad_clip``
    (off), and exactly one of ``weight_decay``/``weight_decay_norm`` (the other ``None``).
    Optimizer-specific names that do not apply while the optimizer is tuned are range-checked and
    then left out (:func:`ignored_hparams` lists them).

    Raises ``ValueError``: unknown name (listing the known ones), name in both dicts, an unknown
    optimizer (listing the choices), a name that does not apply to the model or to a fixed
    optimizer, both plain and log form of a coefficient, both ``weight_decay`` and
    ``weight_decay_norm``, or a value outside the valid range.
    """
    given = _merged(hparams, fixed)
    opt, tuned = _optimizer_of(given, optimizer)
    out: dict[str, Any] = {"optimizer": opt}
    for name, value in given.items():
        if name == "optimizer":
            continue
        if _ignored(HPARAMS[name], opt, tuned):
            HPARAMS[name].check(value)  # still a valid value: a search-space bound outside the range is a bug
            continue
        _canonical(name, value, given, opt, model, out)
    if out.get("weight_decay") is not None and out.get("weight_decay_norm") is not None:
        raise ValueError("give either 'weight_decay' or 'weight_decay_norm', not both")
    for name, h in HPARAMS.items():
        if h.alias_of is None and name not in out and _applies(h, opt, model):
            out[name] = _default(h, opt, model)
    if out["weight_decay_norm"] is not None:
        out["weight_decay"] = None
    return out


def describe_hparams() -> str:
    """A Markdown table of ``HPARAMS`` (name, unit, valid range, default, scope, search scale, meaning).

    A categorical entry (``optimizer``) shows its choices as a set with ``(choice)`` and the scale
    ``categorical``; a dict default shows its per-model / per-optimizer values."""
    rows = [
        "| name | unit | valid range | default | applies to | scale | meaning |",
        "|---|---|---|---|---|---|---|",
    ]
    for h in HPARAMS.values():
        kind = " (int)" if h.integer else " (choice)" if h.choices else ""
        rows.append(
            f"| `{h.name}` | {h.unit} | {h.range_text()}{kind} | {h.default} | "
            f"{', '.join(h.applies_to) or 'all'} | {'categorical' if h.choices else h.scale} | {h.doc} |"
        )
    return "\n".join(rows)
