"""UDA, ShrinkMatch, LoRot and FST-D / FST-W on the shared recipe, on real digits.

Every test starts where a wrong implementation diverges: the teacher differs from the
student, BatchNorm is in training mode and the digits' classes come in unequal numbers.
"""

import copy
import math

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper
from sklearn.datasets import load_digits

from ssvision.engine.hooks.ema_teacher_hook import ema_update
from ssvision.models.algorithms import UDA, FixMatch, ShrinkMatch
from ssvision.models.algorithms.uda import tsa_threshold
from ssvision.models.heads import (
    AuxContext,
    ClassSpaceShrinkHead,
    LocalRotationHead,
    rotate_patches,
    shrink_class_space,
)

NET = dict(type='TinyCNN', num_classes=10, in_channels=1, width=8)
LR = 0.1


def _digits(n, offset=0):
    d = load_digits()
    imgs = np.stack([cv2.resize((img * 16).clip(0, 255).astype(np.uint8), (16, 16),
                                interpolation=cv2.INTER_LINEAR)
                     for img in d.images[offset:offset + n]])
    return torch.from_numpy(imgs)[:, None], torch.from_numpy(d.target[offset:offset + n])


def _batch(b=4, mu=2, sup_labels=None):
    # 4 labeled digits of classes 0-3 and 8 unlabeled ones of 6 classes (unequal counts)
    sup, sup_y = _digits(b)
    unl, unl_y = _digits(b * mu, offset=100)
    return {
        'inputs': {'sup': sup, 'unsup_teacher': unl,
                   'unsup_student': torch.flip(unl, dims=[3]),
                   'unsup_student2': torch.roll(unl, shifts=2, dims=2)},
        'data_samples': {
            'sup': {'gt_label': sup_y if sup_labels is None else sup_labels},
            'unsup_teacher': {'gt_label': torch.full_like(unl_y, -1), 'true_label': unl_y,
                              'sample_idx': torch.arange(len(unl_y))},
            'unsup_student': {'gt_label': torch.full_like(unl_y, -1), 'true_label': unl_y},
        },
    }


def _perturb_teacher(model, scale=0.3):
    with torch.no_grad():
        for p in model.teacher.parameters():
            p.add_(scale * torch.randn_like(p))
        for m in model.teacher.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.add_(0.2)


def _losses(model, batch):
    return model(**model.data_preprocessor(batch, True), mode='loss')


class _Iter:
    """Set mmengine's current iteration for a block (restored afterwards)."""

    def __init__(self, it):
        self.it, self.hub = it, MessageHub.get_current_instance()

    def __enter__(self):
        self.old = self.hub.get_info('iter', 0)
        self.hub.update_info('iter', self.it)

    def __exit__(self, *exc):
        self.hub.update_info('iter', self.old)


# ---------------------------------------------------------------------------- UDA
def test_uda_loss_positive_when_all_confident_and_exactly_zero_when_none():
    # Catches a mask that is ignored (or applied after averaging into a nonzero mean)
    # and a target read from the student itself (KL 0 for a teacher equal to it).
    torch.manual_seed(0)
    batch = _batch()
    for threshold, positive in ((0.0, True), (1.01, False)):
        model = UDA(model=NET, selector=dict(type='FixedThresholdSelector',
                                             threshold=threshold))
        _perturb_teacher(model)
        model.train()
        losses = _losses(model, batch)
        assert math.isfinite(losses['unsup_loss'].item())
        if positive:
            assert losses['unsup_loss'].item() > 0 and losses['sel_frac'].item() == 1.0
            losses['unsup_loss'].backward()
            assert any(p.grad is not None and p.grad.abs().sum() > 0
                       for p in model.student.parameters())
        else:  # nothing above the confidence mask
            assert losses['unsup_loss'].item() == 0.0 and losses['sel_frac'].item() == 0.0


def test_uda_loss_equals_hand_computed_masked_kl_of_sharpened_targets():
    # Catches: sharpening the student instead of the target, KL in the wrong direction,
    # masking on the sharpened (not the raw) confidence, dividing by the number kept.
    torch.manual_seed(1)
    model = UDA(model=NET, semi_train_cfg=dict(student_forward='separate',
                                               teacher_bn='running'))
    _perturb_teacher(model, scale=0.5)
    model.train()
    data = model.data_preprocessor(_batch(), True)
    weak, strong = data['inputs']['unsup_teacher'], data['inputs']['unsup_student']
    with torch.no_grad():
        z = model.teacher(weak)
        conf = z.softmax(1).max(1).values
    # a threshold between the raw confidences: some samples pass, some do not, and
    # more would pass on the sharpened confidences
    threshold = conf.sort().values[len(conf) // 2].item()
    model.selector.threshold = threshold
    losses = model(**data, mode='loss')
    with torch.no_grad():
        q, logq = F.softmax(z / 0.4, dim=1), F.log_softmax(z / 0.4, dim=1)
        mask = (conf >= threshold).float()
        logp = F.log_softmax(model.student(strong), dim=1)
        expected = (mask * (q * (logq - logp)).sum(1)).sum() / len(mask)
    assert 0 < mask.sum() < len(mask)
    assert (F.softmax(z / 0.4, 1).max(1).values >= threshold).sum() > mask.sum()
    assert losses['unsup_loss'].item() == pytest.approx(expected.item(), rel=1e-5)


def test_tsa_threshold_schedules_by_hand():
    k = 10
    assert tsa_threshold('none', 0.3, k) == 1.0
    assert tsa_threshold('linear', 0.5, k) == pytest.approx(0.5 * 0.9 + 0.1)
    assert tsa_threshold('exp', 0.0, k) == pytest.approx(math.exp(-5) * 0.9 + 0.1)
    assert tsa_threshold('log', 1.0, k) == pytest.approx((1 - math.exp(-5)) * 0.9 + 0.1)
    assert tsa_threshold('log', 2.0, k) == tsa_threshold('log', 1.0, k)  # clipped
    with pytest.raises(ValueError):
        tsa_threshold('cosine', 0.5, k)


def test_uda_tsa_leaves_out_labeled_samples_above_the_annealed_threshold():
    # Catches: thresholding the top probability instead of the true class's, keeping
    # samples above the threshold instead of below, and dividing by N instead of the
    # number kept (UDA's normalisation).
    torch.manual_seed(2)
    model = UDA(model=NET, semi_train_cfg=dict(tsa='linear', tsa_iters=1000,
                                               student_forward='separate'))
    with torch.no_grad():
        model.student.head.weight.mul_(30.0)  # spread the labeled probabilities
    model.train()
    batch = _batch(b=8, mu=1)
    data = model.data_preprocessor(batch, True)
    with torch.no_grad():
        logits = model.student(data['inputs']['sup'])
    y = data['data_samples']['sup']['gt_label']
    p_true = logits.softmax(1).gather(1, y[:, None])[:, 0]
    top = logits.softmax(1).max(1).values
    # the iteration whose linear threshold falls between the true-class probabilities
    target = p_true.sort().values[len(p_true) // 2].item()
    it = int(round((target - 0.1) / 0.9 * 1000))
    thr = tsa_threshold('linear', it / 1000, 10)
    keep = (p_true <= thr).float()
    assert 0 < keep.sum() < len(keep)
    assert not torch.equal(keep, (top <= thr).float())
    with _Iter(it):
        losses = model(**data, mode='loss')
    with torch.no_grad():
        ce = F.cross_entropy(model.student(data['inputs']['sup']), y, reduction='none')
    assert losses['sup_loss'].item() == pytest.approx(((ce * keep).sum() / keep.sum()).item(),
                                                      rel=1e-5)
    assert losses['sup_tsa_frac'].item() == pytest.approx(keep.mean().item())
    assert losses['sup_tsa_thr'].item() == pytest.approx(thr)


def test_uda_tsa_with_every_labeled_sample_confident_gives_exactly_zero():
    torch.manual_seed(3)
    model = UDA(model=NET, semi_train_cfg=dict(tsa='exp', tsa_iters=100))
    with torch.no_grad():
        model.student.head.weight.mul_(50.0)
    model.train()
    batch = _batch()
    data = model.data_preprocessor(batch, True)
    with torch.no_grad():
        pred = model.student(torch.cat([data['inputs']['sup'],
                                        data['inputs']['unsup_student']]))[:4].argmax(1)
    batch['data_samples']['sup']['gt_label'] = pred  # labels the student is sure of
    losses = _losses(model, batch)
    assert losses['sup_loss'].item() == 0.0 and losses['sup_tsa_frac'].item() == 0.0
    # no TSA: the task's plain cross entropy, no TSA figures
    plain = UDA(model=NET)
    assert 'sup_tsa_frac' not in _losses(plain, _batch())
    with pytest.raises(ValueError):
        UDA(model=NET, semi_train_cfg=dict(tsa='cosine'))


# ---------------------------------------------------------------------- ShrinkMatch
PROBS = torch.tensor([
    [0.02, 0.96, 0.01, 0.005, 0.005],  # confident: the selector keeps it
    [0.05, 0.50, 0.30, 0.10, 0.05],    # shrinks: drop classes 2 and 3 -> 0.5/0.6
    [0.30, 0.29, 0.21, 0.11, 0.09],    # best shrink 0.30/0.39 < 0.8: cannot
])


def test_shrink_class_space_removes_the_confusing_classes_by_hand():
    # Catches: removing the least likely classes (the space must keep them), stopping
    # at the first removal, and accepting a space that misses the threshold.
    keep, ok, removed = shrink_class_space(PROBS, threshold=0.8)
    assert ok.tolist() == [True, True, False]
    # row 0: 0.96 / (0.96 + 0.005 + 0.005 + 0.01) >= 0.8 after removing class 0
    assert keep[0].tolist() == [False, True, True, True, True]
    assert keep[1].tolist() == [True, True, False, False, True]
    assert keep[2].all() and removed.tolist() == [1, 2, 0]
    keep, ok, _ = shrink_class_space(PROBS[:, :2] / PROBS[:, :2].sum(1, keepdim=True), 0.5)
    assert not ok.any()  # two classes cannot shrink


def test_shrink_head_loss_equals_hand_computed_value():
    # Catches: weighting by the shrunk confidence instead of the original one,
    # dividing by the number of uncertain samples, training selected samples too,
    # and forgetting the certain-ratio factor.
    torch.manual_seed(4)
    head = ClassSpaceShrinkHead(threshold=0.8, mlp=False)
    head.train()
    logits = torch.randn(3, 5, requires_grad=True)
    weight = torch.tensor([1.0, 0.0, 0.0])
    ctx = AuxContext(student=None, teacher=None, task=None, inputs={},
                     data_samples={}, logits={'sup': torch.zeros(2, 5),
                                              'unsup_student': logits},
                     probs=PROBS, labels=PROBS.argmax(1), weight=weight)
    out = head.loss(ctx)
    z = logits.detach()
    r = 1.0 / 3.0  # the first batch sets the certain ratio: one of three selected
    expected = r * 0.50 * (torch.logsumexp(z[1, [0, 1, 4]], 0) - z[1, 1]) / 3
    assert out['aux_shrink_loss'].item() == pytest.approx(expected.item(), rel=1e-5)
    assert out['aux_shrink_frac'].item() == pytest.approx(1 / 3)
    assert out['aux_shrink_removed'].item() == 2.0
    assert head.certain_ratio.item() == pytest.approx(r)
    out['aux_shrink_loss'].backward()
    assert logits.grad[1, [2, 3]].abs().sum() == 0  # removed classes get no gradient
    assert logits.grad[[0, 2]].abs().sum() == 0
    # the ratio is an exponential moving average with momentum 0.999
    head.loss(AuxContext(**{**ctx.__dict__, 'weight': torch.ones(3)}))
    assert head.certain_ratio.item() == pytest.approx(0.999 * r + 0.001 * 1.0)
    head.eval()  # evaluation reads it only
    head.loss(ctx)
    assert head.certain_ratio.item() == pytest.approx(0.999 * r + 0.001 * 1.0)


def test_shrinkmatch_all_selected_none_selected_and_nothing_shrinkable():
    # Catches shrinking selected samples, a shrink loss that ignores the certain ratio,
    # one that trains unreachable spaces anyway, and a head cut off from the backbone.
    torch.manual_seed(5)
    batch = _batch()

    def build(threshold, shrink):
        model = ShrinkMatch(model=NET, selector=dict(type='FixedThresholdSelector',
                                                     threshold=threshold),
                            shrink_head=dict(threshold=shrink))
        _perturb_teacher(model)
        model.train()
        return model

    # everything selected: FixMatch's loss > 0, no uncertain sample to shrink
    losses = _losses(build(0.0, 0.95), batch)
    assert losses['unsup_loss'].item() > 0 and losses['aux_shrink_loss'].item() == 0.0
    # nothing selected: FixMatch's loss is 0, and so is the shrink loss while the
    # certain ratio (selected fraction so far) is 0
    model = build(1.01, 0.3)
    losses = _losses(model, batch)
    assert losses['unsup_loss'].item() == 0.0 and losses['aux_shrink_loss'].item() == 0.0
    assert losses['aux_shrink_frac'].item() > 0
    # once some samples were certain, the uncertain ones train on shrunk spaces
    model.aux_heads[0].certain_ratio.fill_(0.5)
    losses = _losses(model, batch)
    loss = losses['aux_shrink_loss']
    assert math.isfinite(loss.item()) and loss.item() > 0
    loss.backward()
    assert model.aux_heads[0].mlp[0].weight.grad.abs().sum() > 0
    assert model.student.stages[0][0][0].weight.grad.abs().sum() > 0
    # no shrunk space can make the top class confident: exactly 0
    model = build(1.01, 1.01)
    model.aux_heads[0].certain_ratio.fill_(0.5)
    losses = _losses(model, batch)
    assert losses['aux_shrink_loss'].item() == 0.0 and losses['aux_shrink_frac'].item() == 0


# --------------------------------------------------------------------------- LoRot
def test_rotate_patches_turns_only_the_chosen_quadrant_counter_clockwise():
    # Catches a clockwise turn, transposed quadrant coordinates and in-place edits.
    img = torch.arange(16.0).reshape(1, 1, 4, 4)
    one = torch.ones(1, dtype=torch.long)
    # top-right quadrant [[2, 3], [6, 7]] turned 90 degrees counter-clockwise
    out = rotate_patches(img, 0 * one, 2 * one, 2 * one, one)
    expected = torch.tensor([[0., 1., 3., 7.], [4., 5., 2., 6.],
                             [8., 9., 10., 11.], [12., 13., 14., 15.]])
    assert torch.equal(out[0, 0], expected)
    assert torch.equal(rotate_patches(img, 0 * one, 2 * one, 2 * one, 0 * one), img)
    assert torch.equal(img[0, 0], torch.arange(16.0).reshape(4, 4))  # input untouched


def test_lorot_e_labels_name_quadrant_and_rotation():
    # Catches a label order (4 k + q) or quadrant order that disagrees with the geometry.
    torch.manual_seed(6)
    head = LocalRotationHead(variant='E', in_features=4)
    top, left, size, k, label = head.sample(400, 9, 12, 'cpu')
    assert (size == 4).all() and set(label.tolist()) == set(range(16))
    q = label // 4
    assert torch.equal(k, label % 4)
    assert torch.equal(top, torch.where(q >= 2, 9 - size, 0 * size))
    assert torch.equal(left, torch.where(q % 2 == 1, 12 - size, 0 * size))
    head = LocalRotationHead(variant='I', in_features=4)
    top, left, size, k, label = head.sample(400, 32, 32, 'cpu')
    assert torch.equal(label, k) and label.max() == 3
    assert size.min() >= 2 and size.max() <= 16
    assert (top + size <= 32).all() and (left + size <= 32).all()


def test_lorot_loss_equals_hand_computed_value():
    # Catches: rotating the whole image, turning clockwise, a head that reads the
    # unrotated images, and labels that ignore the quadrant.
    torch.manual_seed(7)
    model = FixMatch(model=NET, aux_heads=[dict(type='LocalRotationHead', views=('sup',))])
    model.train()
    head = model.aux_heads[0]
    x = model.data_preprocessor(_batch(), True)['inputs']['sup']
    q = torch.tensor([0, 1, 2, 3])
    k = torch.tensor([1, 2, 3, 0])
    s = torch.full((4,), 8)
    top, left = torch.tensor([0, 0, 8, 8]), torch.tensor([0, 8, 0, 8])
    head.sample = lambda n, h, w, device: (top, left, s, k, 4 * q + k)
    ctx = AuxContext(student=model.student, teacher=model.teacher, task=model.task,
                     inputs={'sup': x}, data_samples={}, logits={'sup': x.new_zeros(4, 10)})
    out = head.loss(ctx)
    by_hand = x.clone()
    for i in range(4):
        patch = x[i, :, top[i]:top[i] + 8, left[i]:left[i] + 8]
        for _ in range(int(k[i])):  # one counter-clockwise quarter turn
            patch = patch.transpose(-1, -2).flip(-2)
        by_hand[i, :, top[i]:top[i] + 8, left[i]:left[i] + 8] = patch
    with torch.no_grad():
        logits = head.classifier(model.student.extract_feat(by_hand))
        expected = 0.1 * F.cross_entropy(logits, 4 * q + k)
    assert out['aux_lorot_loss'].item() == pytest.approx(expected.item(), rel=1e-5)


def test_lorot_nothing_rotated_gives_exactly_zero_and_trains_in_the_recipe():
    # Catches a NaN (mean over no image) or a missing key when nothing is rotated, and
    # a head whose loss does not reach the student's backbone.
    torch.manual_seed(8)
    head = LocalRotationHead(views=('unsup_teacher',), in_features=32)
    zeros = torch.zeros(2, 10)
    for inputs in ({}, {'unsup_teacher': torch.zeros(0, 1, 16, 16)}):
        out = head.loss(AuxContext(student=None, teacher=None, task=None, inputs=inputs,
                                   data_samples={}, logits={'sup': zeros}))
        assert out['aux_lorot_loss'].item() == 0.0
        out['aux_lorot_loss'].backward()  # keeps the classifier in the graph
    model = FixMatch(model=NET, aux_heads=[dict(type='LocalRotationHead',
                                                views=('sup', 'unsup_teacher'))])
    _perturb_teacher(model)
    model.train()
    losses = _losses(model, _batch())
    loss = losses['aux_lorot_loss']
    assert math.isfinite(loss.item()) and loss.item() > 0
    loss.backward()
    assert model.aux_heads[0].classifier.weight.grad.abs().sum() > 0
    assert model.student.stages[0][0][0].weight.grad.abs().sum() > 0


# ------------------------------------------------------------------ FST-D / FST-W
M = 0.5


def _fst_model(**cfg):
    torch.manual_seed(9)
    model = FixMatch(model=NET, selector=dict(type='FixedThresholdSelector', threshold=0.0),
                     semi_train_cfg=dict(look_ahead=True, **cfg))
    _perturb_teacher(model)
    model.train()
    model.next_ema_momentum = M
    return model


def _opt(model):
    return OptimWrapper(torch.optim.SGD(model.student.parameters(), lr=LR, momentum=0.9))


def _virtual(net, batch, optimizer):
    losses = net(**net.data_preprocessor(batch, True), mode='loss')
    parsed, _ = net.parse_losses(losses)
    optimizer.zero_grad()
    parsed.backward()
    optimizer.step()


def _real(model, future_state, batch):
    """The student after one real step with pseudo-labels from ``future_state``."""
    real = copy.deepcopy(model)
    real.teacher.load_state_dict(future_state)
    opt = _opt(real)
    losses = real(**real.data_preprocessor(batch, True), mode='loss')
    opt.update_params(real.parse_losses(losses)[0])
    return real.student.state_dict()


def _reference_deeper(model, batch, steps):
    """Look-ahead by hand: ``steps`` virtual steps in a row, each after the first with
    pseudo-labels from the future teacher so far, then the real step."""
    virt = copy.deepcopy(model)
    opt = torch.optim.SGD(virt.student.parameters(), lr=LR, momentum=0.9)
    future = copy.deepcopy(model.teacher)
    for _ in range(steps):
        _virtual(virt, batch, opt)
        ema_update(future, virt.student, M)
        virt.teacher.load_state_dict(future.state_dict())
    return future.state_dict(), _real(model, future.state_dict(), batch)


def _f(value):
    return float(value.detach()) if isinstance(value, torch.Tensor) else float(value)


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize('cfg', [{}, {'look_ahead_steps': 1}, {'look_ahead_width': 1}])
def test_one_step_look_ahead_is_the_existing_look_ahead_bit_for_bit(cfg):
    # The reference is the one-step look-ahead as it was (virtual step with the teacher,
    # future teacher by EMA, restore, real step); catches any drift of the default.
    model = _fst_model(**cfg)
    batch = _batch()
    future, student = _reference_deeper(model, batch, steps=1)
    teacher = copy.deepcopy(model.teacher.state_dict())
    model.train_step(batch, _opt(model))
    assert _same(model.look_ahead.future.state_dict(), future)
    assert _same(model.student.state_dict(), student)
    assert _same(model.teacher.state_dict(), teacher)


def test_fst_d_takes_k_virtual_steps_and_keeps_the_teacher():
    # Catches: a second virtual step with the old teacher, virtual steps that reset the
    # optimizer in between (or a real step that keeps their momentum), and a look-ahead
    # that resets the teacher to the student (the teacher starts away from the student,
    # so the reset cannot pass unseen).
    model = _fst_model(look_ahead_steps=2)
    batch = _batch()
    future, student = _reference_deeper(model, batch, steps=2)
    future_k1, student_k1 = _reference_deeper(model, batch, steps=1)
    teacher = copy.deepcopy(model.teacher.state_dict())
    assert not _same(teacher, model.student.state_dict())
    opt = _opt(model)
    log = model.train_step(batch, opt)
    assert math.isfinite(_f(log['unsup_loss'])) and _f(log['unsup_loss']) > 0
    assert _same(model.look_ahead.future.state_dict(), future)
    assert _same(model.student.state_dict(), student)
    assert not _same(future, future_k1) and not _same(student, student_k1)
    assert _same(model.teacher.state_dict(), teacher)  # only the EMA hook moves it
    assert opt._inner_count == 1
    ema_update(model.teacher, model.student, M)  # the hook's update after the step
    assert not _same(model.teacher.state_dict(), model.student.state_dict())


def _slice(batch, index):
    out = copy.deepcopy(batch)
    for part in ('inputs', 'data_samples'):
        for view, value in out[part].items():
            if view.startswith('unsup'):
                out[part][view] = (value[index] if isinstance(value, torch.Tensor)
                                   else {k: v[index] for k, v in value.items()})
    return out


def test_fst_w_averages_virtual_students_from_slices_of_the_unlabeled_batch():
    # Catches: virtual students that continue from each other (no restore in between),
    # students trained on the whole batch, and a soup that is not a plain mean.
    model = _fst_model(look_ahead_width=2)
    batch = _batch()
    students = []
    for index in (slice(0, 4), slice(4, 8)):
        virt = copy.deepcopy(model)
        _virtual(virt, _slice(batch, index),
                 torch.optim.SGD(virt.student.parameters(), lr=LR, momentum=0.9))
        students.append(virt.student)
    soup = copy.deepcopy(model.student)
    a, b = students[0].state_dict(), students[1].state_dict()
    soup.load_state_dict({k: (a[k] + b[k]) / 2 if a[k].is_floating_point() else b[k]
                          for k in a})
    future = copy.deepcopy(model.teacher)
    ema_update(future, soup, M)
    student = _real(model, future.state_dict(), batch)
    future_k1, _ = _reference_deeper(model, batch, steps=1)
    teacher = copy.deepcopy(model.teacher.state_dict())
    model.train_step(batch, _opt(model))
    assert _same(model.look_ahead.future.state_dict(), future.state_dict())
    assert not _same(future.state_dict(), future_k1)
    assert _same(model.student.state_dict(), student)
    assert _same(model.teacher.state_dict(), teacher)


@pytest.mark.parametrize('cfg', [{'look_ahead_steps': 3}, {'look_ahead_width': 3}])
def test_fst_unsup_loss_positive_when_all_selected_and_zero_when_none(cfg):
    # Catches a real step whose pseudo-labels skip the selector (FST-W's slices, FST-D's
    # later teachers).
    for threshold in (0.0, 1.01):
        model = _fst_model(**cfg)
        model.selector.threshold = threshold
        log = model.train_step(_batch(), _opt(model))
        assert math.isfinite(_f(log['unsup_loss']))
        assert (_f(log['unsup_loss']) > 0) == (threshold == 0.0)
        assert (_f(log['unsup_loss']) == 0.0) == (threshold > 1)


def test_fst_knobs_are_checked():
    for cfg in ({'look_ahead_steps': 0}, {'look_ahead_width': 1.5},
                {'look_ahead_steps': 2, 'look_ahead_width': 2}):
        with pytest.raises(ValueError):
            FixMatch(model=NET, semi_train_cfg=dict(look_ahead=True, **cfg))
