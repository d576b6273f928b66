"""FixMatch: hard pseudo-labels from the weak view supervise the strong view."""

from __future__ import annotations

import torch

from ssvision.registry import MODELS

from .base import SemiBase


@MODELS.register_module()
class FixMatch(SemiBase):
    """Cross entropy of the student's strong view against the teacher's selected labels.

    ``unsup_loss = sum_i w_i * CE(s_i, argmax p_i) / N`` with ``w`` from the selector
    (``FixedThresholdSelector(0.95)`` by default; any selector can be configured, e.g. a
    class-aware one). Here pseudo-labels come from the EMA teacher (in eval mode); with
    ``EMATeacherHook(momentum=0)`` the teacher is the current student, as in the
    original FixMatch. Knobs: those of :class:`SemiBase`, and

    - ``rest_weight`` (float, 0.0: off): also pull the student's strong view towards
      the teacher's probabilities on the samples (pixels) the selector leaves out,
      Mean Teacher's squared error weighted by ``1 - w``:
      ``unsup_rest_loss = rest_weight * sum_i (1 - w_i) * ||softmax(s_i) - p_i||^2 / N``.
      Without it nothing trains the student where the teacher is unsure, and under
      strong colour changes it can drift there (BENCHMARKS.md, binary scenes, seed 0).
      It is exactly 0 when everything is selected.
    """

    default_train_cfg = {**SemiBase.default_train_cfg, 'rest_weight': 0.0}

    def __init__(self, model: dict, selector: dict | None = None, **kwargs) -> None:
        if selector is None:
            selector = dict(type='FixedThresholdSelector', threshold=0.95)
        super().__init__(model, selector=selector, **kwargs)

    def unsup_loss(self, student_out, probs, labels, weight, inputs, data_samples):
        return {'unsup_loss': self.task.hard_loss(student_out['unsup_student'], labels, weight)}

    def student_losses(self, inputs, data_samples, pseudo, factor):
        losses, logits, features = super().student_losses(inputs, data_samples, pseudo, factor)
        rest = float(self.semi_train_cfg['rest_weight'])
        if pseudo is not None and rest > 0:
            losses['unsup_rest_loss'] = factor * rest * self.rest_loss(logits, pseudo)
        return losses, logits, features

    def rest_loss(self, logits: dict, pseudo) -> torch.Tensor:
        """Mean over the student views of the squared error to the teacher's
        probabilities on the unselected samples, weight ``(1 - w) * valid`` (padding
        pixels, ``pseudo.valid == 0``, never count)."""
        rest = 1.0 - pseudo.weight
        if pseudo.valid is not None:
            rest = rest * pseudo.valid
        views = [v for v in self.student_views if v in logits]
        if not views:
            raise KeyError(f'rest_weight needs a student view of {self.student_views}')
        return sum(self.task.soft_loss(logits[v], pseudo.probs, rest, kind='mse')
                   for v in views) / len(views)
