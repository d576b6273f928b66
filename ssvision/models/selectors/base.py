"""Common base of pseudo-label selectors."""

from __future__ import annotations

import torch
from torch import nn


class BaseSelector(nn.Module):
    """Turns teacher probabilities into pseudo-labels and per-sample weights.

    Contract: ``probs (N, C, *)`` (each position sums to 1 over ``C``) ->
    ``(labels (N, *) long, weight (N, *) float in [0, 1])``. The input is never
    modified. Class-aware selectors keep their statistics in buffers (saved in
    checkpoints, moved by ``.to()``) and update them only in training mode.
    Subclasses implement :meth:`select`.
    """

    def forward(self, probs: torch.Tensor,
                sample_idx: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Select pseudo-labels.

        Args:
            probs: ``(N, C, *)`` teacher probabilities.
            sample_idx: ``(N,)`` indices of the images in the unlabeled dataset, for
                selectors that keep per-sample state (FlexMatch); others ignore it.
        """
        if probs.dim() < 2:
            raise ValueError(f'probs must be (N, C, *), got shape {tuple(probs.shape)}')
        labels, weight = self.select(probs.detach(), sample_idx=sample_idx)
        return labels, weight

    def select(self, probs: torch.Tensor,
               sample_idx: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def observe(self, targets: torch.Tensor) -> None:
        """See the labeled batch's targets (``(N,)`` class ids, or ``(N, H, W)`` maps
        whose values outside ``[0, C)`` are ignored). Called by the recipe on every
        training step; selectors whose rule uses the labeled class distribution keep
        counts, the others do nothing."""

    def set_num_unlabeled(self, num_unlabeled: int) -> None:
        """Size per-sample state to the unlabeled set (called by the train loop before
        any checkpoint is loaded); selectors without per-sample state do nothing."""

    def extra_log(self) -> dict[str, float]:
        """Scalars worth logging (e.g. current thresholds); empty by default."""
        return {}
