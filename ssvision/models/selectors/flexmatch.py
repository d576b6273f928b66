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
    Curriculum Pseudo Labeling, Zhang et al., NeurIPS 2021), step for step as USB 0.3.2's
    ``FlexMatchThresholdingHook`` (checked against it by ``tests/parity``).

    State (buffers): ``selected_label`` ``(num_unlabeled,)`` long, ``-1`` (unused) at
    first, the class of each unlabeled sample's latest confident prediction, and
    ``classwise_acc`` ``(C,)`` float32, the learning effects ``beta_c`` (0 at first).

    Each call, with ``p_i`` the teacher probabilities, ``y_i = argmax p_i`` and
    ``conf_i = max p_i``:

    1. Mask with the state as it was *before* this batch (``tau = threshold``)::

           T_c = M(beta_c) * tau,  M(x) = x / (2 - x) ('convex') or x ('linear')
           w_i = 1 if conf_i >= T_{y_i} else 0

       At the start every ``beta_c`` is 0, so every prediction is kept.
    2. Training mode only: ``selected_label[sample_idx[i]] = y_i`` for every ``i`` with
       ``conf_i >= tau``; then, with ``sigma_c = #{n : selected_label[n] = c}`` and
       ``sigma_-1`` the number still unused, ``classwise_acc`` is recomputed **only if**
       ``max(sigma_-1, max_c sigma_c) < num_unlabeled`` (so it keeps its value while no
       sample was selected, and also once every sample carries the same class)::

           beta_c = sigma_c / max(sigma_-1, max_k sigma_k)   (warmup, the default)
           beta_c = sigma_c / max_k sigma_k                   (warmup=False)

    Eval mode only reads the state. Under torch.distributed the ``(sample_idx, label)``
    pairs of step 2 are gathered from all ranks and applied on every rank, so the state
    stays identical everywhere (USB updates each rank from its own batch only); among
    duplicate indices in one call the winner is unspecified.

    Classification only: the per-sample state has no meaning for pixels, so dense
    inputs ``(N, C, H, W)`` raise ``NotImplementedError``.

    Checkpoints saved before ``classwise_acc`` existed load: it is recomputed from their
    ``selected_label`` with the rule of step 2.

    Args:
        num_classes (int): number of classes ``C``.
        num_unlabeled (int): size of the unlabeled dataset; ``sample_idx`` must lie in
            ``[0, num_unlabeled)``. Default: taken from the data by the train loop.
        threshold (float): the fixed threshold ``tau``. Default 0.95.
        warmup (bool): threshold warm-up (see step 2). Default True.
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
        self.register_buffer('classwise_acc', torch.zeros(self.num_classes))

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
            self.classwise_acc.zero_()
            self._sized = True

    def learning_effects(self, selected_label: torch.Tensor,
                         previous: torch.Tensor) -> torch.Tensor:
        """``beta`` (float32, ``(C,)``) for the state ``selected_label`` (step 2 of the
        class docstring); ``previous`` when the rule leaves it unchanged (pure)."""
        counts = torch.bincount(selected_label + 1, minlength=self.num_classes + 1)
        sigma = counts[1:].double()
        top = counts.max()  # the unused bucket counts too
        if int(top) >= selected_label.numel():
            return previous.clone()
        denom = top.double() if self.warmup else sigma.max()
        return (sigma / denom).to(previous.dtype)

    def class_thresholds(self) -> torch.Tensor:
        """``(C,)`` per-class thresholds ``T_c = M(beta_c) * tau`` from the current state
        (pure; float32, computed as USB does)."""
        beta = self.classwise_acc
        mapped = beta / (2.0 - beta) if self.mapping == 'convex' else beta
        return self.threshold * mapped

    @torch.no_grad()
    def _update(self, conf: torch.Tensor, labels: torch.Tensor,
                sample_idx: torch.Tensor) -> None:
        confident = conf >= self.threshold
        pairs = torch.stack([sample_idx[confident], labels[confident]], dim=1)
        pairs = cat_across_ranks(pairs)
        self.selected_label[pairs[:, 0]] = pairs[:, 1]
        self.classwise_acc.copy_(self.learning_effects(self.selected_label, self.classwise_acc))

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
        # the mask reads the state before this batch's update
        thr = self.class_thresholds().to(probs.device)
        weight = (conf >= thr[labels]).to(probs.dtype)
        if self.training:
            self._update(conf, labels, sample_idx)
        return labels, weight

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                              missing_keys, unexpected_keys, error_msgs):
        key, sel = prefix + 'classwise_acc', prefix + 'selected_label'
        if key not in state_dict and sel in state_dict:
            # saved before classwise_acc was a buffer: it is a function of selected_label
            loaded = state_dict[sel].to(self.classwise_acc.device)
            state_dict[key] = self.learning_effects(loaded, torch.zeros_like(
                self.classwise_acc))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict,
                                      missing_keys, unexpected_keys, error_msgs)

    def extra_log(self) -> dict[str, float]:
        """``thr_<c>`` per-class thresholds and ``sel_unused`` (fraction never selected)."""
        out = {f'thr_{c}': v for c, v in enumerate(self.class_thresholds().tolist())}
        out['sel_unused'] = float((self.selected_label == UNUSED).float().mean())
        return out

    def extra_repr(self) -> str:
        return (f'num_classes={self.num_classes}, num_unlabeled={self.num_unlabeled}, '
                f'threshold={self.threshold}, warmup={self.warmup}, mapping={self.mapping!r}')
