"""DeepLabV3+ (ASPP + low-level decoder) over any timm ``features_only`` backbone."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import timm
import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from torch import nn

from ssvision import checkpoints
from ssvision.checkpoints import find_cached_pretrained
from ssvision.models.network import StudentNetwork
from ssvision.registry import MODELS

from .torchvision_seg import load_backbone_state

#: Stride of the low-level feature the decoder fuses (DeepLabV3+ uses stride 4).
LOW_LEVEL_STRIDE = 4
_WARNING = 30


def _conv_bn_relu(in_ch: int, out_ch: int, kernel: int = 1, dilation: int = 1) -> nn.Sequential:
    pad = dilation * (kernel - 1) // 2
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, padding=pad, dilation=dilation, bias=False),
        nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling.

    Branches: a 1x1 conv, one 3x3 conv per rate in ``rates`` (dilation = rate) and an
    image-level branch (global average pool -> 1x1 conv -> ReLU -> broadcast). The
    image-level branch has no BatchNorm: after pooling each channel holds one value
    per image, which BatchNorm cannot normalise in training with a batch of one.
    The ``len(rates) + 2`` branches are concatenated and projected by a 1x1
    conv-BN-ReLU, then dropout.

    Args:
        in_channels (int): channels of the input map.
        channels (int): channels of every branch and of the output.
        rates (Sequence[int]): dilation rates of the 3x3 branches.
        dropout (float): dropout probability after the projection.
    """

    def __init__(self, in_channels: int, channels: int, rates: Sequence[int],
                 dropout: float) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            [_conv_bn_relu(in_channels, channels)]
            + [_conv_bn_relu(in_channels, channels, 3, int(r)) for r in rates])
        self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1),
                                        nn.Conv2d(in_channels, channels, 1),
                                        nn.ReLU(inplace=True))
        self.project = nn.Sequential(_conv_bn_relu(channels * (len(rates) + 2), channels),
                                     nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in_channels, h, w)`` -> ``(N, channels, h, w)``."""
        outs = [branch(x) for branch in self.branches]
        outs.append(self.image_pool(x).expand(-1, -1, *x.shape[-2:]))
        return self.project(torch.cat(outs, dim=1))


@MODELS.register_module()
class DeepLabV3Plus(StudentNetwork):
    """DeepLabV3+ on a timm backbone (``timm.create_model(..., features_only=True)``).

    ::

        feats   = backbone(x)                    # timm feature maps, shallow to deep
        high    = ASPP(feats[-1])                # (N, aspp_channels, H/os, W/os)
        low     = conv1x1-BN-ReLU(feats[i4])     # (N, low_level_channels, H/4, W/4)
        feat    = 2 x conv3x3-BN-ReLU(cat(up(high), low))   # extract_feat: (N, D, H/4, W/4)
        logits  = up(conv1x1(feat), size)        # forward_head

    with ``D = decoder_channels``, ``i4`` the first backbone feature of stride >= 4
    (stride 4 for ResNets and most timm CNNs) and ``up`` bilinear
    (``align_corners=False``). ``feat`` is where a feature-level perturbation (DSSN's
    dropout) is applied.

    **Output stride.** ``output_stride`` (8, 16 or 32) is passed to timm, which
    replaces the strides of the last stages by dilation in the models that support
    it (ResNets, EfficientNets, MobileNets, ConvNeXts, ...). Models that do not
    accept the argument (ViTs, ...) are built with their plain strides and a warning
    is logged; :attr:`output_stride` holds the stride actually obtained.

    **Weights** (through :func:`ssvision.checkpoints.resolve`): ``checkpoint`` is a
    timm / torchvision classifier file (a path, URL, ``zoo://``, ``timm://`` or
    ``torchvision://``; ``.pth`` / ``.bin`` / ``.safetensors``; head keys dropped,
    ``backbone.*`` keys of a segmentor checkpoint accepted, a 3-channel first conv
    adapted to ``in_channels``); ``pretrained=True`` reads timm's weights from the local
    Hugging Face / torch hub cache, else downloads them as timm does (with
    ``HF_HUB_OFFLINE=1`` and no cached file: a clear error).

    Args:
        backbone (str): timm model name. Default ``'resnet18'``.
        num_classes (int): number of logits. Default 21.
        in_channels (int): image channels. Default 3.
        output_stride (int): stride of the ASPP input. Default 16.
        aspp_rates (Sequence[int]): dilations of ASPP's 3x3 branches. Default (6, 12, 18)
            (meant for output stride 16; double them for 8).
        aspp_channels (int): ASPP width. Default 128.
        low_level_channels (int): width of the projected low-level feature. Default 48.
        decoder_channels (int): width of the fused decoder feature. Default 128.
        dropout (float): dropout after the ASPP projection. Default 0.1.
        pretrained (bool): load timm's pretrained backbone weights (cache, else download).
        checkpoint (str, optional): backbone checkpoint source; wins over ``pretrained``.

    Attributes:
        num_classes (int), in_channels (int), feat_dim (int, = decoder_channels),
        output_stride (int): stride of the ASPP input actually obtained.
    """

    provides = StudentNetwork.provides | {'extract_levels', 'decode_levels'}

    def __init__(self, backbone: str = 'resnet18', num_classes: int = 21, in_channels: int = 3,
                 output_stride: int = 16, aspp_rates: Sequence[int] = (6, 12, 18),
                 aspp_channels: int = 128, low_level_channels: int = 48,
                 decoder_channels: int = 128, dropout: float = 0.1, pretrained: bool = False,
                 checkpoint: Optional[str] = None) -> None:
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise ValueError(f'output_stride must be 8, 16 or 32, got {output_stride}')
        weight_file = checkpoint
        if weight_file is None and pretrained:
            # the local caches first, then a download as timm does (HF_HUB_OFFLINE: none)
            weight_file = find_cached_pretrained(backbone) or f'timm://{backbone}'
        self.backbone_name = backbone
        self.num_classes = int(num_classes)
        self.in_channels = int(in_channels)
        self.feat_dim = int(decoder_channels)
        kwargs = dict(features_only=True, pretrained=False, in_chans=self.in_channels)
        try:
            self.backbone = timm.create_model(backbone, output_stride=output_stride, **kwargs)
        except (TypeError, AssertionError, ValueError) as err:
            print_log(f'DeepLabV3Plus: timm {backbone!r} does not take output_stride='
                      f'{output_stride} ({err}); using its plain strides', logger='current',
                      level=_WARNING)
            self.backbone = timm.create_model(backbone, **kwargs)
        reductions = list(self.backbone.feature_info.reduction())
        channels = list(self.backbone.feature_info.channels())
        self.output_stride = int(reductions[-1])
        self.low_index = next((i for i, r in enumerate(reductions) if r >= LOW_LEVEL_STRIDE),
                              0)
        self.aspp = ASPP(channels[-1], aspp_channels, aspp_rates, dropout)
        self.low_proj = _conv_bn_relu(channels[self.low_index], low_level_channels)
        self.fuse = nn.Sequential(
            _conv_bn_relu(aspp_channels + low_level_channels, decoder_channels, 3),
            _conv_bn_relu(decoder_channels, decoder_channels, 3))
        self.classifier = nn.Conv2d(decoder_channels, self.num_classes, 1)
        if weight_file is not None:
            self.load_backbone_weights(weight_file)

    def load_backbone_weights(self, path: str) -> dict[str, list[str]]:
        """Load a local weight file into the backbone; see ``load_backbone_state``."""
        self.backbone_load_report = load_backbone_state(
            self.backbone, checkpoints.load_state_dict(path), path)
        return self.backbone_load_report

    def extract_feat(self, x: torch.Tensor) -> torch.Tensor:
        """Fused decoder feature before the classifier.

        Args:
            x: ``(N, in_channels, H, W)`` float images.

        Returns:
            ``(N, decoder_channels, H/4, W/4)`` (rounded up by the backbone's padding).
        """
        return self.fuse_levels(*self.extract_levels(x))

    def extract_levels(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The backbone's two features the decoder reads: ``(low, high)``, the stride-4
        map ``(N, C_low, H/4, W/4)`` and the deepest ``(N, C_high, H/os, W/os)``, before
        ASPP and the low-level projection (where DSSN perturbs them)."""
        feats = self.backbone(x)
        return feats[self.low_index], feats[-1]

    def fuse_levels(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        """The decoder up to the fused feature: :meth:`extract_feat` of the levels."""
        low = self.low_proj(low)
        high = F.interpolate(self.aspp(high), size=low.shape[-2:], mode='bilinear',
                             align_corners=False)
        return self.fuse(torch.cat([high, low], dim=1))

    def decode_levels(self, low: torch.Tensor, high: torch.Tensor,
                      out_size: tuple[int, int]) -> torch.Tensor:
        """Logits ``(N, num_classes, *out_size)`` from the two levels."""
        return self.forward_head(self.fuse_levels(low, high), out_size)

    def forward_head(self, feat: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """``(N, decoder_channels, h, w)`` -> ``(N, num_classes, *size)`` logits."""
        return F.interpolate(self.classifier(feat), size=tuple(size), mode='bilinear',
                             align_corners=False)
