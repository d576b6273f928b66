"""Learning from the future (FST): pseudo-labels from the teacher of the next step."""

from __future__ import annotations

import copy

from torch import nn


class LookAhead:
    """The look-ahead training step of a recipe (``semi_train_cfg.look_ahead=True``).

    Each iteration first takes a virtual optimizer step on the batch, forms the future
    teacher ``T' = m T + (1 - m) S'`` from that virtual student ``S'`` (``m`` = the EMA
    hook's next momentum), restores the student and optimizer state, and then takes the
    real step with pseudo-labels from ``T'``. The teacher itself is still updated only by
    the EMA hook. The virtual step uses the raw optimizer (no AMP loss scaling, no
    gradient accumulation); the state it changes (student, aux heads, selector
    statistics, optimizer) is restored before the real step.

    The future teacher is kept out of the module tree (neither saved nor moved twice).
    """

    def __init__(self) -> None:
        self._future: list[nn.Module] = []
        self.active = False

    def teacher(self, current: nn.Module) -> nn.Module:
        """The network whose predictions become pseudo-labels now."""
        return self._future[0] if self.active else current

    @property
    def future(self) -> nn.Module | None:
        return self._future[0] if self._future else None

    def train_step(self, model, data, optim_wrapper):
        from ssvision.engine.hooks.ema_teacher_hook import ema_update
        data = model.data_preprocessor(data, True)
        # Everything the virtual step may change except the teacher: student, aux
        # heads, selector statistics (restored so they advance once per iteration).
        saved = {k: v.detach().clone() for k, v in model.state_dict().items()
                 if not k.startswith('teacher.')}
        optimizer = optim_wrapper.optimizer
        saved_optim = copy.deepcopy(optimizer.state_dict())
        # 1. virtual step with the current teacher, on the raw optimizer so the
        #    wrapper's iteration / accumulation counters are untouched
        with optim_wrapper.optim_context(model):
            losses = model._run_forward(data, mode='loss')
        parsed, _ = model.parse_losses(losses)
        optimizer.zero_grad()
        parsed.backward()
        optimizer.step()
        optimizer.zero_grad()
        # 2. the future teacher from the virtual student
        if not self._future:
            self._future.append(copy.deepcopy(model.teacher))
        future = self._future[0]
        future.load_state_dict(model.teacher.state_dict())
        future.eval()
        ema_update(future, model.student, model.next_ema_momentum, model.next_ema_buffers)
        # 3. undo the virtual step, then the real step with the future teacher's labels.
        #    In place, not load_state_dict: its plain-checkpoint hook would read the
        #    teacher-less `saved` as a student checkpoint and copy it into the teacher.
        current = model.state_dict()
        for k, v in saved.items():
            current[k].copy_(v)
        optimizer.load_state_dict(saved_optim)
        self.active = True
        try:
            with optim_wrapper.optim_context(model):
                losses = model._run_forward(data, mode='loss')
        finally:
            self.active = False
        parsed, log_vars = model.parse_losses(losses)
        optim_wrapper.update_params(parsed)
        return log_vars
