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
    """Student's class distribution on its view follows the teacher's on the weak view
    (Tarvainen & Valpola, NeurIPS 2017).

    With ``p`` the teacher's probabilities, ``s`` the student's logits, ``C`` classes and
    ``w`` the selector's weights (the default selector, a threshold of 0, keeps every
    sample)::

        'mse'     : unsup_loss = sum_i w_i * mean_c (softmax(s_i)_c - p_ic)^2 / N
        'mse_sum' : unsup_loss = sum_i w_i * sum_c  (softmax(s_i)_c - p_ic)^2 / N  (= C x 'mse')
        'kl'      : unsup_loss = sum_i w_i * KL(p_i || softmax(s_i)) / N

    ``'mse'`` averages over the classes as the authors' ``softmax_mse_loss``
    (CuriousAI/mean-teacher: summed squares divided by the number of classes) and USB
    0.3.2's ``consistency_loss(..., 'mse')`` do; ``'mse_sum'`` is this project's earlier
    form, kept so older configs can be reproduced (multiply their ``unsup_weight`` by
    ``C`` to get the same loss with ``'mse'``).

    The unsup weight ramps up over ``unsup_warmup_iters`` after burn-in: with
    ``t = iter - burn_in_iters`` and ``r = min(t / unsup_warmup_iters, 1)`` it is
    ``unsup_weight * exp(-5 (1 - r)^2)`` (``rampup='sigmoid'``: the authors'
    ``sigmoid_rampup``, which they evaluate once per epoch, here per iteration) or
    ``unsup_weight * r`` (``'linear'``: USB 0.3.2's
    ``clip(it / (unsup_warm_up * num_train_iter), 0, 1)``; USB's default is
    ``unsup_warmup_iters = 0.4 * max_iters``). ``unsup_warmup_iters = 0`` means the full
    weight from the first iteration.

    Knobs (``semi_train_cfg``), besides :class:`SemiBase`'s:

    - ``consistency`` (str, ``'mse'``): ``'mse'``, ``'mse_sum'`` or ``'kl'``.
    - ``temperature`` (float, 1.0): teacher probabilities are sharpened as
      ``p^(1/T)`` renormalised before the loss (1.0 = unchanged).
    - ``rampup`` (str, ``'sigmoid'``): ``'sigmoid'`` or ``'linear'``, see above.
    """

    default_train_cfg = {**SemiBase.default_train_cfg, 'consistency': 'mse', 'temperature': 1.0,
                         'rampup': 'sigmoid'}

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
