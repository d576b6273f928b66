"""FixMatch: hard pseudo-labels from the weak view supervise the strong view."""

from __future__ import annotations

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
        out = {'unsup_loss': self.task.hard_loss(student_out['unsup_student'], labels, weight)}
        out.update(self.rest_loss(student_out, probs, weight))
        return out

    def rest_loss(self, student_out, probs, weight) -> dict:
        """``unsup_rest_loss`` over the student views (mean), or nothing when off."""
        rest = float(self.semi_train_cfg['rest_weight'])
        if rest <= 0:
            return {}
        views = [v for v in self.student_views if v in student_out]
        loss = sum(self.task.soft_loss(student_out[v], probs, 1.0 - weight, kind='mse')
                   for v in views) / len(views)
        return {'unsup_rest_loss': rest * loss}
