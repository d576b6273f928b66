"""The three health alarms fire on runs built to trigger them, and stay quiet otherwise."""

from types import SimpleNamespace

import pytest
import torch
from mmengine.logging import MessageHub
from torch import nn

from ssvision.engine.hooks import EMATeacherHook, HealthAlarmHook
from ssvision.engine.hooks.ema_teacher_hook import ema_momentum


class _Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.student = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
        self.teacher = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))


def _runner(name, model=None):
    return SimpleNamespace(message_hub=MessageHub.get_instance(name), iter=0,
                           model=model or _Model())


def _step(hook, runner, it, outputs, labels=None):
    """One iteration as the loop runs it: RuntimeInfoHook logs the outputs first."""
    runner.iter = it
    for k, v in outputs.items():
        runner.message_hub.update_scalar(f'train/{k}', v)
    batch = {'data_samples': {'sup': {'gt_label': labels}}} if labels is not None else None
    hook.after_train_iter(runner, it, batch, outputs)


def _balanced():
    return torch.arange(10).repeat(2)


def _health(counts):
    return {**{f'sel_n_{c}': float(n) for c, n in enumerate(counts)},
            'sup_loss': 0.5, 'unsup_loss': 0.1}


def test_one_class_teacher_fires_on_a_balanced_labeled_set(caplog):
    # A teacher that puts 95 % of its kept labels into class 3 while the labeled set is
    # balanced (the WRN collapse). Catches an alarm that never looks at the per-class
    # counts, or compares the wrong window.
    hook = HealthAlarmHook(interval=10)
    runner = _runner('alarm_collapse')
    healthy = [10] * 10
    for it in range(10):  # too few kept labels to judge
        _step(hook, runner, it, _health([0, 0, 0, 9, 0, 0, 0, 0, 0, 0]), _balanced())
    for it in range(10, 20):
        _step(hook, runner, it, _health(healthy), _balanced())
    assert hook.fired == []
    collapsed = [1] * 10
    collapsed[3] = 190
    for it in range(20, 30):
        _step(hook, runner, it, _health(collapsed), _balanced())
    assert hook.fired == [('collapse', 30)]
    assert runner.message_hub.get_scalar('train/alarm_collapse').current() == 1.0
    # still holding: no second warning; after recovery and a new collapse: a new one
    for it in range(30, 40):
        _step(hook, runner, it, _health(collapsed), _balanced())
    for it in range(40, 50):
        _step(hook, runner, it, _health(healthy), _balanced())
    for it in range(50, 60):
        _step(hook, runner, it, _health(collapsed), _balanced())
    assert hook.fired == [('collapse', 30), ('collapse', 60)]


def test_dominant_class_that_the_labels_share_is_not_a_collapse():
    # A dense task whose labeled pixels are 95 % background: 96 % background
    # pseudo-labels are normal. Catches a fixed 90 % rule that ignores the labeled prior.
    hook = HealthAlarmHook(interval=5)
    runner = _runner('alarm_prior')
    seg = torch.zeros(2, 10, 10, dtype=torch.long)
    seg[:, :1, :] = 1
    seg[0, 0, 0] = 255  # ignore pixels are no class
    for it in range(10):
        runner.iter = it
        runner.message_hub.update_scalar('train/sel_n_0', 960.0)
        runner.message_hub.update_scalar('train/sel_n_1', 40.0)
        runner.message_hub.update_scalar('train/sup_loss', 0.3)
        hook.after_train_iter(runner, it, {'data_samples': {'sup': {'gt_seg': seg}}},
                              {'unsup_loss': 0.1, 'sup_loss': 0.3})
    assert hook.fired == []
    # ... but a teacher that keeps only background there is one
    for it in range(10, 15):
        _step(hook, runner, it, {'sel_n_0': 1000.0, 'sel_n_1': 0.0, 'sup_loss': 0.3,
                                 'unsup_loss': 0.1})
    assert [name for name, _ in hook.fired] == ['collapse']


def test_supervised_loss_growth_fires_after_the_unlabeled_loss_starts():
    # DSSN's Siamese head on a binary task drove sup_loss from ~1 to ~3. Catches an
    # alarm whose baseline includes the burn-in or the untrained start.
    hook = HealthAlarmHook(interval=10)
    runner = _runner('alarm_sup')
    for it in range(20):  # burn-in: high then falling supervised loss, no unsup loss
        _step(hook, runner, it, {'sup_loss': 5.0 - 0.2 * it})
    for it in range(20, 40):
        _step(hook, runner, it, {'sup_loss': 1.0, 'unsup_loss': 0.5})
    assert hook.fired == []
    for it in range(40, 50):
        _step(hook, runner, it, {'sup_loss': 3.2, 'unsup_loss': 0.5})
    assert hook.fired == [('sup_loss_growth', 50)]


def test_small_loss_noise_is_not_growth():
    hook = HealthAlarmHook(interval=10)
    runner = _runner('alarm_small')
    for it in range(30):
        _step(hook, runner, it, {'sup_loss': 0.01 if it < 20 else 0.05, 'unsup_loss': 0.1})
    assert hook.fired == []
    for it in range(30, 40):
        _step(hook, runner, it, {'sup_loss': float('nan'), 'unsup_loss': 0.1})
    assert hook.fired == [('sup_loss_growth', 40)]


def test_teacher_equal_to_student_fires_only_after_an_averaging_update():
    # Catches the look-ahead reset (the teacher a copy of the student) going unnoticed;
    # the ramp's first update copies the student on purpose and must stay quiet.
    model = _Model()
    hook = HealthAlarmHook(interval=1)
    runner = _runner('alarm_teacher', model)
    model.teacher.load_state_dict(model.student.state_dict())
    _step(hook, runner, 0, {'ema_momentum': ema_momentum(0, 0.99), 'sup_loss': 1.0})
    assert hook.fired == []
    _step(hook, runner, 1, {'ema_momentum': 0.5, 'sup_loss': 1.0})
    assert hook.fired == [('teacher_is_student', 2)]
    with torch.no_grad():
        model.teacher[0].weight.add_(1e-3)
    _step(hook, runner, 2, {'ema_momentum': 0.5, 'sup_loss': 1.0})
    assert runner.message_hub.get_scalar('train/alarm_teacher_is_student').current() == 0.0


def test_alarm_arguments_are_checked():
    with pytest.raises(ValueError, match='interval'):
        HealthAlarmHook(interval=0)
    with pytest.raises(ValueError, match='collapse_share'):
        HealthAlarmHook(collapse_share=0.3)
    with pytest.raises(ValueError, match='sup_loss_factor'):
        HealthAlarmHook(sup_loss_factor=1.0)


def test_ema_hook_interval_and_momentum_schedule():
    # Catches an update on every iteration despite interval=3, or a ramp counted in
    # iterations instead of updates (the teacher would lag three times less).
    model = _Model()
    runner = _runner('ema_schedule', model)
    hook = EMATeacherHook(momentum=0.9, interval=3)
    hook.before_train(runner)
    with torch.no_grad():
        model.teacher[0].weight.fill_(0.0)
    seen = []
    for it in range(9):
        with torch.no_grad():
            model.student[0].weight.fill_(it + 1.0)
        runner.iter = it
        hook.before_train_iter(runner, it)
        seen.append(model.next_ema_momentum)
        before = model.teacher[0].weight.clone()
        hook.after_train_iter(runner, it)
        changed = not torch.equal(before, model.teacher[0].weight)
        assert changed == ((it + 1) % 3 == 0), it
    # updates 0, 1, 2 happen after iterations 2, 5, 8 with m = 0, 1/2, 2/3
    assert seen == [None, None, 0.0, None, None, 0.5, None, None, pytest.approx(2 / 3)]
    # teacher: 3 (copy), 0.5 * 3 + 0.5 * 6 = 4.5, 2/3 * 4.5 + 1/3 * 9 = 6
    assert torch.allclose(model.teacher[0].weight, torch.full((3, 3), 6.0))
    assert runner.message_hub.get_scalar('train/ema_momentum').current() == pytest.approx(2 / 3)


def test_bn_recalibration_replaces_lagging_running_statistics():
    # BN momentum 0.001 leaves running stats near (0, 1) while the data sit at mean 5,
    # std 2. Catches a recalibration that keeps the old buffers in its average, or one
    # that switches dropout on / leaves BN in training mode.
    from ssvision.engine.hooks import recalibrate_bn
    torch.manual_seed(0)
    net = nn.Sequential(nn.BatchNorm1d(4, momentum=0.001), nn.Dropout(0.5))
    net.eval()
    batches = [torch.randn(64, 4) * 2 + 5 for _ in range(4)]
    assert recalibrate_bn(net, batches) == 1
    data = torch.cat(batches)
    assert torch.allclose(net[0].running_mean, data.mean(0), atol=1e-5)
    expected_var = torch.stack([b.var(0, unbiased=True) for b in batches]).mean(0)
    assert torch.allclose(net[0].running_var, expected_var, atol=1e-4)
    assert net[0].momentum == 0.001 and not net[0].training and not net[1].training
    assert recalibrate_bn(nn.Linear(2, 2), batches) == 0


def _predictions(shares, conf, n=200):
    """One iteration's health figures: the teacher labels n unlabeled samples with the
    class shares ``shares`` at mean confidence ``conf``."""
    out = {f'pl_n_{c}': float(round(n * s)) for c, s in enumerate(shares)}
    out.update({'teacher_conf': conf, 'sup_loss': 0.5, 'unsup_loss': 0.1})
    return out


def test_drift_fires_when_the_teacher_grows_surer_of_fewer_classes():
    # The WRN digits run: the teacher's predictions drain from the hard classes into the
    # easy ones (1, 3, 7, 8) while its confidence rises. Catches an alarm that needs a
    # single dominant class (the collapse alarm stays quiet here: the top class holds
    # 25 %) or one that reads the kept labels only.
    hook = HealthAlarmHook(interval=10)
    runner = _runner('alarm_drift')
    uniform = [0.1] * 10
    for it in range(30):  # learning: the distribution approaches the balanced labels
        spread = max(0.0, 0.3 - 0.01 * it)
        shares = [0.1 + spread * (0.9 if c == 0 else -0.1) for c in range(10)]
        _step(hook, runner, it, _predictions(shares, 0.5 + 0.005 * it), _balanced())
    assert hook.fired == []
    easy = [0.02, 0.23, 0.02, 0.23, 0.02, 0.02, 0.02, 0.23, 0.19, 0.02]
    for it in range(30, 60):  # drift: mass moves to the easy classes, confidence rises
        a = min(1.0, (it - 30) / 20)
        shares = [(1 - a) * u + a * e for u, e in zip(uniform, easy)]
        _step(hook, runner, it, _predictions(shares, 0.65 + 0.004 * (it - 30)), _balanced())
    assert [name for name, _ in hook.fired] == ['drift']
    assert hook.fired[0][1] in (50, 60)


def test_drift_stays_quiet_on_a_learning_teacher_and_on_an_unsure_one():
    # catches: an alarm on any change of the distribution (a teacher that moves towards
    # the labeled prior while growing surer is learning), and one that ignores the
    # confidence (a teacher drifting while it grows less sure is not confirmation bias)
    hook = HealthAlarmHook(interval=10)
    runner = _runner('alarm_drift_quiet')
    for it in range(60):
        spread = max(0.0, 0.5 - 0.01 * it)
        shares = [0.1 + spread * (0.9 if c == 0 else -0.1) for c in range(10)]
        _step(hook, runner, it, _predictions(shares, 0.4 + 0.005 * it), _balanced())
    hook2 = HealthAlarmHook(interval=10)
    runner2 = _runner('alarm_drift_unsure')
    easy = [0.02, 0.23, 0.02, 0.23, 0.02, 0.02, 0.02, 0.23, 0.19, 0.02]
    for it in range(60):
        a = min(1.0, it / 40)
        shares = [(1 - a) * 0.1 + a * e for e in easy]
        _step(hook2, runner2, it, _predictions(shares, 0.8 - 0.004 * it), _balanced())
    assert hook.fired == [] and hook2.fired == []
