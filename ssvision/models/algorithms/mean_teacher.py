"""Mean Teacher: soft consistency between the EMA teacher and the student."""

from __future__ import annotations

from ssvision.registry import MODELS

from .base import SemiBase


@MODELS.register_module()
class MeanTeacher(SemiBase):
    """Student's class distribution on its view follows the teacher's on the weak view.

    ``unsup_loss = sum_i w_i * sum_c (softmax(s_i)_c - p_ic)^2 / N`` (``consistency='mse'``)
    or ``sum_i w_i * KL(p_i || softmax(s_i)) / N`` (``'kl'``), where ``p`` are the teacher's
    probabilities and ``w`` the selector's weights (the default selector, a threshold
    of 0, keeps every sample).

    Knobs (``semi_train_cfg``), besides :class:`SemiBase`'s:

    - ``consistency`` (str, ``'mse'``): ``'mse'`` or ``'kl'``.
    - ``temperature`` (float, 1.0): teacher probabilities are sharpened as
      ``p^(1/T)`` renormalised before the loss (1.0 = unchanged).
    """

    default_train_cfg = {**SemiBase.default_train_cfg, 'consistency': 'mse', 'temperature': 1.0}

    def __init__(self, model: dict, selector: dict | None = None, **kwargs) -> None:
        if selector is None:
            selector = dict(type='FixedThresholdSelector', threshold=0.0)
        super().__init__(model, selector=selector, **kwargs)
        if self.semi_train_cfg['consistency'] not in ('mse', 'kl'):
            raise ValueError("semi_train_cfg.consistency must be 'mse' or 'kl'")
        if self.semi_train_cfg['temperature'] <= 0:
            raise ValueError('semi_train_cfg.temperature must be > 0')

    def unsup_loss(self, student_out, probs, labels, weight, inputs, data_samples):
        target = probs
        temperature = self.semi_train_cfg['temperature']
        if temperature != 1.0:
            target = probs.pow(1.0 / temperature)
            target = target / target.sum(dim=1, keepdim=True)
        loss = self.task.soft_loss(student_out['unsup_student'], target.detach(), weight,
                                   kind=self.semi_train_cfg['consistency'])
        return {'unsup_loss': loss}



