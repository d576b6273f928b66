"""How the teacher's BatchNorm layers normalise while it makes pseudo-labels."""

from __future__ import annotations

import contextlib
import math

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..network import batch_stats_bn
from .ema import ema_momentum as teacher_weight

#: ``semi_train_cfg.teacher_bn`` values.
TEACHER_BN_MODES = ('auto', 'batch', 'running')
#: 'auto' trusts running statistics once their initial values weigh less than this.
INIT_WEIGHT_LEFT = 0.05


def steps_until_running_stats(model: nn.Module, left: float = INIT_WEIGHT_LEFT) -> int:
    """Updates after which every BatchNorm layer's running statistics keep less than
    ``left`` of their initial values: ``ceil(log(left) / log(1 - m))`` for the smallest
    momentum ``m`` (0 without BatchNorm, or when every layer uses a cumulative average,
    ``momentum=None``). 29 updates at PyTorch's default 0.1, 2995 at 0.001."""
    momentum = _smallest_bn_momentum(model)
    return 0 if momentum is None else math.ceil(math.log(left) / math.log(1.0 - momentum))


def _smallest_bn_momentum(model: nn.Module) -> float | None:
    momenta = [m.momentum for m in model.modules()
               if isinstance(m, _BatchNorm) and m.track_running_stats and m.momentum]
    return min(momenta) if momenta else None


def teacher_steps_until_running_stats(model: nn.Module, ema_momentum: float,
                                      ramp: bool = True, interval: int = 1,
                                      buffers: str = 'ema', copy_steps: int = 0,
                                      left: float = INIT_WEIGHT_LEFT,
                                      limit: int = 10_000_000) -> int:
    """Iterations after which an EMA teacher's BatchNorm running statistics keep less
    than ``left`` of their initial values (the rule of :func:`steps_until_running_stats`
    applied to the *teacher's* buffers).

    The student's running statistics after ``t`` training forwards keep
    ``a_t = (1 - b)^t`` of their start (``b``: the smallest BN momentum). The teacher's
    are an average of the student's: after each EMA update (every ``interval``
    iterations, teacher weight ``m_k`` of :func:`~ssvision.models.algorithms.ema.ema_momentum`)
    ``T <- m_k * T + (1 - m_k) * a_t`` (``T = a_t`` with ``buffers='copy'``), from
    ``T = 1``. Returns the first iteration ``i`` (0-based) whose teacher, after the
    updates of iterations ``0 .. i - 1``, has ``T < left`` (0 without BatchNorm).
    At PyTorch's BN momentum 0.1 and an EMA of 0.999 with the ramp this is later than
    the student's 29; at 0.001 the teacher lags the student's 2,995 further.
    """
    b = _smallest_bn_momentum(model)
    if b is None:
        return 0
    student, teacher, updates = 1.0, 1.0, 0
    for i in range(limit):
        if teacher < left:
            return i
        student *= 1.0 - b  # the forward of iteration i
        if (i + 1) % interval == 0:  # then the EMA update after it
            m = teacher_weight(updates, ema_momentum, ramp, copy_steps)
            teacher = student if buffers == 'copy' else m * teacher + (1.0 - m) * student
            updates += 1
    return limit


def teacher_bn_context(model: nn.Module, mode: str, iteration: int | None = None):
    """Context for a pseudo-label forward of ``model``: ``'batch'`` uses
    :func:`batch_stats_bn`, ``'running'`` leaves the (eval-mode) model as it is, and
    ``'auto'`` is ``'batch'`` before ``iteration`` reaches
    :func:`steps_until_running_stats` and ``'running'`` from then on."""
    if mode == 'auto':
        if iteration is None:
            raise ValueError("teacher_bn='auto' needs the iteration")
        mode = 'batch' if iteration < steps_until_running_stats(model) else 'running'
    if mode == 'batch':
        return batch_stats_bn(model)
    if mode == 'running':
        return contextlib.nullcontext(model)
    raise ValueError(f'teacher_bn must be one of {TEACHER_BN_MODES}, got {mode!r}')
