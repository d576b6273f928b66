"""torchvision's segmentation networks as ssvision segmentors (offline weights only)."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import segmentation as tv_seg

from ssvision import checkpoints
from ssvision.checkpoints import LoadReport, adapt_first_conv
from ssvision.models.network import StudentNetwork
from ssvision.registry import MODELS

#: Builders wrapped by :class:`TorchvisionSegmentor`.
ARCHS = {
    'deeplabv3_mobilenet_v3_large': tv_seg.deeplabv3_mobilenet_v3_large,
    'deeplabv3_resnet50': tv_seg.deeplabv3_resnet50,
    'lraspp_mobilenet_v3_large': tv_seg.lraspp_mobilenet_v3_large,
}
#: Key prefixes of whole-model checkpoints that hold a backbone under a wrapper name
#: (ssvision / torchvision segmentors, torchvision MobileNetV3 classifiers).
_WRAPPER_PREFIXES = ('backbone.', 'features.')
#: Key prefixes of classification heads, dropped without a warning.
_HEAD_PREFIXES = ('fc.', 'head.', 'classifier.')


def _candidates(key: str) -> list[str]:
    """Names a checkpoint key may have in a backbone: itself, without a wrapper
    prefix, and with its leading dots turned into ``_`` (timm ``FeatureListNet``
    flattens top-level module names, ``stem.0.weight`` -> ``stem_0.weight``)."""
    out = [key]
    for prefix in _WRAPPER_PREFIXES:
        if key.startswith(prefix):
            out.append(key[len(prefix):])
    for base in list(out):
        for n in range(1, base.count('.')):
            out.append(base.replace('.', '_', n))
    return out


def load_backbone_state(backbone: nn.Module, state: dict[str, torch.Tensor],
                        source: str = 'state dict') -> LoadReport:
    """Load the matching part of ``state`` into ``backbone`` (non-strict, logged).

    Each checkpoint key is matched to the first backbone key among
    :func:`_candidates`; a checkpoint with ``backbone.*`` keys (a whole segmentor)
    contributes only those. A 4-d weight whose input channels differ (a 3-channel
    first conv for a gray backbone, or a gray one for RGB) is adapted
    (:func:`~ssvision.checkpoints.adapt_first_conv`);
    any other shape mismatch is an error.

    Args:
        backbone: the module to fill.
        state: the checkpoint's tensors.
        source: name of the checkpoint in messages.

    Returns:
        The logged :class:`~ssvision.checkpoints.LoadReport` (classifier-head keys of
        the checkpoint count as ``reinitialized``: the segmentor has its own head).

    Raises:
        RuntimeError: a tensor has a shape the backbone cannot take, or nothing matched.
    """
    if any(k.startswith('backbone.') for k in state):
        state = {k: v for k, v in state.items() if k.startswith('backbone.')}
    own = backbone.state_dict()
    loaded: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    head: list[str] = []
    for key, value in state.items():
        target = next((c for c in _candidates(key) if c in own), None)
        if target is None:
            (head if key.startswith(_HEAD_PREFIXES) else unexpected).append(key)
            continue
        expected = own[target].shape
        if value.shape != expected:
            if value.ndim == 4 and value.shape[0] == expected[0] \
                    and value.shape[2:] == expected[2:]:
                value = adapt_first_conv(value, expected[1])
            else:
                raise RuntimeError(f'{source}: {key} has shape {tuple(value.shape)} but the '
                                   f'backbone expects {tuple(expected)} ({target})')
        loaded[target] = value
    report = LoadReport(source, f'the {type(backbone).__name__} backbone',
                        loaded=list(loaded), reinitialized=head,
                        missing=[k for k in own if k not in loaded],
                        unexpected=unexpected).check()
    backbone.load_state_dict(loaded, strict=False)
    return report.log()


@MODELS.register_module()
class TorchvisionSegmentor(StudentNetwork):
    """A ``torchvision.models.segmentation`` network split into features and head.

    Built with ``weights=None, weights_backbone=None``: nothing is ever downloaded.
    ``backbone_checkpoint`` loads a local file (``torch.load(weights_only=True)`` or
    safetensors) into the backbone: a torchvision ResNet-50 / MobileNetV3-Large
    classifier checkpoint (its ``features.`` prefix is stripped, ``fc`` /
    ``classifier`` keys are dropped) or a segmentor checkpoint (``backbone.*`` keys).

    What :meth:`extract_feat` returns (the map a feature-level perturbation such as
    DSSN's dropout acts on):

    * DeepLabV3 (``deeplabv3_*``): the backbone's ``'out'`` map ``(N, D, H/s, W/s)``
      (D = 960 at s = 16 for MobileNetV3, 2048 at s = 8 for ResNet-50); the head is
      the whole ``DeepLabHead`` (ASPP + classifier).
    * LR-ASPP (``lraspp_mobilenet_v3_large``): its head needs two backbone maps, so
      the feature is the decoder's input after fusion,
      ``cat([low, up(cbr(high) * scale(high))], dim=1)`` of shape
      ``(N, 40 + 128, H/8, W/8)``; :meth:`forward_head` applies the two 1x1
      classifiers to the two channel groups and adds them. This equals torchvision's
      own forward exactly, and a perturbation reaches both levels.

    Args:
        arch (str): one of :data:`ARCHS`. Default ``'deeplabv3_mobilenet_v3_large'``.
        num_classes (int): number of logits. Default 21.
        weights: must stay ``None`` (pretrained segmentation weights would download).
        backbone_checkpoint (str, optional): local weight file for the backbone.
        aux_loss (bool): build DeepLabV3's auxiliary FCN head (read it with
            :meth:`forward_with_aux`; :meth:`forward` returns the main logits only).
            Not available for LR-ASPP. Default False.

    Attributes:
        num_classes (int), in_channels (int, always 3), feat_dim (int): channels of
        :meth:`extract_feat`'s output.
    """

    in_channels: int = 3

    def __init__(self, arch: str = 'deeplabv3_mobilenet_v3_large', num_classes: int = 21,
                 weights: None = None, backbone_checkpoint: Optional[str] = None,
                 aux_loss: bool = False) -> None:
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f'arch must be one of {sorted(ARCHS)}, got {arch!r}')
        if weights is not None:
            raise ValueError('TorchvisionSegmentor never downloads weights: keep weights=None '
                             'and pass a local backbone_checkpoint (or load a full checkpoint '
                             'with mmengine load_from)')
        self.arch = arch
        self.num_classes = int(num_classes)
        self.is_lraspp = arch.startswith('lraspp')
        if self.is_lraspp and aux_loss:
            raise ValueError('LR-ASPP has no auxiliary head (aux_loss must be False)')
        kwargs = {} if self.is_lraspp else dict(aux_loss=aux_loss)
        net = ARCHS[arch](weights=None, weights_backbone=None, num_classes=self.num_classes,
                          **kwargs)
        self.backbone = net.backbone
        self.classifier = net.classifier
        self.aux_classifier = None if self.is_lraspp else net.aux_classifier
        if self.is_lraspp:
            head = self.classifier
            self.feat_dim = int(head.low_classifier.in_channels
                                + head.high_classifier.in_channels)
            self._low_channels = int(head.low_classifier.in_channels)
        else:
            self.feat_dim = int(self.classifier[0].convs[0][0].in_channels)
        if backbone_checkpoint is not None:
            self.backbone_load_report = load_backbone_state(
                self.backbone, checkpoints.load_state_dict(backbone_checkpoint),
                backbone_checkpoint)

    def extract_feat(self, x: torch.Tensor) -> torch.Tensor:
        """Decoder input map.

        Args:
            x: ``(N, 3, H, W)`` float images.

        Returns:
            ``(N, feat_dim, h, w)``, see the class docstring for each architecture.
        """
        feats = self.backbone(x)
        if not self.is_lraspp:
            return feats['out']
        head, low, high = self.classifier, feats['low'], feats['high']
        fused = head.cbr(high) * head.scale(high)
        fused = F.interpolate(fused, size=low.shape[-2:], mode='bilinear', align_corners=False)
        return torch.cat([low, fused], dim=1)

    def forward_head(self, feat: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Logits from :meth:`extract_feat`'s map, bilinearly upsampled to ``size``.

        Args:
            feat: ``(N, feat_dim, h, w)``.
            size: ``(H, W)`` of the output.

        Returns:
            ``(N, num_classes, H, W)`` logits.
        """
        if self.is_lraspp:
            head, c = self.classifier, self._low_channels
            logits = head.low_classifier(feat[:, :c]) + head.high_classifier(feat[:, c:])
        else:
            logits = self.classifier(feat)
        return F.interpolate(logits, size=tuple(size), mode='bilinear', align_corners=False)

    def forward_with_aux(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{'out': logits, 'aux': aux logits}``, both ``(N, num_classes, H, W)``.

        Raises:
            RuntimeError: the model was built without ``aux_loss=True``.
        """
        if self.aux_classifier is None:
            raise RuntimeError('build TorchvisionSegmentor with aux_loss=True for aux logits')
        feats = self.backbone(x)
        size = x.shape[-2:]
        return {'out': self.forward_head(feats['out'], size),
                'aux': F.interpolate(self.aux_classifier(feats['aux']), size=size,
                                     mode='bilinear', align_corners=False)}
