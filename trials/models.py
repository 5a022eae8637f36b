"""Networks: a small CNN for 8x8 / 28x28 inputs, a ResNet-20 for 32x32 inputs, and the 1-D CNN of
MNIST-1D (Greydanus & Kobak, ICML 2024) for 40-sample signals.

Both are built on the ``meta`` device and then initialized from an explicit ``torch.Generator``
(:func:`init_parameters`), so building a model neither reads nor advances torch's global RNG.
Dropout draws from a generator too (:class:`Dropout`), which makes a seeded CPU run repeatable
without ``torch.manual_seed``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Dropout", "SmallCNN", "ResNet20", "CNN1d", "build_model", "init_parameters", "MODELS"]

MODELS = ("cnn", "resnet20", "cnn1d")


class Dropout(nn.Module):
    """Inverted dropout with probability ``p`` drawing its mask from ``self.generator``.

    ``generator`` (a ``torch.Generator`` on the input's device) is set by the trainer; with
    ``None`` the global generator is used.  Identity in eval mode or for ``p == 0``.
    """

    def __init__(self, p: float):
        super().__init__()
        if not (0.0 <= p < 1.0):
            raise ValueError(f"dropout probability must be in [0, 1), got {p!r}")
        self.p = float(p)
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = torch.empty_like(x).bernoulli_(keep, generator=self.generator)
        return x * mask * (1.0 / keep)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class SmallCNN(nn.Module):
    """conv3x3-ReLU-[pool]-dropout x3, flatten, dense-ReLU-dropout, linear.

    Input ``(N, C, H, W)``, output logits ``(N, n_classes)``.  A 2x2 max-pool follows conv ``k``
    (0-based) when ``k >= 1`` or the map is still larger than 8x8: 8x8 inputs go 8 -> 8 -> 4 -> 2,
    28x28 go 28 -> 14 -> 7 -> 3, 32x32 go 32 -> 16 -> 8 -> 4.  ``filters`` are the three conv widths,
    ``dropout`` the probabilities after each conv block, ``dropout_dense`` after the dense layer.
    """

    def __init__(
        self,
        in_channels: int,
        n_classes: int,
        image_size: int,
        filters=(16, 32, 64),
        dense_units: int = 128,
        dropout=(0.0, 0.0, 0.0),
        dropout_dense: float = 0.0,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        c, s = in_channels, image_size
        for k, (f, p) in enumerate(zip(filters, dropout)):
            layers += [nn.Conv2d(c, f, 3, padding=1), nn.ReLU(inplace=True)]
            if k >= 1 or s > 8:
                layers.append(nn.MaxPool2d(2))
                s //= 2
            if p > 0:
                layers.append(Dropout(p))
            c = f
        if s < 1:
            raise ValueError(f"image_size={image_size} is too small for SmallCNN (needs >= 4)")
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c * s * s, dense_units),
            nn.ReLU(inplace=True),
            *([Dropout(dropout_dense)] if dropout_dense > 0 else []),
            nn.Linear(dense_units, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 conv-BN projection) shortcut, He et al. 2016."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x), inplace=True)


class ResNet20(nn.Module):
    """ResNet-20 for 32x32 images (He et al. 2016, Section 4.2): 3x3 conv, three stages of 3 basic
    blocks (strides 1, 2, 2) of ``filters`` channels (16, 32, 64 in the paper), global average
    pooling, linear.  Projection (1x1 conv) shortcuts where the shape changes.  ``dropout[k]`` is
    applied after stage ``k``, ``dropout_dense`` before the linear layer.  Input ``(N, C, H, W)``,
    output ``(N, n_classes)``.
    """

    def __init__(
        self,
        in_channels: int,
        n_classes: int,
        filters=(16, 32, 64),
        dropout=(0.0, 0.0, 0.0),
        dropout_dense: float = 0.0,
        blocks_per_stage: int = 3,
    ):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, filters[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(filters[0]),
            nn.ReLU(inplace=True),
        )
        stages, c = [], filters[0]
        for k, (f, p) in enumerate(zip(filters, dropout)):
            blocks: list[nn.Module] = []
            for b in range(blocks_per_stage):
                blocks.append(BasicBlock(c, f, 2 if (k > 0 and b == 0) else 1))
                c = f
            if p > 0:
                blocks.append(Dropout(p))
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            *([Dropout(dropout_dense)] if dropout_dense > 0 else []),
            nn.Linear(c, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


def conv1d_out_len(length: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of ``nn.Conv1d`` (torch docs): ``floor((L + 2p - k) / s) + 1``."""
    return (length + 2 * padding - kernel) // stride + 1


class CNN1d(nn.Module):
    """The MNIST-1D CNN of Greydanus & Kobak ("Scaling down deep learning with MNIST-1D", ICML 2024;
    ``ConvBase`` in the authors' ``notebooks/models.py``): three ``Conv1d``-ReLU layers of kernel 5,
    3, 3, stride 2, padding 1, then a linear classifier on the flattened features.  With 40-sample
    inputs and the paper's 25 channels per layer the lengths go 40 -> 19 -> 10 -> 5 and the linear
    layer sees 125 features (5,210 parameters in all).  The paper reports 94% test accuracy for it.

    ``filters`` are the three channel counts (paper: 25, 25, 25), ``dropout[k]`` is applied after
    conv ``k`` and ``dropout_dense`` before the linear layer (both off in the paper).  Input
    ``(N, C, L)`` or ``(N, C, 1, L)`` (the trainer's image layout with height 1), output logits
    ``(N, n_classes)``.  Raises ``ValueError`` when ``length`` is too short for three stride-2 convs
    (needs ``length >= 3``).
    """

    _LAYERS = ((5, 2, 1), (3, 2, 1), (3, 2, 1))  # (kernel, stride, padding) per conv, paper's ConvBase

    def __init__(
        self,
        in_channels: int,
        n_classes: int,
        length: int,
        filters=(25, 25, 25),
        dropout=(0.0, 0.0, 0.0),
        dropout_dense=0.0,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        c, n = in_channels, length
        for (k, st, pad), f, p in zip(self._LAYERS, filters, dropout):
            n = conv1d_out_len(n, k, st, pad)
            if n < 1:
                raise ValueError(f"length={length} is too short for CNN1d's three stride-2 convolutions (needs >= 3)")
            layers += [nn.Conv1d(c, f, k, stride=st, padding=pad), nn.ReLU(inplace=True)]
            if p > 0:
                layers.append(Dropout(p))
            c = f
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(), *([Dropout(dropout_dense)] if dropout_dense > 0 else []), nn.Linear(c * n, n_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.reshape(x.shape[0], x.shape[1], -1)))  # (N, C, 1, L) -> (N, C, L)


@torch.no_grad()
def init_parameters(model: nn.Module, generator: torch.Generator, *, he_conv: bool = False) -> nn.Module:
    """(Re)initialize every Conv1d/Conv2d/Linear/BatchNorm2d of ``model`` (on CPU) from ``generator``.

    Conv/linear weights: PyTorch's default ``kaiming_uniform_(a=sqrt(5))``, i.e.
    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, or with ``he_conv`` He et al.'s
    ``kaiming_normal_(mode="fan_out")`` for conv weights (ResNet); biases ``U(-1/sqrt(fan_in),
    1/sqrt(fan_in))``; BatchNorm weight 1, bias 0, running statistics reset.  Returns ``model``.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Linear):
            if he_conv and isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=generator)
            else:
                nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
            if m.bias is not None:
                bound = 1.0 / math.sqrt(m.weight[0].numel())
                nn.init.uniform_(m.bias, -bound, bound, generator=generator)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
            m.reset_running_stats()
    return model


def build_model(
    name: str, in_channels: int, n_classes: int, image_size: int, hp: dict, generator: torch.Generator
) -> nn.Module:
    """Build model ``name`` (``"cnn"``, ``"resnet20"`` or ``"cnn1d"``) on CPU from the resolved
    hyperparameters ``hp`` (``filters1..3``, ``dropout1..3``, ``dropout_dense``, and ``dense_units``
    for the CNN), with parameters drawn from ``generator`` (a CPU ``torch.Generator``).
    ``image_size`` is the side of square images, or for ``"cnn1d"`` the signal length (the input's
    last axis).  Raises ``ValueError`` for an unknown name.
    """
    filters = (hp["filters1"], hp["filters2"], hp["filters3"])
    dropout = (hp["dropout1"], hp["dropout2"], hp["dropout3"])
    with torch.device("meta"):  # no parameter memory, no global-RNG draws
        if name == "cnn":
            model: nn.Module = SmallCNN(
                in_channels, n_classes, image_size, filters, hp["dense_units"], dropout, hp["dropout_dense"]
            )
        elif name == "resnet20":
            model = ResNet20(in_channels, n_classes, filters, dropout, hp["dropout_dense"])
        elif name == "cnn1d":
            model = CNN1d(in_channels, n_classes, image_size, filters, dropout, hp["dropout_dense"])
        else:
            raise ValueError(f"unknown model {name!r}; known: {list(MODELS)}")
    model = model.to_empty(device="cpu")
    return init_parameters(model, generator, he_conv=(name == "resnet20"))
