"""What the recipe asks of a task adapter."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class BaseTask:
    """A task adapter: how the recipe runs a network of one task and scores it.

    The recipe (:class:`~ssvision.models.algorithms.SemiBase`) calls:

    - ``predict(model, views)``: the teacher's targets (no gradients);
    - ``infer(model, images)``: validation outputs;
    - ``targets(data_samples)``: the labeled targets, for class-prior selectors;
    - ``pack_predictions(outputs, data_samples, inputs)``: per-image records for the
      task's metric;
    - with ``has_logits``: ``forward(model, images)`` (per-position outputs the student's
      losses and the auxiliary heads read) and ``sup_loss(logits, data_samples)``.

    Attributes:
        dense: outputs are per pixel (batch mixers such as CutMix apply).
        has_logits: the student gives per-position outputs (classification,
            segmentation); a detector computes its own losses instead.
    """

    dense: bool = False
    has_logits: bool = True

    def forward(self, model: nn.Module, inputs: Any) -> Any:
        raise NotImplementedError

    def predict(self, model: nn.Module, inputs: Any) -> Any:
        raise NotImplementedError

    def infer(self, model: nn.Module, inputs: Any) -> Any:
        return self.predict(model, inputs)

    @staticmethod
    def targets(data_samples: dict) -> Any:
        raise NotImplementedError

    def sup_loss(self, logits: Any, data_samples: dict) -> Any:
        raise NotImplementedError

    @staticmethod
    def soft_loss(logits: torch.Tensor, target_probs: torch.Tensor,
                  weight: torch.Tensor, kind: str = 'mse') -> torch.Tensor:
        """Weighted consistency between ``softmax(logits)`` ``(N, C, *)`` and
        ``target_probs``, per sample or pixel ``i`` (``weight`` ``(N, *)``), over the
        ``M`` samples or pixels: ``'mse'`` ``sum_i w_i sum_c (p_ic - q_ic)^2 / M`` (Mean
        Teacher), ``'kl'`` ``sum_i w_i KL(q_i || p_i) / M``, ``'ce'``
        ``sum_i w_i (-sum_c q_ic log p_ic) / M`` (``KL + H(q)``: the gradient of ``'kl'``)."""
        if kind == 'mse':
            per = ((logits.float().softmax(dim=1) - target_probs) ** 2).sum(dim=1)
        elif kind == 'kl':
            logp = logits.float().log_softmax(dim=1)
            per = (target_probs * (target_probs.clamp_min(1e-12).log() - logp)).sum(dim=1)
        elif kind == 'ce':
            per = -(target_probs * logits.float().log_softmax(dim=1)).sum(dim=1)
        else:
            raise ValueError(f"kind must be 'mse', 'kl' or 'ce', got {kind!r}")
        return (per * weight).sum() / max(per.numel(), 1)

    def pack_predictions(self, outputs: dict, data_samples: dict,
                         inputs: Any = None) -> list[dict]:
        raise NotImplementedError
