"""Mean Teacher: soft consistency between the EMA teacher and the student."""

from __future__ import annotations

import math

from ssvision.registry import MODELS

from .base import SemiBase

#: ``semi_train_cfg.consistency`` values.
CONSISTENCIES = ('mse', 'mse_sum', 'kl')
#: ``semi_train_cfg.rampup`` values: the shape of the unsup weight's warm-up.
RAMPUPS = ('sigmoid', 'linear')
#: Steepness of the sigmoid-shaped ramp-up, ``exp(-5 (1 - r)^2)`` (Laine & Aila's).
SIGMOID_RAMPUP_SCALE = 5.0


@MODELS.register_module()
class MeanTeacher(SemiBase):
    """The student's class distribution on its view follows the teacher's on the weak
    view (Tarvainen & Valpola, NeurIPS 2017); ``p`` teacher probabilities, ``s`` student
    logits, ``w`` the selector's weights (by default every sample)::

        'mse'     : sum_i w_i * mean_c (softmax(s_i)_c - p_ic)^2 / N   (the authors', USB's)
        'mse_sum' : sum_i w_i * sum_c  (softmax(s_i)_c - p_ic)^2 / N   (older configs)
        'kl'      : sum_i w_i * KL(p_i || softmax(s_i)) / N

    The unsup weight ramps over ``unsup_warmup_iters`` after burn-in, with
    ``r = min(t / unsup_warmup_iters, 1)``: ``exp(-5 (1 - r)^2)`` (the authors'
    ``sigmoid_rampup``) or ``r`` (USB's linear ramp).
    """

    default_train_cfg = {**SemiBase.default_train_cfg,
                         'consistency': 'mse',  # one of CONSISTENCIES, see above
                         'temperature': 1.0,    # sharpen p as p^(1/T), renormalised
                         'rampup': 'sigmoid'}   # one of RAMPUPS, see above

    def __init__(self, model: dict, selector: dict | None = None, **kwargs) -> None:
        if selector is None:
            selector = dict(type='FixedThresholdSelector', threshold=0.0)
        super().__init__(model, selector=selector, **kwargs)
        cfg = self.semi_train_cfg
        if cfg['consistency'] not in CONSISTENCIES:
            raise ValueError(f'semi_train_cfg.consistency must be one of {CONSISTENCIES}, '
                             f"got {cfg['consistency']!r}")
        if cfg['temperature'] <= 0:
            raise ValueError('semi_train_cfg.temperature must be > 0')
        if cfg['rampup'] not in RAMPUPS:
            raise ValueError(f'semi_train_cfg.rampup must be one of {RAMPUPS}, got '
                             f"{cfg['rampup']!r}")

    def unsup_weight_at(self, it: int) -> float:
        """Unsup loss multiplier at iteration ``it``: 0 during burn-in, then the
        ``rampup`` shape over ``unsup_warmup_iters`` (see the class docstring)."""
        cfg = self.semi_train_cfg
        t = it - cfg['burn_in_iters']
        if t < 0:
            return 0.0
        if cfg['unsup_warmup_iters'] <= 0:
            return cfg['unsup_weight']
        r = min(t / cfg['unsup_warmup_iters'], 1.0)
        if cfg['rampup'] == 'sigmoid':
            r = math.exp(-SIGMOID_RAMPUP_SCALE * (1.0 - r) ** 2)
        return cfg['unsup_weight'] * r

    def teacher_target(self, probs):
        """The teacher's probabilities, sharpened by ``temperature`` (a detached copy)."""
        target = probs
        temperature = self.semi_train_cfg['temperature']
        if temperature != 1.0:
            target = probs.pow(1.0 / temperature)
            target = target / target.sum(dim=1, keepdim=True)
        return target.detach()

    def loss_by_pseudo_labels(self, out, pseudo, data_samples):
        kind, probs, weight = self.semi_train_cfg['consistency'], pseudo.probs, pseudo.weight
        logits = out.logits['unsup_student']
        target = self.teacher_target(probs)
        if kind == 'kl':
            return {'unsup_loss': self.task.soft_loss(logits, target, weight, kind='kl')}
        loss = self.task.soft_loss(logits, target, weight, kind='mse')
        if kind == 'mse':
            loss = loss / probs.shape[1]  # the mean over the classes
        return {'unsup_loss': loss}
