"""The one EMA convention of ssvision: the teacher's weight and the in-place update."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ['ema_momentum', 'ema_update']


def ema_momentum(step: int, momentum: float, ramp: bool = True, copy_steps: int = 0
                 ) -> float:
    """Teacher weight ``m_t`` for update number ``step`` (0-based).

    ``m_t = 0`` (a copy of the student) for ``step < copy_steps``; after that
    ``m_t = min(1 - 1 / (step + 1), momentum)`` with ``ramp``, else ``momentum``. The
    ramp makes update 0 copy the student and lets the teacher follow early training
    closely; after ``1 / (1 - momentum) - 1`` updates it equals ``momentum``.
    ``copy_steps`` is DSSN's ``keep_rate = 0`` start (one step in its VOC script, five
    epochs in its Cityscapes script).
    """
    if step < copy_steps:
        return 0.0
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
