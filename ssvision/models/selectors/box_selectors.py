"""Pseudo-box selectors: which teacher detections become pseudo-boxes.

A box selector is called with the teacher's detections of a batch, a list of
:class:`~ssvision.structures.DetInstances` (scores set), and returns one bool keep-mask
per image (:class:`BaseBoxSelector`). It never modifies its input; state lives in
buffers (checkpointed) and changes only in training mode.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ssvision.registry import MODELS
from ssvision.structures import DetInstances

from ._dist import cat_across_ranks, sum_across_ranks

__all__ = ['BaseBoxSelector', 'FixedScoreBoxSelector', 'ClassAwareBoxSelector']


class BaseBoxSelector(nn.Module):
    """The box selector contract: ``forward(dets) -> [keep mask per image]``;
    :meth:`observe` sees the labeled boxes of every training step; statistics live in
    buffers and are updated only in training mode (validation and look-ahead's
    restore never move them)."""

    def forward(self, dets: Sequence[DetInstances]) -> list[torch.Tensor]:
        raise NotImplementedError

    def observe(self, labels: Sequence[torch.Tensor]) -> None:
        """The labeled batch's box labels, one tensor per image; default: ignored."""

    def set_num_unlabeled(self, num_unlabeled: int) -> None:
        """No per-image state."""

    def extra_log(self) -> dict:
        return {}


@MODELS.register_module()
class FixedScoreBoxSelector(BaseBoxSelector):
    """Keep detections scoring above ``threshold`` (one number for every class: the
    usual mean-teacher detector baseline, 0.9 in mmdetection's and Soft Teacher's
    configs; strictly above, as mmdetection's ``filter_gt_instances``). A threshold of
    1 or more keeps nothing.
    """

    def __init__(self, threshold: float = 0.9) -> None:
        super().__init__()
        if threshold < 0:
            raise ValueError(f'threshold must be >= 0, got {threshold}')
        self.threshold = float(threshold)

    def forward(self, dets: Sequence[DetInstances]) -> list[torch.Tensor]:
        return [d.scores > self.threshold for d in dets]


@MODELS.register_module()
class ClassAwareBoxSelector(BaseBoxSelector):
    """Per-class adaptive score thresholds: each class keeps its own top-scoring boxes.

    The DSSN idea for boxes. Each class's threshold comes from the scores of its own
    candidate detections in the batch (those scoring at least ``min_score``), smoothed
    over iterations by an EMA::

        q_c   = the class's batch statistic (below)
        tau_c = momentum * tau_c + (1 - momentum) * q_c      (tau_c = q_c the first time)
        keep  = score >= clip(tau_c, floor, ceil)

    ``mode='prior'`` (the default): ``q_c`` is the score of the class's k-th best
    candidate, ``k_c = max(1, round(ratio * n_c * images))``, where ``n_c`` is the mean
    number of class-c boxes per labeled image (counted from the labeled batches the
    detector passes to :meth:`observe`) and ``images`` the number of unlabeled images in
    the batch; with fewer candidates, the lowest one. So each class keeps about ``ratio``
    times as many boxes as the labeled data says it has objects, however many low-score
    candidates the teacher emits (at least its best box per batch, so a rare class is not
    starved by rounding); a class the labeled data never showed keeps its threshold.
    Before any labeled batch was observed, the quantile rule is used.
    ``mode='quantile'``: ``q_c`` is the ``1 - ratio`` quantile of the class's candidate
    scores, so the count kept grows with the candidates the detector emits per image
    (many boxes at low precision for a teacher that emits many detections).

    A class the teacher is unsure of (a rare class; every class of a one-stage detector
    early on, whose sigmoid scores stay far below 0.9) still gets its best boxes, while a
    confident class is held to a high bar. Boxes scoring ``>= ceil`` are always kept;
    below ``floor`` never. Classes without candidates keep their threshold (``ceil``
    until first seen). Under data-parallel training the statistics are taken over the
    candidates and labeled boxes of every process, so all ranks keep the same thresholds.

    Args:
        num_classes: number of classes.
        ratio: ``'prior'``: boxes kept per expected object (> 0);
            ``'quantile'``: fraction of each class's candidates kept (in ``(0, 1]``).
            Default None: 0.5 for ``'prior'``, 0.3 for ``'quantile'``.
        floor: lowest threshold. Default 0.3.
        ceil: highest threshold. Default 0.9.
        min_score: candidates considered. Default 0.05.
        momentum: EMA momentum of the thresholds. Default 0.9.
        mode: ``'prior'`` or ``'quantile'``.
    """

    MODES = ('prior', 'quantile')

    def __init__(self, num_classes: int, ratio: float | None = None, floor: float = 0.3,
                 ceil: float = 0.9, min_score: float = 0.05, momentum: float = 0.9,
                 mode: str = 'prior') -> None:
        super().__init__()
        if mode not in self.MODES:
            raise ValueError(f'mode must be one of {self.MODES}, got {mode!r}')
        if ratio is None:
            ratio = 0.5 if mode == 'prior' else 0.3
        if mode == 'quantile' and not 0 < ratio <= 1:
            raise ValueError(f'ratio must be in (0, 1], got {ratio}')
        if mode == 'prior' and not ratio > 0:
            raise ValueError(f'ratio must be > 0, got {ratio}')
        if not 0 <= floor <= ceil <= 1:
            raise ValueError(f'need 0 <= floor <= ceil <= 1, got {floor}, {ceil}')
        if not 0 <= momentum < 1:
            raise ValueError(f'momentum must be in [0, 1), got {momentum}')
        self.num_classes, self.ratio, self.mode = int(num_classes), float(ratio), mode
        self.floor, self.ceil = float(floor), float(ceil)
        self.min_score, self.momentum = float(min_score), float(momentum)
        self.register_buffer('tau', torch.full((self.num_classes,), self.ceil))
        self.register_buffer('seen', torch.zeros(self.num_classes, dtype=torch.bool))
        # labeled boxes per class and labeled images observed (the 'prior' counts)
        self.register_buffer('labeled_boxes', torch.zeros(self.num_classes))
        self.register_buffer('labeled_images', torch.zeros(()))

    def thresholds(self, num_classes: int | None = None) -> torch.Tensor:
        """Current per-class thresholds ``clip(tau, floor, ceil)``."""
        return self.tau.clamp(self.floor, self.ceil)

    @torch.no_grad()
    def observe(self, labels: Sequence[torch.Tensor]) -> None:
        """Count the ground-truth boxes of a labeled batch (every rank's): one tensor of
        box labels (``0..K-1``) per labeled image. Training mode only."""
        if not self.training:
            return
        counts = torch.zeros(self.num_classes + 1, device=self.tau.device)
        for lab in labels:
            lab = torch.as_tensor(lab, dtype=torch.long).to(self.tau.device)
            if len(lab) and (lab.min() < 0 or lab.max() >= self.num_classes):
                raise ValueError(f'box labels must be in [0, {self.num_classes}), got '
                                 f'{lab.unique().tolist()}')
            counts[:self.num_classes] += torch.bincount(lab, minlength=self.num_classes)
        counts[-1] = len(labels)
        counts = sum_across_ranks(counts)
        self.labeled_boxes += counts[:self.num_classes]
        self.labeled_images += counts[-1]

    def boxes_per_image(self) -> torch.Tensor:
        """Mean labeled boxes per image of each class (zeros before any observation)."""
        return self.labeled_boxes / self.labeled_images.clamp_min(1)

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
        images = float(sum_across_ranks(self.tau.new_tensor([float(len(dets))]))[0])
        use_prior = self.mode == 'prior' and float(self.labeled_images) > 0
        expected = self.boxes_per_image() * images * self.ratio
        for c in torch.unique(labels).tolist():
            if not 0 <= c < self.num_classes:
                raise ValueError(f'detection label {c} outside [0, {self.num_classes})')
            cls_scores = scores[labels == c]
            if use_prior:
                if float(expected[c]) <= 0:
                    continue  # no object of this class expected: keep its threshold
                k = max(1, int(round(float(expected[c]))))
                q = torch.topk(cls_scores, min(k, len(cls_scores))).values[-1]
            else:
                q = torch.quantile(cls_scores, 1.0 - self.ratio)
            if self.seen[c]:
                self.tau[c] = self.momentum * self.tau[c] + (1 - self.momentum) * q
            else:
                self.tau[c] = q
                self.seen[c] = True

    def forward(self, dets: Sequence[DetInstances]) -> list[torch.Tensor]:
        if self.training:  # statistics move in training only
            self.update(dets)
        thr = self.thresholds()
        return [d.scores >= thr.to(d.scores.device)[d.labels.clamp(0, self.num_classes - 1)]
                if len(d) else torch.zeros(0, dtype=torch.bool, device=d.scores.device)
                for d in dets]

    def extra_log(self) -> dict:
        thr = self.thresholds()
        return {f'box_thr_{c}': float(thr[c]) for c in range(self.num_classes)}
