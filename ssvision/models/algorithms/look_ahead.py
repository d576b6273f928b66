"""Learning from the future (FST): pseudo-labels from a teacher of future steps."""

from __future__ import annotations

import copy

import torch
from torch import nn

from .ema import ema_update


def split_unlabeled(data: dict, index: torch.Tensor, size: int) -> dict:
    """The batch with its unlabeled views (keys starting ``unsup``) cut to ``index``.

    Every tensor (first dimension ``size``) and list / tuple (length ``size``) under an
    unlabeled view's inputs and data samples is indexed; other values and the labeled
    view are kept whole.
    """

    def take(value):
        if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == size:
            return value[index.to(value.device)]
        if isinstance(value, (list, tuple)) and len(value) == size:
            return type(value)(value[i] for i in index.tolist())
        if isinstance(value, dict):
            return {k: take(v) for k, v in value.items()}
        return value

    return {part: {view: take(v) if view.startswith('unsup') else v
                   for view, v in views.items()} if isinstance(views, dict) else views
            for part, views in data.items()}


class LookAhead:
    """The look-ahead training step of a recipe (``semi_train_cfg.look_ahead=True``).

    With ``m`` the EMA hook's next momentum and ``T`` the teacher, one iteration is:

    - **FST** (``steps=1, width=1``): a virtual optimizer step of the student ``S`` on
      the batch (pseudo-labels from ``T``) gives ``S'``; the future teacher is
      ``T' = m T + (1 - m) S'``.
    - **FST-D** (``steps=k``, deeper): ``k`` virtual steps in a row on the batch, the
      ``j``-th with pseudo-labels from ``T_{j-1}`` (``T_0 = T``), and after each
      ``T_j = m T_{j-1} + (1 - m) S_j``; the future teacher is ``T_k``. The FST paper's
      FST-D uses ``k = 3`` (``ahead_step=3`` in its released configs, teacher momentum
      0.999). Every virtual EMA update uses the same ``m`` (as the paper's code does).
    - **FST-W** (``width=w``, wider): ``w`` virtual students, each one step from ``S``
      (student and optimizer state restored in between) with pseudo-labels from ``T``,
      student ``i`` on the labeled view and the ``i``-th of ``w`` equal slices of the
      unlabeled views (the paper feeds each virtual student its own batch; here they
      share the iteration's batch, cut in ``w``). Their average (a model soup of
      parameters and floating-point buffers) ``S_bar`` gives
      ``T' = m T + (1 - m) S_bar``. The paper's FST-W uses ``w = 3``.

    Then the student and optimizer state are restored and the real step is taken with
    pseudo-labels from the future teacher. The teacher itself is still updated only
    by the EMA hook, from real students (the paper's code also folds the virtual
    students into its teacher). ``steps > 1`` and ``width > 1`` together are refused.

    **Cost per iteration**, in training steps (forward + backward + optimizer step) of
    the whole batch: ``1`` without look-ahead; ``1 + k`` for FST-D (``2`` for FST);
    for FST-W the real step plus ``w`` virtual steps on ``B + mu B / w`` images each,
    about ``1 + (w + mu) / (1 + mu)``, plus ``w`` restores and a soup of the student.
    Measured on the TinyCNN MNIST-5k config (B = 32, mu = 7, 2 CPU threads, median of
    20 steps, one run): FST 1.90x a step without look-ahead; relative to FST, FST-D
    1.55x (k = 2) and 2.05x (k = 3), FST-W 1.16x (w = 2) and 1.32x (w = 3) (small
    slices use the machine less well than the count assumes). The virtual steps use
    the raw optimizer (no AMP loss scaling, no gradient accumulation); the state they
    change (student, aux heads, selector statistics, optimizer) is restored before the
    real step, so it advances once per iteration.

    The future teacher (and the soup) are kept out of the module tree (neither saved
    nor moved twice).

    Args:
        steps (int): virtual steps in a row (FST-D). Default 1.
        width (int): virtual students averaged (FST-W). Default 1.
    """

    def __init__(self, steps: int = 1, width: int = 1) -> None:
        if int(steps) != steps or steps < 1 or int(width) != width or width < 1:
            raise ValueError(f'look-ahead steps and width must be integers >= 1, got '
                             f'steps={steps}, width={width}')
        if steps > 1 and width > 1:
            raise ValueError('look-ahead is either deeper (steps > 1, FST-D) or wider '
                             f'(width > 1, FST-W), not both; got steps={steps}, '
                             f'width={width}')
        self.steps = int(steps)
        self.width = int(width)
        self._future: list[nn.Module] = []
        self._soup: list[nn.Module] = []
        self.active = False

    def teacher(self, current: nn.Module) -> nn.Module:
        """The network whose predictions become pseudo-labels now."""
        return self._future[0] if self.active else current

    @property
    def future(self) -> nn.Module | None:
        return self._future[0] if self._future else None

    @staticmethod
    def _virtual_step(model, data, optim_wrapper) -> None:
        """One optimizer step on the raw optimizer, so the wrapper's iteration and
        accumulation counters are untouched."""
        optimizer = optim_wrapper.optimizer
        with optim_wrapper.optim_context(model):
            losses = model(**data, mode='loss')  # mmengine's _run_forward of a dict
        parsed, _ = model.parse_losses(losses)
        optimizer.zero_grad()
        parsed.backward()
        optimizer.step()
        optimizer.zero_grad()

    def _start_future(self, teacher: nn.Module) -> nn.Module:
        if not self._future:
            self._future.append(copy.deepcopy(teacher))
        future = self._future[0]
        future.load_state_dict(teacher.state_dict())
        future.eval()
        return future

    @staticmethod
    def _restore(model, saved: dict, optimizer, saved_optim: dict) -> None:
        # In place, not load_state_dict: its plain-checkpoint hook would read the
        # teacher-less `saved` as a student checkpoint and copy it into the teacher.
        current = model.state_dict()
        for k, v in saved.items():
            current[k].copy_(v)
        optimizer.load_state_dict(saved_optim)

    def _soup_of(self, student: nn.Module, sums: dict, count: int) -> nn.Module:
        """A copy of ``student`` holding ``sums / count`` (integer buffers: last seen)."""
        if not self._soup:
            self._soup.append(copy.deepcopy(student))
        soup = self._soup[0]
        state = soup.state_dict()
        for k, v in sums.items():
            state[k].copy_(v / count if v.is_floating_point() else v)
        return soup

    def train_step(self, model, data, optim_wrapper):
        data = model.data_preprocessor(data, True)
        m, buffers = model.next_ema_momentum, model.next_ema_buffers
        # Everything the virtual steps may change except the teacher: student, aux
        # heads, selector statistics (restored so they advance once per iteration).
        saved = {k: v.detach().clone() for k, v in model.state_dict().items()
                 if not k.startswith('teacher.')}
        optimizer = optim_wrapper.optimizer
        saved_optim = copy.deepcopy(optimizer.state_dict())
        if self.width == 1:
            # FST / FST-D: the first virtual step with the current teacher, each
            # further one with the future teacher so far
            future = None
            try:
                for j in range(self.steps):
                    self.active = j > 0
                    self._virtual_step(model, data, optim_wrapper)
                    if future is None:
                        future = self._start_future(model.teacher)
                    ema_update(future, model.student, m, buffers)
            finally:
                self.active = False
        else:
            # FST-W: virtual students from the same start on slices of the unlabeled
            # views, averaged
            views = data['inputs'].get('unsup_teacher')
            size = len(views) if views is not None else 0
            slices = torch.tensor_split(torch.arange(size), self.width)
            sums: dict = {}
            for i, index in enumerate(slices):
                if i > 0:
                    self._restore(model, saved, optimizer, saved_optim)
                self._virtual_step(model, split_unlabeled(data, index, size), optim_wrapper)
                for k, v in model.student.state_dict().items():
                    v = v.detach()
                    if k in sums and v.is_floating_point():
                        sums[k] += v
                    else:
                        sums[k] = v.clone()
            future = self._start_future(model.teacher)
            ema_update(future, self._soup_of(model.student, sums, len(slices)), m, buffers)
        # undo the virtual steps, then the real step with the future teacher's labels
        self._restore(model, saved, optimizer, saved_optim)
        self.active = True
        try:
            with optim_wrapper.optim_context(model):
                losses = model(**data, mode='loss')  # mmengine's _run_forward of a dict
        finally:
            self.active = False
        parsed, log_vars = model.parse_losses(losses)
        optim_wrapper.update_params(parsed)
        return log_vars
