"""Where pseudo-labels come from (``semi_train_cfg.pseudo_label_source``) and when the
EMA teacher's BatchNorm statistics are trusted (``teacher_bn='auto'``)."""

import copy

import pytest
import torch
import torch.nn.functional as F
from test_algorithms import _batch, _perturb_teacher
from torch import nn

from ssvision.engine.hooks import EMATeacherHook, ema_momentum
from ssvision.models.algorithms import FixMatch
from ssvision.models.algorithms.teacher_bn import (
    steps_until_running_stats,
    teacher_steps_until_running_stats,
)

# TinyCNN has BatchNorm: batch statistics differ between one concatenated forward and
# per-view forwards, which is what the online source must reproduce.
NET = dict(type='TinyCNN', num_classes=10, in_channels=1, width=8)


def test_online_pseudo_labels_come_from_the_students_one_concatenated_forward():
    # catches: pseudo-labels from the teacher (it differs from the student here), the
    # weak view in a forward of its own (other BatchNorm batch statistics), a gradient
    # through the weak view, and a second student forward per iteration
    torch.manual_seed(0)
    model = FixMatch(model=NET, selector=dict(type='FixedThresholdSelector', threshold=0.0),
                     semi_train_cfg=dict(pseudo_label_source='online'))
    _perturb_teacher(model)
    model.train()
    data = model.data_preprocessor(_batch(), True)
    inputs = data['inputs']
    reference = copy.deepcopy(model.student).train()
    calls = []
    model.student.register_forward_hook(lambda *a: calls.append(1))
    losses = model(**data, mode='loss')
    assert len(calls) == 1

    n_sup, n_unl = len(inputs['sup']), len(inputs['unsup_teacher'])
    logits = reference(torch.cat([inputs['sup'], inputs['unsup_teacher'],
                                  inputs['unsup_student']]))
    sup, weak, strong = logits.split([n_sup, n_unl, n_unl])
    labels = weak.detach().softmax(dim=1).argmax(dim=1)
    expected = F.cross_entropy(strong, labels, reduction='none').mean()
    torch.testing.assert_close(losses['unsup_loss'], expected)
    torch.testing.assert_close(losses['sup_loss'],
                               F.cross_entropy(sup, data['data_samples']['sup']['gt_label']))
    # the student's BatchNorm buffers saw exactly that one batch
    torch.testing.assert_close(dict(model.student.named_buffers()),
                               dict(reference.named_buffers()))
    # no gradient through the weak view's logits
    (losses['unsup_loss'] + losses['sup_loss']).backward()
    model.student.zero_grad()
    weak_only = model.student(inputs['unsup_teacher'])
    assert weak_only.requires_grad  # the network itself is trainable; only the use is detached


def test_online_source_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match='look_ahead'):
        FixMatch(model=NET, semi_train_cfg=dict(pseudo_label_source='online', look_ahead=True))
    with pytest.raises(ValueError, match='pseudo_label_source'):
        FixMatch(model=NET, semi_train_cfg=dict(pseudo_label_source='ema'))


def test_unsup_loss_of_the_online_source_positive_all_selected_zero_none_selected():
    # catches: an online path that ignores the selector's weights
    for threshold, positive in ((0.0, True), (1.01, False)):
        torch.manual_seed(0)
        model = FixMatch(model=NET,
                         selector=dict(type='FixedThresholdSelector', threshold=threshold),
                         semi_train_cfg=dict(pseudo_label_source='online'))
        model.train()
        data = model.data_preprocessor(_batch(), True)
        value = model(**data, mode='loss')['unsup_loss'].item()
        assert torch.isfinite(torch.tensor(value))
        assert (value > 0) if positive else value == 0.0


def _bn(momentum):
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2, momentum=momentum))


def test_teacher_buffers_are_trusted_later_than_the_students():
    # catches: 'auto' switching by the student's buffers (29 updates at momentum 0.1),
    # when the teacher's are an average of the student's history that still holds
    # most of their start
    net = _bn(0.1)
    assert steps_until_running_stats(net) == 29
    switch = teacher_steps_until_running_stats(net, 0.999)
    # hand recursion: teacher weight of the start T, student's a = 0.9^(t+1)
    t, a = 1.0, 1.0
    for i in range(switch + 1):
        if t < 0.05:
            assert i == switch
            break
        a *= 0.9
        m = ema_momentum(i, 0.999)
        t = m * t + (1 - m) * a
    assert switch > 29
    # copied buffers follow the student exactly; DSSN's 0.996 after one copy lags more
    assert teacher_steps_until_running_stats(net, 0.999, buffers='copy') == 29
    assert (teacher_steps_until_running_stats(net, 0.996, ramp=False, copy_steps=1)
            > teacher_steps_until_running_stats(net, 0.999))
    assert teacher_steps_until_running_stats(nn.Linear(2, 2), 0.999) == 0


def test_auto_uses_batch_statistics_until_the_teachers_own_switch(monkeypatch):
    # catches: the switch taken from the student's count, or from a schedule the EMA
    # hook never told the model
    torch.manual_seed(0)
    model = FixMatch(model=NET)
    hook = EMATeacherHook(momentum=0.999)

    class _Runner:
        pass

    runner = _Runner()
    runner.model = model
    hook.before_train(runner)
    switch = model._running_stats_from
    assert switch == teacher_steps_until_running_stats(model.teacher, 0.999)
    assert switch > steps_until_running_stats(model.teacher)
    views = torch.randn(6, 1, 16, 16) * 3 + 1
    model.teacher.eval()
    running = model.teacher(views).softmax(1)
    batch = model.teacher_predict(views, switch - 1)
    assert not torch.allclose(batch, running, atol=1e-3)
    torch.testing.assert_close(model.teacher_predict(views, switch), running)


def test_copy_steps_copy_then_keep_the_momentum():
    # catches: a ramp left on after the copies, or copies counted from 1
    assert [ema_momentum(i, 0.996, ramp=False, copy_steps=1) for i in range(3)] == [
        0.0, 0.996, 0.996]
    assert ema_momentum(4, 0.996, ramp=False, copy_steps=5) == 0.0
    assert ema_momentum(5, 0.996, ramp=False, copy_steps=5) == 0.996
    with pytest.raises(ValueError, match='copy_steps'):
        EMATeacherHook(copy_steps=-1)
