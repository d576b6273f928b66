"""BNRecalibrationHook(when='untrusted') keeps copies of training batches only while a
network's BatchNorm statistics can still need re-estimating."""

from types import SimpleNamespace

import torch
from torch import nn

from ssvision.engine.hooks import BNRecalibrationHook


class _Pair(nn.Module):
    """A student and a teacher with BatchNorm at PyTorch's default momentum (0.1:
    trustworthy after 29 updates); the teacher's switch is set as EMATeacherHook sets it."""

    def __init__(self, teacher_switch: int) -> None:
        super().__init__()
        self.student = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
        self.teacher = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
        self._running_stats_from = teacher_switch


def _step(hook, model, it):
    batch = {'inputs': {'sup': torch.rand(2, 1, 4, 4), 'unsup_teacher': torch.rand(2, 1, 4, 4)}}
    hook.after_train_iter(SimpleNamespace(model=model, iter=it), it, batch)


def test_untrusted_hook_stops_copying_batches_once_every_network_is_trusted():
    # catches: a copy of every training batch to the CPU for the whole run (a hot-path
    # cost on the GPU) where re-estimation can no longer happen, and the opposite
    # error, a cache dropped while the teacher (which lags the student) still needs it
    model = _Pair(teacher_switch=60)
    hook = BNRecalibrationHook(num_batches=3, when='untrusted')
    for it in range(40):  # the student is trusted from 29, the teacher from 60
        _step(hook, model, it)
    assert len(hook._cache) == 3  # the teacher still needs the recent batches
    for it in range(40, 70):
        _step(hook, model, it)
    assert len(hook._cache) == 0
    always = BNRecalibrationHook(num_batches=3)  # the hook as configs list it
    for it in range(70, 75):
        _step(always, model, it)
    assert len(always._cache) == 3
