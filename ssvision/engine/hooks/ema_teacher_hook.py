"""Keeps the teacher an exponential moving average (EMA) of the student."""

from __future__ import annotations

import torch
from mmengine.hooks import Hook
from torch import nn

from ssvision.engine.mmengine_compat import unwrap
from ssvision.registry import HOOKS


def ema_momentum(step: int, momentum: float, ramp: bool = True) -> float:
    """Teacher weight ``m_t`` for update number ``step`` (0-based).

    ``m_t = min(1 - 1 / (step + 1), momentum)`` with ``ramp``, else ``momentum``.
    The ramp makes update 0 copy the student and lets the teacher follow early
    training closely; after ``1 / (1 - momentum) - 1`` updates it equals ``momentum``.
    """
    if ramp:
        return min(1.0 - 1.0 / (step + 1), momentum)
    return momentum


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float,
               buffers: str = 'ema') -> None:
    """In place: ``teacher = momentum * teacher + (1 - momentum) * student``.

    Floating-point parameters and, with ``buffers='ema'``, floating-point buffers
    (BatchNorm running mean / var) are averaged; integer buffers
    (``num_batches_tracked``) are copied. With ``buffers='copy'`` every buffer is
    copied from the student.

    The average runs as two fused multi-tensor ops over all tensors
    (``torch._foreach_mul_`` then ``torch._foreach_add_``): a handful of kernel launches
    per step instead of two per tensor, with the same arithmetic (bit for bit) as the
    per-tensor ``mul_`` / ``add_``.
    """
    if buffers not in ('ema', 'copy'):
        raise ValueError(f"buffers must be 'ema' or 'copy', got {buffers!r}")
    t_params = dict(teacher.named_parameters())
    avg_t, avg_s, copy_t, copy_s = [], [], [], []
    for name, s_param in student.named_parameters():
        avg_t.append(t_params[name])
        avg_s.append(s_param.detach())
    t_bufs = dict(teacher.named_buffers())
    for name, s_buf in student.named_buffers():
        t_buf = t_bufs[name]
        if buffers == 'ema' and t_buf.is_floating_point():
            avg_t.append(t_buf)
            avg_s.append(s_buf)
        else:
            copy_t.append(t_buf)
            copy_s.append(s_buf)
    if avg_t:
        torch._foreach_mul_(avg_t, momentum)
        torch._foreach_add_(avg_t, avg_s, alpha=1.0 - momentum)
    for t_buf, s_buf in zip(copy_t, copy_s):
        t_buf.copy_(s_buf)


@HOOKS.register_module()
class EMATeacherHook(Hook):
    """Updates ``model.teacher`` from ``model.student`` after every training step.

    The one EMA convention of ssvision::

        teacher = m_t * teacher + (1 - m_t) * student
        m_t     = min(1 - 1 / (t + 1), momentum)      (ramp=True; else m_t = momentum)

    where ``t`` is the 0-based index of the iteration just finished. ``momentum`` is
    the weight kept by the teacher (0.999 keeps 99.9 %). BatchNorm running statistics
    are averaged the same way (``buffers='ema'``) or copied (``buffers='copy'``);
    ``num_batches_tracked`` is always copied. The update runs under ``no_grad`` and in
    place, so the teacher's tensors keep their identity (optimizers, DDP and
    checkpoint loading are unaffected).

    Args:
        momentum (float): final teacher weight ``m`` in [0, 1). Default 0.999.
        ramp (bool): use the ramp above. Default True.
        interval (int): update every ``interval`` iterations. Default 1.
        buffers (str): ``'ema'`` or ``'copy'``. Default ``'ema'``.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, momentum: float = 0.999, ramp: bool = True, interval: int = 1,
                 buffers: str = 'ema') -> None:
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f'momentum must be in [0, 1), got {momentum}')
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}')
        if buffers not in ('ema', 'copy'):
            raise ValueError(f"buffers must be 'ema' or 'copy', got {buffers!r}")
        self.momentum = momentum
        self.ramp = ramp
        self.interval = interval
        self.buffers = buffers

    @staticmethod
    def _model(runner):
        return unwrap(runner.model)

    def before_train(self, runner) -> None:
        model = self._model(runner)
        if not (hasattr(model, 'teacher') and hasattr(model, 'student')):
            raise TypeError('EMATeacherHook needs a model with `teacher` and `student`, got '
                            f'{type(model).__name__}')

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        # Algorithms that look ahead (learning from the future) need the momentum of
        # the coming update before the step.
        model = self._model(runner)
        if (runner.iter + 1) % self.interval == 0:
            model.next_ema_momentum = ema_momentum(runner.iter // self.interval,
                                                   self.momentum, self.ramp)
        else:
            model.next_ema_momentum = None  # no teacher update after this iteration
        model.next_ema_buffers = self.buffers

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if (runner.iter + 1) % self.interval != 0:
            return
        model = self._model(runner)
        step = runner.iter // self.interval
        m = ema_momentum(step, self.momentum, self.ramp)
        ema_update(model.teacher, model.student, m, self.buffers)
        runner.message_hub.update_scalar('train/ema_momentum', m)
