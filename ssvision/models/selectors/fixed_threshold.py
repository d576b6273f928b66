"""FixMatch's fixed global confidence threshold."""

from __future__ import annotations

import torch

from ssvision.registry import MODELS

from .base import BaseSelector


def fixed_threshold(probs: torch.Tensor,
                    threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep predictions whose top probability is at least ``threshold``.

    Args:
        probs: ``(N, C, *)`` probabilities.
        threshold: confidence threshold; ``0`` keeps everything, any value above 1
            keeps nothing.

    Returns:
        ``labels (N, *)`` = argmax over ``C`` and ``weight (N, *)`` = 1.0 where
        ``max_c probs >= threshold`` else 0.0.
    """
    conf, labels = probs.max(dim=1)
    return labels, (conf >= threshold).to(probs.dtype)


@MODELS.register_module()
class FixedThresholdSelector(BaseSelector):
    """One confidence threshold for every class (FixMatch uses 0.95).

    With FixMatch's loss (``ClassificationTask.hard_loss``) this is USB 0.3.2's
    ``FixedThresholdingHook`` (``max_prob >= p_cutoff``) and ``(CE(s, argmax p) *
    mask).mean()``; ``tests/parity`` compares the masks, labels, losses and gradients.

    Args:
        threshold (float): keep a prediction when its top probability is
            ``>= threshold``. Default 0.95.
    """

    def __init__(self, threshold: float = 0.95) -> None:
        super().__init__()
        if threshold < 0:
            raise ValueError(f'threshold must be >= 0, got {threshold}')
        self.threshold = float(threshold)

    def select(self, probs: torch.Tensor,
               sample_idx: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return fixed_threshold(probs, self.threshold)

    def extra_repr(self) -> str:
        return f'threshold={self.threshold}'
