"""Re-estimates BatchNorm running statistics for validation, checkpoints and inference
(precise BN)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ssvision.engine.mmengine_compat import unwrap
from ssvision.engine.rng import preserved_rng
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


#: ``when`` values of :class:`BNRecalibrationHook`.
WHEN = ('always', 'untrusted')
#: Key of the re-estimated BatchNorm buffers in a checkpoint's ``meta``.
META_KEY = 'bn_recalibrated'
#: Key of the cached training batches in a checkpoint (for an exact resume).
CACHE_KEY = 'ssvision_bn_cache'
#: Largest cache kept in a checkpoint (raw images; bigger ones are left out).
CACHE_MAX_BYTES = 64 << 20


def untrusted_nets(model, iteration: int) -> list[str]:
    """The networks of ``model`` whose BatchNorm running statistics still hold more
    than 5 % of their initial values at ``iteration`` (the rule of
    ``teacher_bn='auto'``: the student's after ``iteration`` updates, the teacher's as
    its EMA of them, ``teacher_steps_until_running_stats``)."""
    from ssvision.models.algorithms.teacher_bn import steps_until_running_stats
    out = []
    student = getattr(model, 'student', None)
    if isinstance(student, nn.Module) and iteration < steps_until_running_stats(student):
        out.append('student')
    teacher = getattr(model, 'teacher', None)
    switch = getattr(model, '_running_stats_from', None)
    if isinstance(teacher, nn.Module):
        if switch is None:
            switch = steps_until_running_stats(teacher)
        if iteration < switch:
            out.append('teacher')
    return out


@HOOKS.register_module()
class BNRecalibrationHook(Hook):
    """Re-estimates the BatchNorm statistics of the teacher and / or the student on
    recent training images, before validation and, for inference, into checkpoints.

    With the field's BatchNorm momentum of 0.001 (WRN-28-2 in FixMatch and USB) the
    running statistics are still mostly their initial values after the first
    thousand steps (``1 - 0.999^600`` = 45 % of the way there at step 600), and the
    teacher's EMA of them lags further; an eval-mode network then scores far below
    what it has learnt. This hook keeps the last ``num_batches`` training batches'
    weak views (``sup`` and ``unsup_teacher``, raw, on the CPU) and replays them
    through each network with :func:`recalibrate_bn`. Only training images are used,
    never validation images. Checkpoints keep the cache when it is at most
    ``CACHE_MAX_BYTES`` (64 MiB), so a resumed run re-estimates exactly as an
    uninterrupted one; a larger cache is refilled after the resume (logged).

    - ``when='always'`` (the hook as configs list it): before every validation, in
      place; the re-estimated buffers stay in the networks (and are saved and
      averaged by the EMA hook).
    - ``when='untrusted'`` (what ``tools/train.py`` and ``tools/test.py`` add to every
      run that does not list this hook): only networks whose running statistics are
      not yet trustworthy (:func:`untrusted_nets`, the rule of ``teacher_bn='auto'``)
      are re-estimated, and their buffers are put back after validation, so training
      and exact resume are unchanged. Checkpoints then carry the re-estimated buffers
      in ``meta['bn_recalibrated']`` (the state dict keeps the training buffers), which
      ``tools/test.py``, ``infer`` and ``export`` load. Each re-estimation is logged.

    Args:
        num_batches (int): training batches kept and replayed. Default 10.
        nets (Sequence[str]): networks to recalibrate, of ``('teacher', 'student')``.
            Default both.
        views (Sequence[str]): batch views to replay. Default ``('sup', 'unsup_teacher')``.
        when (str): ``'always'`` or ``'untrusted'``. Default ``'always'``.
    """

    priority = 'NORMAL'

    def __init__(self, num_batches: int = 10, nets: Sequence[str] = _NETS,
                 views: Sequence[str] = ('sup', 'unsup_teacher'), when: str = 'always'
                 ) -> None:
        if num_batches < 1:
            raise ValueError(f'num_batches must be >= 1, got {num_batches}')
        nets = (nets,) if isinstance(nets, str) else tuple(nets)
        if not nets or set(nets) - set(_NETS):
            raise ValueError(f'nets must name some of {_NETS}, got {nets}')
        if when not in WHEN:
            raise ValueError(f'when must be one of {WHEN}, got {when!r}')
        self.num_batches = int(num_batches)
        self.nets = nets
        self.views = tuple(views)
        self.when = when
        self._cache: deque = deque(maxlen=self.num_batches)
        self._saved: dict = {}

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.when == 'untrusted' and not untrusted_nets(unwrap(runner.model),
                                                           runner.iter + 1):
            # every network's running statistics are trustworthy from here on (the rule
            # only relaxes with more steps): no copy of the batch is needed any more
            self._cache.clear()
            return
        inputs = data_batch.get('inputs') if isinstance(data_batch, dict) else None
        if not isinstance(inputs, dict):
            return
        kept = {v: inputs[v].detach().cpu() for v in self.views
                if isinstance(inputs.get(v), torch.Tensor)}
        if kept:
            self._cache.append(kept)

    def _targets(self, runner) -> list[str]:
        model = unwrap(runner.model)
        if self.when == 'always':
            return [n for n in self.nets if isinstance(getattr(model, n, None), nn.Module)]
        untrusted = untrusted_nets(model, runner.iter)
        return [n for n in self.nets if n in untrusted]

    def _recalibrate(self, runner, names: list[str]) -> dict[str, dict]:
        """Re-estimate ``names`` in place; returns their buffers from before."""
        model = unwrap(runner.model)
        batches = []
        for kept in self._cache:
            data = model.data_preprocessor({'inputs': kept, 'data_samples': {}}, False)
            batches += [x for x in data['inputs'].values()]
        task = getattr(model, 'task', None)
        before = {}
        for name in names:
            net = getattr(model, name)
            before[name] = {k: v.clone() for k, v in net.named_buffers()}
            fwd = (lambda x, net=net: task.forward(net, x)) if task is not None else None
            # eval mode for everything but BatchNorm (no dropout), and the global random
            # state untouched: training after this step is the same with or without it
            training = net.training
            net.eval()
            with preserved_rng():
                recalibrate_bn(net, batches, fwd)
            net.train(training)
        return before

    def before_val_epoch(self, runner) -> None:
        names = self._targets(runner) if self._cache else []
        if not names:
            return
        before = self._recalibrate(runner, names)
        if self.when == 'untrusted':
            self._saved = before
            print_log(f'BatchNorm statistics of the {" and ".join(names)} re-estimated on '
                      f'{len(self._cache)} training batches for validation (their running '
                      'statistics still hold most of their start); training keeps its own',
                      logger='current')

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._restore(runner)

    def _restore(self, runner) -> None:
        model = unwrap(runner.model)
        for name, buffers in self._saved.items():
            for key, value in getattr(model, name).named_buffers():
                value.copy_(buffers[key])
        self._saved = {}

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        self._save_cache(checkpoint)
        if self.when != 'untrusted' or not self._cache:
            return
        names = self._targets(runner)
        if not names:
            return
        model = unwrap(runner.model)
        before = self._recalibrate(runner, names)
        meta = checkpoint.setdefault('meta', {})
        meta[META_KEY] = {f'{name}.{k}': v.detach().cpu().clone()
                          for name in names for k, v in getattr(model, name).named_buffers()}
        self._saved = before
        self._restore(runner)

    def _save_cache(self, checkpoint: dict) -> None:
        """Keep the cached training batches in the checkpoint when they are small
        (``CACHE_MAX_BYTES``), so that a resumed run re-estimates on the same batches as
        an uninterrupted one; larger caches are left out and the resumed run refills
        its cache from the batches it trains on (logged on resume)."""
        size = sum(v.numel() * v.element_size() for kept in self._cache for v in kept.values())
        if self._cache and size <= CACHE_MAX_BYTES:
            checkpoint[CACHE_KEY] = [dict(kept) for kept in self._cache]

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """On resume, the cached training batches come back (when the checkpoint has
        them); outside a resumed training run (``tools/test.py``), the checkpoint's
        re-estimated buffers replace the training ones."""
        from ssvision.engine.mmengine_compat import is_resuming
        if is_resuming(runner):
            cache = checkpoint.get(CACHE_KEY)
            self._cache.clear()
            if isinstance(cache, list):
                self._cache.extend(cache[-self.num_batches:] if self.num_batches else [])
            elif checkpoint.get('meta', {}).get('iter', 0):
                print_log('BNRecalibrationHook: this checkpoint holds no cached training '
                          f'batches (over {CACHE_MAX_BYTES >> 20} MiB); re-estimates use '
                          'the batches trained on after the resume', logger='current')
            return
        buffers = (checkpoint.get('meta') or {}).get(META_KEY)
        state = checkpoint.get('state_dict')
        if not buffers or not isinstance(state, dict):
            return
        # mmengine loads the state dict after this hook: replace the buffers there
        for key, value in buffers.items():
            if key in state:
                state[key] = value


def apply_recalibrated(model: nn.Module, buffers: dict) -> list[str]:
    """Copy ``meta['bn_recalibrated']`` buffers (``{'teacher.<name>': tensor}``) into
    ``model``; returns the networks changed."""
    state = dict(model.named_buffers())
    nets = set()
    with torch.no_grad():
        for key, value in buffers.items():
            if key in state:
                state[key].copy_(value.to(state[key].device, state[key].dtype))
                nets.add(key.split('.')[0])
    return sorted(nets)
