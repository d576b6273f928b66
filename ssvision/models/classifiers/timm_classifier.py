"""Any timm backbone as an ssvision classifier (own linear head, offline weights only)."""

from __future__ import annotations

from typing import Any, Optional

import timm
import torch
from torch import nn

from ssvision import checkpoints
from ssvision.checkpoints import LoadReport, adapt_first_conv, find_cached_pretrained
from ssvision.registry import MODELS

from .base import PooledClassifier

#: Key prefixes of classification heads in timm / torchvision state dicts.
HEAD_PREFIXES = ('fc.', 'head.', 'classifier.')


@MODELS.register_module()
class TimmClassifier(PooledClassifier):
    """A timm model as pooled-feature extractor plus an own ``nn.Linear`` head.

    The backbone is ``timm.create_model(model_name, pretrained=False, num_classes=0,
    in_chans=in_channels, **timm_kwargs)``, so ``backbone(x)`` returns pooled features
    ``(N, backbone.num_features)``. Weights come through
    :func:`ssvision.checkpoints.resolve` (cached, sha256-checked downloads):

    * ``checkpoint=SOURCE`` (a path, URL, ``zoo://``, ``timm://``, ``torchvision://``)
      loads a timm / torchvision state dict (``.pth``,
      ``.bin`` or ``.safetensors``) into the backbone. Head keys (``fc.*``, ``head.*``,
      ``classifier.*``) go to this module's head when their shapes fit
      (``num_classes`` equal to the checkpoint's), else they are dropped with a
      warning; a first conv for other input channels is adapted to ``in_channels``
      (:func:`ssvision.checkpoints.adapt_first_conv`). Missing / unexpected keys are
      logged.
    * ``pretrained=True`` loads timm's weights the same way: from the local Hugging
      Face (or torch hub) cache, else downloaded as timm does; with
      ``HF_HUB_OFFLINE=1`` and no cached file, a clear error says where to put it.

    Args:
        model_name (str): timm model name. Default ``'resnet18'``.
        num_classes (int): number of logits. Default 10.
        in_channels (int): image channels. Default 3.
        pretrained (bool): load timm's pretrained weights (cache, else download).
        checkpoint (str, optional): checkpoint source (path, URL, ``zoo://`` ...);
            takes precedence over ``pretrained``.
        drop_rate (float): dropout probability on the pooled features, before the
            head (applied by this module, not by timm). Default 0.0.
        **timm_kwargs: more ``timm.create_model`` arguments (``drop_path_rate``, ...).

    Attributes:
        num_classes (int): number of logits.
        feat_dim (int): ``backbone.num_features``.
    """

    def __init__(self, model_name: str = 'resnet18', num_classes: int = 10,
                 in_channels: int = 3, pretrained: bool = False,
                 checkpoint: Optional[str] = None, drop_rate: float = 0.0,
                 **timm_kwargs: Any) -> None:
        super().__init__()
        for bad in ('pretrained', 'num_classes', 'in_chans'):
            if bad in timm_kwargs:
                raise ValueError(f'pass {bad!r} through TimmClassifier\'s own arguments')
        if not 0.0 <= drop_rate < 1.0:
            raise ValueError(f'drop_rate must be in [0, 1), got {drop_rate}')
        weight_file = checkpoint
        if weight_file is None and pretrained:
            # the local caches first, then a download as timm does (HF_HUB_OFFLINE: none)
            weight_file = find_cached_pretrained(model_name) or f'timm://{model_name}'

        self.model_name = model_name
        self.num_classes = int(num_classes)
        self.in_channels = int(in_channels)
        self.backbone = timm.create_model(model_name, pretrained=False, num_classes=0,
                                          in_chans=in_channels, **timm_kwargs)
        self.feat_dim = int(self.backbone.num_features)
        self.dropout = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.head = nn.Linear(self.feat_dim, self.num_classes)
        nn.init.xavier_normal_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        if weight_file is not None:
            self.load_backbone_weights(weight_file)

    def load_backbone_weights(self, path: str) -> LoadReport:
        """Load a checkpoint into the backbone (and the head when it fits).

        Args:
            path: checkpoint source (:func:`ssvision.checkpoints.resolve`) of a timm or
                torchvision model of the same architecture.

        Returns:
            The logged :class:`~ssvision.checkpoints.LoadReport` (backbone-relative
            names; a classifier head for other classes is ``reinitialized``).

        Raises:
            RuntimeError: a non-head tensor has a shape the backbone cannot take, or no
                tensor matched.
        """
        state = checkpoints.load_state_dict(path)
        own = self.backbone.state_dict()
        cfg = getattr(self.backbone, 'pretrained_cfg', None) or {}
        classifier = cfg.get('classifier') if isinstance(cfg, dict) else None
        first_conv = cfg.get('first_conv') if isinstance(cfg, dict) else None
        if isinstance(classifier, (list, tuple)):
            classifier = classifier[0]
        if isinstance(first_conv, (list, tuple)):
            first_conv = first_conv[0]

        backbone_state, head_state, dropped, unexpected = {}, {}, [], []
        for key, value in state.items():
            if classifier and key in (f'{classifier}.weight', f'{classifier}.bias') \
                    and key not in own:
                param = key.rsplit('.', 1)[1]
                if value.shape == getattr(self.head, param).shape:
                    head_state[param] = value
                else:
                    dropped.append(key)
                continue
            if key not in own:
                (dropped if key.startswith(HEAD_PREFIXES) else unexpected).append(key)
                continue
            if value.shape != own[key].shape:
                if first_conv and key == f'{first_conv}.weight' and value.ndim == 4 \
                        and value.shape[0] == own[key].shape[0]:
                    value = adapt_first_conv(value, self.in_channels)
                elif key.startswith(HEAD_PREFIXES):
                    dropped.append(key)
                    continue
                else:
                    raise RuntimeError(
                        f'{path}: {key} has shape {tuple(value.shape)} but the '
                        f'{self.model_name} backbone expects {tuple(own[key].shape)}')
            backbone_state[key] = value

        report = LoadReport(
            str(path), f'TimmClassifier({self.model_name})',
            loaded=list(backbone_state) + [f'head.{k}' for k in head_state],
            reinitialized=dropped, missing=[k for k in own if k not in backbone_state],
            unexpected=unexpected).check()
        self.backbone.load_state_dict(backbone_state, strict=False)
        if head_state:
            self.head.load_state_dict(head_state, strict=False)
        self.load_report = report.log()
        return report

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Intermediate maps of the backbone's feature stages (timm ``feature_info``).

        Uses timm's ``forward_intermediates``; for resnet18 on ``(N, C, 32, 32)`` this is
        ``[(N, 64, 16, 16), (N, 64, 8, 8), (N, 128, 4, 4), (N, 256, 2, 2),
        (N, 512, 1, 1)]`` (stem, layer1..layer4), i.e. ``feature_info[i]['num_chs']``
        channels at stride ``feature_info[i]['reduction']``. Models without
        ``forward_intermediates`` return ``[forward_features(x)]``.

        Args:
            x: ``(N, in_channels, H, W)`` float images.

        Returns:
            List of ``(N, C_i, H / r_i, W / r_i)`` maps, shallow to deep.
        """
        if hasattr(self.backbone, 'forward_intermediates'):
            return list(self.backbone.forward_intermediates(x, intermediates_only=True))
        return [self.backbone.forward_features(x)]

    def extract_feat(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features.

        Args:
            x: ``(N, in_channels, H, W)`` float images.

        Returns:
            ``(N, feat_dim)`` features from timm's pooling (its ``forward_head`` with
            ``num_classes=0``).
        """
        return self.backbone(x)
