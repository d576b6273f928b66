"""Classification task adapter: how to run a classifier and score its outputs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssvision.registry import MODELS

from .base import BaseTask


@MODELS.register_module()
class ClassificationTask(BaseTask):
    """What the semi-supervised recipe needs to know about image classification.

    Predictions are ``(N, C)`` probabilities. Losses reduce to a scalar as a mean over
    the batch; weighted losses divide by the number of samples ``N`` (not by the number
    selected), the FixMatch convention, so the loss is exactly 0 when nothing is
    selected and it grows with the number of confident samples.

    Args:
        label_smoothing (float): label smoothing of the supervised cross entropy.
            Default 0.
    """

    def __init__(self, label_smoothing: float = 0.0) -> None:
        self.label_smoothing = label_smoothing

    @staticmethod
    def forward(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, C)`` of ``model`` for images ``(N, C_in, H, W)``."""
        return model(inputs)

    @torch.no_grad()
    def predict(self, model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        """Probabilities ``(N, C)`` (softmax of the logits), without gradients."""
        return self.forward(model, inputs).float().softmax(dim=1)

    def infer(self, model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        """Validation / test probabilities: :meth:`predict`."""
        return self.predict(model, inputs)

    @staticmethod
    def targets(data_samples: dict) -> torch.Tensor:
        """The labeled targets, ``data_samples['gt_label']``."""
        return data_samples['gt_label']

    def sup_loss(self, logits: torch.Tensor, data_samples: dict) -> torch.Tensor:
        """Cross entropy against ``data_samples['gt_label']`` ``(N,)``."""
        labels = data_samples['gt_label']
        if (labels < 0).any():
            raise ValueError('labeled batch contains gt_label < 0 (unlabeled samples)')
        return F.cross_entropy(logits.float(), labels, label_smoothing=self.label_smoothing)

    @staticmethod
    def hard_loss(logits: torch.Tensor, labels: torch.Tensor,
                  weight: torch.Tensor) -> torch.Tensor:
        """``sum_i w_i * CE(logits_i, labels_i) / N``."""
        ce = F.cross_entropy(logits.float(), labels, reduction='none')
        return (ce * weight).sum() / max(logits.shape[0], 1)

    @staticmethod
    def pack_predictions(scores: dict[str, torch.Tensor], data_samples: dict,
                         inputs: torch.Tensor | None = None) -> list[dict]:
        """Per image ``{'gt_label': int, 'scores': {name: (C,) probs}}`` for ``SemiAccuracy``.

        Args:
            scores: ``{network name: (N, C) probabilities}``.
            data_samples: the batch's ``gt_label`` ``(N,)`` (missing: ``-1`` for all).
        """
        n = next(iter(scores.values())).shape[0]
        gt = data_samples.get('gt_label')
        gt = gt.tolist() if isinstance(gt, torch.Tensor) else [-1] * n
        return [{'gt_label': int(gt[i]), 'scores': {k: v[i] for k, v in scores.items()}}
                for i in range(n)]
