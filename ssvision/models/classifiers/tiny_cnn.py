"""A small CNN for 28x28 gray images (MNIST-like data); fast enough for CPU runs."""

from __future__ import annotations

import torch
from torch import nn

from ssvision.registry import MODELS

from .base import PooledClassifier


def _conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True))


@MODELS.register_module()
class TinyCNN(PooledClassifier):
    """Three conv-BN-ReLU stages, global average pooling and a linear head.

    Stage layout for an ``(N, in_channels, 28, 28)`` input (``w = width``):

    ====== ======================== ==========================
    stage  layers                   output
    ====== ======================== ==========================
    1      conv-BN-ReLU, maxpool 2  ``(N, w, 14, 14)``
    2      conv-BN-ReLU, maxpool 2  ``(N, 2w, 7, 7)``
    3      conv-BN-ReLU             ``(N, 4w, 7, 7)``
    ====== ======================== ==========================

    Other input sizes work too (spatial size ``H // 4``, ``W // 4`` after stage 2).

    Args:
        num_classes (int): number of logits. Default 10.
        in_channels (int): image channels. Default 1.
        width (int): channels of the first stage; stages use ``w, 2w, 4w``. Default 32.
        dropout (float): dropout probability on the pooled features, before the
            head. Default 0.0.

    Attributes:
        num_classes (int): number of logits.
        feat_dim (int): ``4 * width``, the size of the pooled feature.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 32,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if num_classes < 1 or in_channels < 1 or width < 1:
            raise ValueError('num_classes, in_channels and width must be positive, got '
                             f'{num_classes}, {in_channels}, {width}')
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f'dropout must be in [0, 1), got {dropout}')
        self.num_classes = int(num_classes)
        self.in_channels = int(in_channels)
        self.feat_dim = 4 * int(width)
        self.stages = nn.ModuleList([
            nn.Sequential(_conv_bn_relu(in_channels, width), nn.MaxPool2d(2)),
            nn.Sequential(_conv_bn_relu(width, 2 * width), nn.MaxPool2d(2)),
            _conv_bn_relu(2 * width, 4 * width),
        ])
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(self.feat_dim, num_classes)
        self._init_weights()

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps after each stage.

        Args:
            x: ``(N, in_channels, H, W)`` float images.

        Returns:
            ``[(N, w, H/2, W/2), (N, 2w, H/4, W/4), (N, 4w, H/4, W/4)]``; the last
            map is the one :meth:`extract_feat` averages.
        """
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs
