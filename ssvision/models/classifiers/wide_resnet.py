"""CIFAR-style Wide ResNet (Zagoruyko & Komodakis, 2016) as configured by FixMatch."""

from __future__ import annotations

import torch
from torch import nn

from ssvision.registry import MODELS

from .base import PooledClassifier


class _PreActBlock(nn.Module):
    """Pre-activation basic block: ``BN-act-conv3x3-BN-act-(dropout)-conv3x3`` + shortcut.

    When the shape changes (channels or stride) the shortcut is a 1x1 convolution.
    It reads the pre-activated input when ``activate_shortcut`` is set (FixMatch does
    this for the first block of the network only), else the raw input.

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels.
        stride (int): stride of the first convolution (and of the shortcut).
        drop_rate (float): dropout probability between the two convolutions.
        bn_momentum (float): PyTorch BN momentum (weight of the new batch statistic).
        leaky_slope (float): negative slope of the leaky ReLUs.
        activate_shortcut (bool): feed the pre-activated input to the projection shortcut.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, drop_rate: float,
                 bn_momentum: float, leaky_slope: float, activate_shortcut: bool) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels, momentum=bn_momentum)
        self.act1 = nn.LeakyReLU(leaky_slope, inplace=False)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels, momentum=bn_momentum)
        self.act2 = nn.LeakyReLU(leaky_slope, inplace=True)
        self.dropout = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.needs_projection = in_channels != out_channels or stride != 1
        self.shortcut = (nn.Conv2d(in_channels, out_channels, 1, stride, 0, bias=False)
                         if self.needs_projection else None)
        self.activate_shortcut = activate_shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.act1(self.bn1(x))
        out = self.conv2(self.dropout(self.act2(self.bn2(self.conv1(pre)))))
        if self.shortcut is None:
            return x + out
        return self.shortcut(pre if self.activate_shortcut else x) + out


@MODELS.register_module()
class WideResNet(PooledClassifier):
    """WRN-depth-k for 32x32 images (WRN-28-2: about 1.47M parameters with 10 classes).

    A 3x3 stem convolution (16 channels) is followed by three groups of
    ``n = (depth - 4) / 6`` pre-activation basic blocks with ``16k, 32k, 64k``
    channels and strides ``1, 2, 2``, a final BN + leaky ReLU, global average pooling
    and a linear head (``k = widen_factor``).

    Args:
        num_classes (int): number of logits. Default 10.
        depth (int): network depth; ``(depth - 4) % 6`` must be 0. Default 28.
        widen_factor (int): channel multiplier ``k``. Default 2.
        in_channels (int): image channels. Default 3.
        drop_rate (float): dropout probability inside each block (between the two
            convolutions). Default 0.0.
        bn_momentum (float): momentum of every BatchNorm **in PyTorch's convention**:
            ``running = (1 - momentum) * running + momentum * batch``. The default
            0.001 therefore keeps 99.9% of the running statistic per step, i.e. the
            TensorFlow / FixMatch decay of 0.999 (very slow EMA of the statistics).
        leaky_slope (float): negative slope of the leaky ReLUs. Default 0.1.

    Attributes:
        num_classes (int): number of logits.
        feat_dim (int): ``64 * widen_factor``.
    """

    def __init__(self, num_classes: int = 10, depth: int = 28, widen_factor: int = 2,
                 in_channels: int = 3, drop_rate: float = 0.0, bn_momentum: float = 0.001,
                 leaky_slope: float = 0.1) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6 != 0:
            raise ValueError(
                f'WideResNet depth must satisfy (depth - 4) % 6 == 0 with depth >= 10 '
                f'(e.g. 10, 16, 22, 28, 40), got depth={depth}')
        if widen_factor < 1 or num_classes < 1 or in_channels < 1:
            raise ValueError('widen_factor, num_classes and in_channels must be positive')
        if not 0.0 <= drop_rate < 1.0:
            raise ValueError(f'drop_rate must be in [0, 1), got {drop_rate}')
        n = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.num_classes = int(num_classes)
        self.in_channels = int(in_channels)
        self.depth = int(depth)
        self.widen_factor = int(widen_factor)
        self.feat_dim = widths[-1]

        self.stem = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        groups = []
        for g, stride in enumerate((1, 2, 2)):
            blocks = []
            for i in range(n):
                blocks.append(_PreActBlock(
                    widths[g] if i == 0 else widths[g + 1], widths[g + 1],
                    stride if i == 0 else 1, drop_rate, bn_momentum, leaky_slope,
                    activate_shortcut=(g == 0 and i == 0)))
            groups.append(nn.Sequential(*blocks))
        self.groups = nn.ModuleList(groups)
        self.bn_out = nn.BatchNorm2d(widths[-1], momentum=bn_momentum)
        self.act_out = nn.LeakyReLU(leaky_slope, inplace=True)
        self.dropout = nn.Identity()  # FixMatch's WRN has no dropout before its head
        self.head = nn.Linear(self.feat_dim, num_classes)
        self._init_weights(a=leaky_slope, nonlinearity='leaky_relu')

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps after each of the three groups.

        Args:
            x: ``(N, in_channels, H, W)`` float images (H = W = 32 for CIFAR).

        Returns:
            ``[(N, 16k, H, W), (N, 32k, H/2, W/2), (N, 64k, H/4, W/4)]``. The first two
            are raw residual streams (pre-activation, as the next block reads them);
            the last has the final BN + leaky ReLU applied and is the map that
            :meth:`extract_feat` averages.
        """
        x = self.stem(x)
        outs = []
        for group in self.groups:
            x = group(x)
            outs.append(x)
        outs[-1] = self.act_out(self.bn_out(outs[-1]))
        return outs
