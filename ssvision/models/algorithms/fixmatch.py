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
    original FixMatch. Knobs: those of :class:`SemiBase`.
    """

    def __init__(self, model: dict, selector: dict | None = None, **kwargs) -> None:
        if selector is None:
            selector = dict(type='FixedThresholdSelector', threshold=0.95)
        super().__init__(model, selector=selector, **kwargs)

    def unsup_loss(self, student_out, probs, labels, weight, inputs, data_samples):
        return {'unsup_loss': self.task.hard_loss(student_out['unsup_student'], labels, weight)}
