"""Pseudo-box selectors: which teacher detections become pseudo-boxes.

A box selector is called with the teacher's detections of a batch, a list of
:class:`~ssvision.structures.DetInstances` (scores set), and returns one bool keep-mask
per image. It never modifies its input; state lives in buffers (checkpointed).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ssvision.registry import MODELS
from ssvision.structures import DetInstances

from ._dist import cat_across_ranks

__all__ = ['FixedScoreBoxSelector', 'ClassAwareBoxSelector']


@MODELS.register_module()
class FixedScoreBoxSelector(nn.Module):
    """Keep detections scoring at least ``threshold`` (one number for every class: the
    usual mean-teacher detector baseline, 0.9 in mmdetection's and Soft Teacher's
    configs). A threshold above 1 keeps nothing.
    """

    def __init__(self, threshold: float = 0.9) -> None:
        super().__init__()
        if threshold < 0:
            raise ValueError(f'threshold must be >= 0, got {threshold}')
        self.threshold = float(threshold)

    def forward(self, dets: Sequence[DetInstances]) -> list[torch.Tensor]:
        return [d.scores >= self.threshold for d in dets]

    def thresholds(self, num_classes: int) -> torch.Tensor:
        return torch.full((num_classes,), self.threshold)

    def extra_log(self) -> dict:
        return {}


@MODELS.register_module()
class ClassAwareBoxSelector(nn.Module):
    """Per-class adaptive score thresholds: each class keeps its own top-scoring boxes.

    The DSSN idea for boxes. A class's threshold follows the ``1 - ratio`` quantile of
    the scores of its candidate detections (those scoring at least ``min_score``),
    smoothed over iterations by an EMA::

        q_c   = quantile(scores of class-c candidates in the batch, 1 - ratio)
        tau_c = momentum * tau_c + (1 - momentum) * q_c      (tau_c = q_c the first time)
        keep  = score >= clip(tau_c, floor, ceil)

    so a class the teacher is unsure of (a rare class; every class of a one-stage
    detector early on, whose sigmoid scores stay far below 0.9) still gets its best
    boxes, while a confident class is held to a high bar. Boxes scoring ``>= ceil``
    are always kept; below ``floor`` never. Classes without candidates keep their
    threshold (``ceil`` until first seen). Under data-parallel training the quantiles are
    taken over the candidates of every process, so all ranks keep the same thresholds.

    Args:
        num_classes: number of classes.
        ratio: fraction of each class's candidates kept (in ``(0, 1]``). Default 0.3.
        floor: lowest threshold. Default 0.3.
        ceil: highest threshold. Default 0.9.
        min_score: candidates considered. Default 0.05.
        momentum: EMA momentum of the thresholds. Default 0.9.
    """

    def __init__(self, num_classes: int, ratio: float = 0.3, floor: float = 0.3,
                 ceil: float = 0.9, min_score: float = 0.05, momentum: float = 0.9) -> None:
        super().__init__()
        if not 0 < ratio <= 1:
            raise ValueError(f'ratio must be in (0, 1], got {ratio}')
        if not 0 <= floor <= ceil <= 1:
            raise ValueError(f'need 0 <= floor <= ceil <= 1, got {floor}, {ceil}')
        if not 0 <= momentum < 1:
            raise ValueError(f'momentum must be in [0, 1), got {momentum}')
        self.num_classes, self.ratio = int(num_classes), float(ratio)
        self.floor, self.ceil = float(floor), float(ceil)
        self.min_score, self.momentum = float(min_score), float(momentum)
        self.register_buffer('tau', torch.full((self.num_classes,), self.ceil))
        self.register_buffer('seen', torch.zeros(self.num_classes, dtype=torch.bool))

    def thresholds(self, num_classes: int | None = None) -> torch.Tensor:
        """Current per-class thresholds ``clip(tau, floor, ceil)``."""
        return self.tau.clamp(self.floor, self.ceil)

    @torch.no_grad()
    def update(self, dets: Sequence[DetInstances]) -> None:
        scores = torch.cat([d.scores for d in dets]) if dets else self.tau.new_zeros(0)
        labels = torch.cat([d.labels for d in dets]) if dets else self.tau.new_zeros(
            0, dtype=torch.long)
        scores, labels = scores.to(self.tau.device), labels.to(self.tau.device)
        cand = scores >= self.min_score
        # every rank ranks the candidates of the whole global batch: identical thresholds
        # on all processes (a no-op without a process group)
        scores = cat_across_ranks(scores[cand])
        labels = cat_across_ranks(labels[cand])
        cand = torch.ones_like(scores, dtype=torch.bool)
        for c in torch.unique(labels[cand]).tolist():
            if not 0 <= c < self.num_classes:
                raise ValueError(f'detection label {c} outside [0, {self.num_classes})')
            q = torch.quantile(scores[cand & (labels == c)], 1.0 - self.ratio)
            if self.seen[c]:
                self.tau[c] = self.momentum * self.tau[c] + (1 - self.momentum) * q
            else:
                self.tau[c] = q
                self.seen[c] = True

    def forward(self, dets: Sequence[DetInstances]) -> list[torch.Tensor]:
        self.update(dets)
        thr = self.thresholds()
        return [d.scores >= thr.to(d.scores.device)[d.labels.clamp(0, self.num_classes - 1)]
                if len(d) else torch.zeros(0, dtype=torch.bool, device=d.scores.device)
                for d in dets]

    def extra_log(self) -> dict:
        thr = self.thresholds()
        return {f'box_thr_{c}': float(thr[c]) for c in range(self.num_classes)}
