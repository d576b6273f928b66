"""Re-estimates BatchNorm running statistics before validation (precise BN)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

import torch
from mmengine.hooks import Hook
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ssvision.engine.mmengine_compat import unwrap
from ssvision.registry import HOOKS

_NETS = ('teacher', 'student')


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Sequence[torch.Tensor],
                   forward: Callable[[torch.Tensor], object] | None = None) -> int:
    """Replace the running mean / var of every BatchNorm layer of ``model`` by the
    average of its batch statistics over ``batches``.

    Each layer's buffers are reset and its momentum set to ``None`` (PyTorch's
    cumulative moving average), the BN layers alone are put in training mode (dropout
    stays as it is) and every batch goes forward once; momenta and modes are restored
    afterwards. ``running_var`` is thus the mean of the per-batch unbiased variances,
    as in fvcore's precise BN.

    Args:
        model: network to recalibrate (changed in place).
        batches: normalised images ``(N, C, H, W)``.
        forward: how to run ``model`` on a batch (default ``model(x)``).

    Returns:
        int: the number of BatchNorm layers recalibrated (0: nothing to do).
    """
    layers = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    if not layers or not batches:
        return 0
    saved = [(m, m.momentum, m.training) for m in layers]
    try:
        for m in layers:
            m.reset_running_stats()
            m.momentum = None
            m.training = True
        for x in batches:
            (forward or model)(x)
    finally:
        for m, momentum, training in saved:
            m.momentum = momentum
            m.training = training
    return len(layers)


@HOOKS.register_module()
class BNRecalibrationHook(Hook):
    """Before each validation, re-estimate the BatchNorm statistics of the teacher
    and / or the student on recent training images.

    With the field's BatchNorm momentum of 0.001 (WRN-28-2 in FixMatch and USB) the
    running statistics are still mostly their initial values after the first
    thousand steps (``1 - 0.999^600`` = 45 % of the way there at step 600), and the
    teacher's EMA of them lags further; an eval-mode network then scores far below
    what it has learnt. This hook keeps the last ``num_batches`` training batches'
    weak views (``sup`` and ``unsup_teacher``, raw, on the CPU) and, before
    validation, runs them through each network with :func:`recalibrate_bn`. Training
    itself is unchanged when the teacher takes pseudo-labels with batch statistics
    (``semi_train_cfg.teacher_bn='batch'``, the default); the recalibrated buffers
    are saved in checkpoints and the teacher's keep being averaged by the EMA hook.
    Only training images are used, never validation images.

    Args:
        num_batches (int): training batches kept and replayed. Default 10.
        nets (Sequence[str]): networks to recalibrate, of ``('teacher', 'student')``.
            Default both.
        views (Sequence[str]): batch views to replay. Default ``('sup', 'unsup_teacher')``.
    """

    priority = 'NORMAL'

    def __init__(self, num_batches: int = 10, nets: Sequence[str] = _NETS,
                 views: Sequence[str] = ('sup', 'unsup_teacher')) -> None:
        if num_batches < 1:
            raise ValueError(f'num_batches must be >= 1, got {num_batches}')
        nets = (nets,) if isinstance(nets, str) else tuple(nets)
        if not nets or set(nets) - set(_NETS):
            raise ValueError(f'nets must name some of {_NETS}, got {nets}')
        self.num_batches = int(num_batches)
        self.nets = nets
        self.views = tuple(views)
        self._cache: deque = deque(maxlen=self.num_batches)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        inputs = data_batch.get('inputs') if isinstance(data_batch, dict) else None
        if not isinstance(inputs, dict):
            return
        kept = {v: inputs[v].detach().cpu() for v in self.views
                if isinstance(inputs.get(v), torch.Tensor)}
        if kept:
            self._cache.append(kept)

    def before_val_epoch(self, runner) -> None:
        if not self._cache:
            return
        model = unwrap(runner.model)
        batches = []
        for kept in self._cache:
            data = model.data_preprocessor({'inputs': kept, 'data_samples': {}}, False)
            batches += [x for x in data['inputs'].values()]
        task = getattr(model, 'task', None)
        for name in self.nets:
            net = getattr(model, name, None)
            if isinstance(net, nn.Module):
                fwd = (lambda x, net=net: task.forward(net, x)) if task is not None else None
                recalibrate_bn(net, batches, fwd)
