"""trials: score hyperparameters by training real PyTorch networks (GPU or CPU).

A trial is a plain function, ``train_and_evaluate(hparams, spec, report=None) -> TrialResult``;
this package knows nothing of Ray or of evolution strategies.  ``report(epoch, valid_error)``, if
given, is called after every epoch; returning ``False`` stops training there (multi-fidelity
schedulers such as asynchronous successive halving; ``TrialResult.stopped_at`` says where).
See ``describe_hparams()`` for the accepted hyperparameters with their units and valid ranges.
"""

from .data import DATASETS, RawData, load_dataset, split_indices
from .hparams import HPARAMS, HParam, describe_hparams, resolve_hparams
from .models import MODELS, ResNet20, SmallCNN, build_model
from .optim import SGDW, make_optimizer, weight_decay_from_norm
from .schedules import make_sgdr, sgdr_multiplier, sgdr_period, sgdr_restarts
from .train import TrialResult, TrialSpec, random_shift, train_and_evaluate

__all__ = [
    "DATASETS",
    "RawData",
    "load_dataset",
    "split_indices",
    "HPARAMS",
    "HParam",
    "describe_hparams",
    "resolve_hparams",
    "MODELS",
    "ResNet20",
    "SmallCNN",
    "build_model",
    "SGDW",
    "make_optimizer",
    "weight_decay_from_norm",
    "make_sgdr",
    "sgdr_multiplier",
    "sgdr_period",
    "sgdr_restarts",
    "TrialResult",
    "TrialSpec",
    "random_shift",
    "train_and_evaluate",
]
