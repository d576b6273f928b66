"""Keeps the teacher an exponential moving average (EMA) of the student."""

from __future__ import annotations

from mmengine.hooks import Hook

from ssvision.engine.mmengine_compat import unwrap
from ssvision.models.algorithms.ema import ema_momentum, ema_update
from ssvision.registry import HOOKS


@HOOKS.register_module()
class EMATeacherHook(Hook):
    """Updates ``model.teacher`` from ``model.student`` after every training step.

    The one EMA convention of ssvision::

        teacher = m_t * teacher + (1 - m_t) * student
        m_t     = min(1 - 1 / (t + 1), momentum)      (ramp=True; else m_t = momentum)
        m_t     = 0                                   for t < copy_steps

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
        copy_steps (int): the first ``copy_steps`` updates copy the student (DSSN's
            ``keep_rate = 0`` start). Default 0.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, momentum: float = 0.999, ramp: bool = True, interval: int = 1,
                 buffers: str = 'ema', copy_steps: int = 0) -> None:
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f'momentum must be in [0, 1), got {momentum}')
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}')
        if buffers not in ('ema', 'copy'):
            raise ValueError(f"buffers must be 'ema' or 'copy', got {buffers!r}")
        if copy_steps < 0:
            raise ValueError(f'copy_steps must be >= 0, got {copy_steps}')
        self.copy_steps = int(copy_steps)
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
        from ssvision.models.algorithms.base import SemiBase
        if isinstance(model, SemiBase):
            # teacher_bn='auto' times its switch by the teacher's own buffers
            model.set_ema_schedule(self.momentum, self.ramp, self.interval, self.buffers,
                                   self.copy_steps)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        # Algorithms that look ahead (learning from the future) need the momentum of
        # the coming update before the step.
        model = self._model(runner)
        if (runner.iter + 1) % self.interval == 0:
            model.next_ema_momentum = ema_momentum(runner.iter // self.interval,
                                                   self.momentum, self.ramp, self.copy_steps)
        else:
            model.next_ema_momentum = None  # no teacher update after this iteration
        model.next_ema_buffers = self.buffers

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if (runner.iter + 1) % self.interval != 0:
            return
        model = self._model(runner)
        step = runner.iter // self.interval
        m = ema_momentum(step, self.momentum, self.ramp, self.copy_steps)
        ema_update(model.teacher, model.student, m, self.buffers)
        runner.message_hub.update_scalar('train/ema_momentum', m)
