"""What ssvision's classifiers share: pooled features and a dropout + linear head."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..network import StudentNetwork


class PooledClassifier(StudentNetwork):
    """A :class:`~ssvision.models.network.StudentNetwork` whose feature is the global
    average of its last stage and whose head is ``head(dropout(feat))``.

    Subclasses build ``forward_stages``, ``dropout`` and ``head`` (an ``nn.Linear`` of
    ``feat_dim`` inputs); those with another encoder override :meth:`extract_feat`.
    """

    provides = StudentNetwork.provides | {'forward_stages'}

    def extract_feat(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in_channels, H, W)`` -> ``(N, feat_dim)`` averaged last-stage features."""
        return self.forward_stages(x)[-1].mean(dim=(2, 3))

    def _init_weights(self, a: float = 0.0, nonlinearity: str = 'relu') -> None:
        """Kaiming-normal convolutions (fan out), BatchNorm 1 / 0, Xavier-normal linear
        layers with zero bias."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, a=a, mode='fan_out', nonlinearity=nonlinearity)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_head(self, feat: torch.Tensor, size: Sequence[int] | None = None) -> torch.Tensor:
        """``(N, feat_dim)`` -> ``(N, num_classes)`` logits (``size`` is not used)."""
        return self.head(self.dropout(feat))
