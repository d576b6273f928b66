"""FlexMatch's curriculum pseudo-labelling: per-class thresholds from learning effects."""

from __future__ import annotations

import torch

from ssvision.registry import MODELS

from ._dist import cat_across_ranks
from .base import BaseSelector

_MAPPINGS = ('convex', 'linear')
#: Value of ``selected_label`` for a sample never predicted above the threshold.
UNUSED = -1


@MODELS.register_module()
class FlexMatchSelector(BaseSelector):
    """Curriculum pseudo-labelling (FlexMatch: Boosting Semi-Supervised Learning with
    Curriculum Pseudo Labeling, Zhang et al., NeurIPS 2021).

    State: ``selected_label`` ``(num_unlabeled,)`` long, ``-1`` (unused) at first,
    holding for each unlabeled sample the class of its latest prediction whose top
    probability exceeded ``threshold``.

    Each training call, *before* thresholds are computed:
    ``selected_label[sample_idx[i]] = argmax p_i`` for every ``i`` with
    ``max p_i > threshold`` (under torch.distributed the ``(sample_idx, label)``
    pairs of all ranks are gathered and applied on every rank, so the state stays
    identical; among duplicate indices in one call the winner is unspecified).

    Thresholds (from the current state; eval mode only reads it):

    - learning effect ``sigma_c = #{n : selected_label[n] = c}``,
    - ``beta_c = sigma_c / max(max_k sigma_k, num_unused)`` with ``warmup`` (the
      threshold warm-up: ``num_unused = #{n : selected_label[n] = -1}``), else
      ``beta_c = sigma_c / max_k sigma_k``; ``0 / 0`` counts as 0,
    - ``T_c = M(beta_c) * threshold`` with ``M(x) = x / (2 - x)`` (``'convex'``) or
      ``M(x) = x`` (``'linear'``).

    Sample ``i`` is kept (weight 1) iff ``max p_i > T_{argmax p_i}``. At the start
    every ``beta_c`` is 0, so every prediction is kept; thresholds rise towards
    ``threshold`` as classes are learnt.

    Classification only: the per-sample state has no meaning for pixels, so dense
    inputs ``(N, C, H, W)`` raise ``NotImplementedError``.

    Args:
        num_classes (int): number of classes ``C``.
        num_unlabeled (int): size of the unlabeled dataset; ``sample_idx`` must lie in
            ``[0, num_unlabeled)``.
        threshold (float): the fixed threshold ``tau``. Default 0.95.
        warmup (bool): threshold warm-up (see above). Default True.
        mapping (str): ``'convex'`` or ``'linear'``. Default ``'convex'``.
    """

    def __init__(self, num_classes: int, num_unlabeled: int | None = None,
                 threshold: float = 0.95, warmup: bool = True, mapping: str = 'convex') -> None:
        super().__init__()
        if num_unlabeled is None:
            num_unlabeled = 1  # placeholder; the train loop calls set_num_unlabeled
            self._sized = False
        else:
            self._sized = True
        if num_classes < 1 or num_unlabeled < 1:
            raise ValueError('num_classes and num_unlabeled must be >= 1')
        if mapping not in _MAPPINGS:
            raise ValueError(f'mapping must be one of {_MAPPINGS}, got {mapping!r}')
        if not 0 <= threshold <= 1:
            raise ValueError(f'threshold must be in [0, 1], got {threshold}')
        self.num_classes, self.num_unlabeled = int(num_classes), int(num_unlabeled)
        self.threshold, self.warmup, self.mapping = float(threshold), bool(warmup), mapping
        self.register_buffer('selected_label',
                             torch.full((self.num_unlabeled,), UNUSED, dtype=torch.long))

    def set_num_unlabeled(self, num_unlabeled: int) -> None:
        """Size the per-sample state to the unlabeled dataset (called by the train loop).

        Raises:
            ValueError: when ``num_unlabeled`` was configured and differs.
        """
        if self._sized and num_unlabeled != self.num_unlabeled:
            raise ValueError(f'FlexMatchSelector.num_unlabeled={self.num_unlabeled} but the '
                             f'unlabeled dataset has {num_unlabeled} images (leave '
                             'num_unlabeled unset to take it from the data)')
        if not self._sized:
            self.num_unlabeled = int(num_unlabeled)
            self.selected_label = torch.full((self.num_unlabeled,), UNUSED, dtype=torch.long,
                                             device=self.selected_label.device)
            self._sized = True

    def class_thresholds(self) -> torch.Tensor:
        """``(C,)`` per-class thresholds ``T_c`` from the current state (pure)."""
        state = self.selected_label
        used = state[state != UNUSED]
        sigma = torch.bincount(used, minlength=self.num_classes).double()
        denom = sigma.max()
        if self.warmup:
            denom = torch.maximum(denom, (state == UNUSED).sum().double())
        beta = sigma / denom.clamp(min=1.0)  # denom is a count: 0 only if sigma == 0
        mapped = beta / (2.0 - beta) if self.mapping == 'convex' else beta
        return (mapped * self.threshold).float()

    @torch.no_grad()
    def _update(self, conf: torch.Tensor, labels: torch.Tensor,
                sample_idx: torch.Tensor) -> None:
        confident = conf > self.threshold
        pairs = torch.stack([sample_idx[confident], labels[confident]], dim=1)
        pairs = cat_across_ranks(pairs)
        self.selected_label[pairs[:, 0]] = pairs[:, 1]

    def select(self, probs: torch.Tensor,
               sample_idx: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if probs.dim() != 2:
            raise NotImplementedError(
                'FlexMatchSelector keeps per-sample state and supports (N, C) inputs only, '
                f'got shape {tuple(probs.shape)}')
        if probs.shape[1] != self.num_classes:
            raise ValueError(f'expected {self.num_classes} classes, got {probs.shape[1]}')
        conf, labels = probs.max(dim=1)
        if self.training:
            if sample_idx is None:
                raise ValueError(
                    'FlexMatchSelector needs sample_idx (indices in the unlabeled dataset) '
                    "in training; the batch's unsup_teacher data_samples must carry it")
            sample_idx = torch.as_tensor(sample_idx, device=probs.device).long().view(-1)
            if sample_idx.shape[0] != probs.shape[0]:
                raise ValueError(f'sample_idx has {sample_idx.shape[0]} entries for '
                                 f'{probs.shape[0]} samples')
            if sample_idx.numel() and (int(sample_idx.min()) < 0
                                       or int(sample_idx.max()) >= self.num_unlabeled):
                raise IndexError(f'sample_idx must lie in [0, {self.num_unlabeled}), got '
                                 f'[{int(sample_idx.min())}, {int(sample_idx.max())}]')
            self._update(conf, labels, sample_idx)
        thr = self.class_thresholds().to(probs.device, probs.dtype)
        return labels, (conf > thr[labels]).to(probs.dtype)

    def extra_log(self) -> dict[str, float]:
        """``thr_<c>`` per-class thresholds and ``sel_unused`` (fraction never selected)."""
        out = {f'thr_{c}': v for c, v in enumerate(self.class_thresholds().tolist())}
        out['sel_unused'] = float((self.selected_label == UNUSED).float().mean())
        return out

    def extra_repr(self) -> str:
        return (f'num_classes={self.num_classes}, num_unlabeled={self.num_unlabeled}, '
                f'threshold={self.threshold}, warmup={self.warmup}, mapping={self.mapping!r}')
