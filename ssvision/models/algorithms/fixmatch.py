"""FixMatch: hard pseudo-labels from the weak view supervise the strong view."""

from __future__ import annotations

import torch

from ssvision.registry import MODELS

from .base import SemiBase


@MODELS.register_module()
class FixMatch(SemiBase):
    """Cross entropy of the student's strong view(s) against the teacher's selected labels.

    ``unsup_loss = mean over student views of sum_i w_i * CE(s_i, argmax p_i) / N``, ``w``
    from the selector (``FixedThresholdSelector(0.95)`` by default). With
    ``EMATeacherHook(momentum=0)`` the teacher is the current student, as in FixMatch.

    ``rest_weight`` (0: off) also pulls the strong view towards the teacher's
    probabilities where the selector leaves samples out, Mean Teacher's squared error
    weighted by ``1 - w`` (exactly 0 when everything is selected), so the student is not
    left to drift where the teacher is unsure.
    """

    default_train_cfg = {**SemiBase.default_train_cfg,
                         'rest_weight': 0.0}  # weight of unsup_rest_loss, see above

    def __init__(self, model: dict, selector: dict | None = None, **kwargs) -> None:
        if selector is None:
            selector = dict(type='FixedThresholdSelector', threshold=0.95)
        super().__init__(model, selector=selector, **kwargs)

    def loss_by_pseudo_labels(self, out, pseudo, data_samples):
        loss = sum(self.task.hard_loss(out.logits[v], pseudo.labels, pseudo.weight)
                   for v in self.student_views) / len(self.student_views)
        losses = {'unsup_loss': loss}
        rest = float(self.semi_train_cfg['rest_weight'])
        if rest > 0:
            losses['unsup_rest_loss'] = rest * self.rest_loss(out.logits, pseudo)
        return losses

    def rest_loss(self, logits: dict, pseudo) -> torch.Tensor:
        """Mean over the student views of the squared error to the teacher's
        probabilities, weight ``(1 - w) * valid`` (padding never counts)."""
        rest = 1.0 - pseudo.weight
        if pseudo.valid is not None:
            rest = rest * pseudo.valid
        return sum(self.task.soft_loss(logits[v], pseudo.probs, rest, kind='mse')
                   for v in self.student_views) / len(self.student_views)
