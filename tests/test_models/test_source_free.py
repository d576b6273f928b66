"""Source-free detection (no labeled batch) and WSCoL's weak-to-strong instance contrast."""

import math

import pytest
import torch
import torch.nn.functional as F

from ssvision.models.algorithms import SemiDetector
from ssvision.models.heads import WeakStrongContrastHead
from ssvision.structures import DetInstances

SIZE = 64
pytestmark = pytest.mark.usefixtures('one_thread')


def _detector(**kw):
    return dict(type='TorchvisionDetector', arch='retinanet', backbone='resnet18', num_classes=3,
                min_size=SIZE, max_size=SIZE, anchor_sizes=(8, 16, 32, 64, 128),
                score_thresh=0.0, detections_per_img=20, **kw)


def _batch(n=2):
    g = torch.Generator().manual_seed(0)
    img = lambda: [torch.randint(0, 256, (3, SIZE, SIZE), generator=g, dtype=torch.uint8)  # noqa: E731
                   for _ in range(n)]
    eye = torch.eye(3).expand(n, 3, 3).clone()
    shift = eye.clone()
    shift[:, 0, 2] = 3.0  # the student's view is 3 px right of the teacher's
    return {'inputs': {'unsup_teacher': img(), 'unsup_student': img()},
            'data_samples': {'unsup_teacher': {'homography': eye},
                             'unsup_student': {'homography': shift}}}


def _model(threshold=0.0, heads=None, trained=True):
    torch.manual_seed(0)
    model = SemiDetector(detector=_detector(),
                         selector=dict(type='FixedScoreBoxSelector', threshold=threshold),
                         semi_train_cfg=dict(source_free=True, reg_uncertainty=None),
                         aux_heads=heads)
    if trained:  # stands for load_from: the weights differ from the random build
        with torch.no_grad():
            first = next(model.student.parameters())
            first.add_(1e-4 * torch.randn_like(first))
            model.teacher.load_state_dict(model.student.state_dict())
    model.train()
    return model


def test_source_free_refuses_a_random_start_and_a_labeled_batch():
    # Catches adapting a detector nothing was loaded into (a random teacher adapts
    # nothing) and a config that still feeds labeled images.
    model = _model(trained=False)
    data = model.data_preprocessor(_batch(), True)
    with pytest.raises(RuntimeError, match='random initialisation'):
        model(**data, mode='loss')
    model = _model()
    bad = _batch()
    bad['inputs']['sup'] = bad['inputs']['unsup_teacher']
    bad['data_samples']['sup'] = {'gt_instances': [DetInstances([[1, 1, 9, 9]], [0])] * 2}
    with pytest.raises(ValueError, match='labeled view'):
        model(**model.data_preprocessor(bad, True), mode='loss')
    with pytest.raises(ValueError, match='box selector'):
        SemiDetector(detector=_detector(), selector=None,
                     semi_train_cfg=dict(source_free=True))


@pytest.mark.parametrize('threshold,positive', [(0.0, True), (1.01, False)])
def test_source_free_step_trains_on_pseudo_boxes_only(threshold, positive):
    model = _model(threshold)
    losses = model(**model.data_preprocessor(_batch(), True), mode='loss')
    assert losses['sup_loss'].item() == 0.0  # no labels at all
    u = losses['unsup_loss_cls'] + losses['unsup_loss_reg']
    assert math.isfinite(u.item())
    if not positive:
        assert u.item() == 0.0
        return
    assert u.item() > 0
    total = sum(v for k, v in losses.items() if 'loss' in k)
    total.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.student.parameters())
    assert all(p.grad is None for p in model.teacher.parameters())


def test_wscol_contrast_by_hand():
    head = WeakStrongContrastHead(temperature=0.5)
    z_s = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), dim=1)
    z_w = F.normalize(torch.tensor([[1.0, 0.2], [0.1, 1.0], [0.7, 0.7]]), dim=1)
    labels = torch.tensor([0, 1, 0])
    weights = torch.tensor([1.0, 1.0, 0.5])
    got = head.contrast(z_s, z_w, labels, weights)
    # by hand: anchor i, log-softmax over all keys, mean over same-label keys
    sims = z_s @ z_w.t() / 0.5
    expect = []
    for i in range(3):
        lp = sims[i] - torch.log(torch.exp(sims[i]).sum())
        pos = [j for j in range(3) if labels[j] == labels[i]]
        expect.append(-sum(lp[j] for j in pos) / len(pos))
    expect = (weights * torch.stack(expect)).sum() / weights.sum()
    assert torch.allclose(got, expect, atol=1e-6)
    # Catches a contrast that ignores the labels (instance-only InfoNCE): giving anchor 0
    # a second positive changes the loss.
    assert not torch.allclose(got, head.contrast(z_s, z_w, torch.tensor([0, 1, 2]), weights))


def test_wscol_head_on_a_source_free_detector():
    # The teacher differs from the student (a wrong implementation that embeds the student
    # on both views would see identical features at identical boxes); BN in train mode.
    heads = [dict(type='WeakStrongContrastHead', num_background=3)]
    model = _model(0.0, heads)
    with torch.no_grad():
        for p in model.teacher.parameters():
            p.add_(0.02 * torch.randn_like(p))
    head = model.aux_heads[0]
    bn = [m for m in model.student.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    start = ({k: v.clone() for k, v in model.student.state_dict().items()},
             {k: v.clone() for k, v in model.teacher.state_dict().items()})
    losses = model(**model.data_preprocessor(_batch(), True), mode='loss')
    loss = losses['aux_wscol_loss']
    assert math.isfinite(loss.item()) and loss.item() > 0
    assert losses['aux_wscol_n'].item() > 0
    assert bool((head.proto_count > 0).any())  # prototypes moved in train mode
    protos = head.prototypes.clone()
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in head.mapper.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.student.parameters())
    # the head's own student pass leaves BN statistics to the detector's passes: the
    # student forwards here are the unsup loss's (which may move them) and the head's
    # (which must not); compare against the unsup loss alone
    model2 = _model(0.0)
    model2.student.load_state_dict(start[0])
    model2.teacher.load_state_dict(start[1])
    model2(**model2.data_preprocessor(_batch(), True), mode='loss')
    bn2 = [m for m in model2.student.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert not torch.equal(bn2[0].running_mean, start[0][[k for k in start[0]
                                                        if 'running_mean' in k][0]])
    for m, m2 in zip(bn, bn2):
        assert torch.allclose(m.running_mean, m2.running_mean, atol=1e-6)
    # the head in eval mode: the contrast is computed, the prototypes stay
    head.eval()
    again = model(**model.data_preprocessor(_batch(), True), mode='loss')
    assert again['aux_wscol_loss'].item() > 0 and torch.equal(head.prototypes, protos)


def test_wscol_weak_keys_are_targets_without_gradient():
    # catches: the weak side's embedding not detached, so the projection learns to move
    # the targets towards the anchors instead of the anchors towards the targets
    model = _model(0.0, [dict(type='WeakStrongContrastHead', num_background=3)])
    with torch.no_grad():
        for p in model.teacher.parameters():
            p.add_(0.02 * torch.randn_like(p))
    head = model.aux_heads[0]
    outputs = []
    embed = head.embed

    def spy(feats):
        out = embed(feats)
        out.retain_grad()
        outputs.append(out)
        return out

    head.embed = spy
    losses = model(**model.data_preprocessor(_batch(), True), mode='loss')
    losses['aux_wscol_loss'].backward()
    weak, strong = outputs  # the head embeds the weak keys first, then the anchors
    assert weak.grad is None or not weak.grad.any()
    assert strong.grad is not None and strong.grad.abs().sum() > 0


def test_wscol_is_exactly_zero_without_pseudo_boxes():
    model = _model(1.01, [dict(type='WeakStrongContrastHead')])
    losses = model(**model.data_preprocessor(_batch(), True), mode='loss')
    assert losses['aux_wscol_loss'].item() == 0.0
    assert not bool((model.aux_heads[0].proto_count > 0).any())


def test_wscol_is_refused_on_dense_tasks_and_per_position_heads_on_detectors():
    from ssvision.models.algorithms import FixMatch
    with pytest.raises(ValueError, match='pseudo-boxes and instance features'):
        FixMatch(model=dict(type='TinyCNN', num_classes=3),
                 aux_heads=[dict(type='WeakStrongContrastHead')])
    with pytest.raises(ValueError, match='per-position'):
        SemiDetector(detector=_detector(), aux_heads=[dict(type='RotationHead')])


def test_sampler_unlabeled_only_batches():
    from ssvision.datasets.samplers import SemiSampler

    class Two:
        num_labeled, num_unlabeled = 0, 5

    s = SemiSampler(Two(), labeled_batch_size=0, unlabeled_batch_size=4, seed=0)
    items = [s.item(p)[0] for p in range(10)]
    assert s.batch_size == 4 and all(0 <= i < 5 for i in items)
    assert sorted(items[:5]) == [0, 1, 2, 3, 4]  # one epoch over the unlabeled part
    with pytest.raises(ValueError, match='unlabeled_batch_size'):
        SemiSampler(Two(), labeled_batch_size=0, seed=0)
    with pytest.raises(ValueError, match='labeled dataset is empty'):
        SemiSampler(Two(), labeled_batch_size=2, seed=0)


def test_semi_test_cfg_is_accepted_like_every_algorithm():
    # tools/test.py --model sets model.semi_test_cfg.predict_on on every algorithm; the
    # detector used to fail with 'multiple values for semi_test_cfg'
    model = SemiDetector(detector=_detector(), semi_test_cfg=dict(predict_on=('student',)))
    assert tuple(model.predict_on) == ('student',)


def test_source_free_step_in_channels_last():
    # channels_last weights have no flat view: the source-free zero loss used
    # ``weight.view(-1)`` and failed there (caught by the GPU precision test's body).
    model = _model(0.0).to(memory_format=torch.channels_last)
    losses = model(**model.data_preprocessor(_batch(), True), mode='loss')
    assert losses['sup_loss'].item() == 0.0 and losses['sup_loss'].requires_grad
    assert math.isfinite((losses['unsup_loss_cls'] + losses['unsup_loss_reg']).item())
