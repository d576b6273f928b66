"""The shared recipe on dense predictions: FixMatch / DSSNTopK over a segmentor."""

import math

import pytest
import torch

from ssvision.models.algorithms import DSSNTopK, FixMatch
from ssvision.models.algorithms.health import selection_health

SEG_NET = dict(type='DeepLabV3Plus', backbone='resnet18', num_classes=3, aspp_channels=16,
               low_level_channels=8, decoder_channels=16, dropout=0.0)


pytestmark = pytest.mark.usefixtures('one_thread')


def _batch(n=2, size=32):
    g = torch.Generator().manual_seed(0)
    img = lambda: torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)  # noqa: E731
    seg = torch.randint(0, 3, (n, size, size), generator=g)
    seg[:, :4] = 255  # some ignored pixels
    return {'inputs': {'sup': img(), 'unsup_teacher': img(), 'unsup_student': img(),
                       'unsup_student2': img()},
            'data_samples': {'sup': {'gt_seg': seg},
                             'unsup_teacher': {'true_seg': seg.clone(),
                                               'sample_idx': torch.arange(n)}}}


@pytest.mark.parametrize('algo', [FixMatch, DSSNTopK])
def test_dense_unsup_loss_positive_all_selected_zero_none_selected(algo):
    torch.manual_seed(0)
    kwargs = dict(model=SEG_NET, task=dict(type='SegmentationTask'))
    for threshold, positive in ((0.0, True), (1.01, False)):
        model = algo(selector=dict(type='FixedThresholdSelector', threshold=threshold), **kwargs)
        with torch.no_grad():
            for p in model.teacher.parameters():
                p.add_(0.2 * torch.randn_like(p))
        model.train()
        data = model.data_preprocessor(_batch(), True)
        losses = model(**data, mode='loss')
        assert math.isfinite(losses['unsup_loss'].item())
        assert (losses['unsup_loss'].item() > 0) == positive
        if not positive:
            assert losses['unsup_loss'].item() == 0.0
        assert 0 <= losses['pl_acc_all'].item() <= 1
        if algo is DSSNTopK:
            assert math.isfinite(losses['aux_siamese_feat_loss'].item())
    # a class-aware per-image selection on dense maps
    model = algo(selector=dict(type='ClassAwareTopKSelector', ratio=0.5, floor=0.0), **kwargs)
    model.train()
    data = model.data_preprocessor(_batch(), True)
    losses = model(**data, mode='loss')
    assert 0.3 < losses['sel_frac'].item() < 0.7


def test_dense_predict_packs_maps_for_the_iou_metric():
    from ssvision.evaluation import SegIoU
    model = FixMatch(model=SEG_NET, task=dict(type='SegmentationTask'))
    batch = _batch()
    gt = batch['data_samples']['sup']['gt_seg']
    data = model.data_preprocessor({'inputs': batch['inputs']['sup'],
                                    'data_samples': {'gt_seg': gt}})
    out = model(**data, mode='predict')
    assert out[0]['pred']['teacher'].shape == (32, 32)
    metric = SegIoU(num_classes=3)
    metric.process({}, out)
    res = metric.compute_metrics(metric.results)
    assert 0 <= res['teacher/mIoU'] <= 100 and 'student/mIoU' in res


def test_cutmix_mixes_views_and_pseudo_labels_alike():
    from torch import nn

    from ssvision.models.network import StudentNetwork
    from ssvision.registry import MODELS

    @MODELS.register_module(name='_PixelwiseSeg', force=True)
    class _PixelwiseSeg(StudentNetwork):
        """A 1x1-conv segmentor: its prediction at a pixel depends on that pixel only."""

        def __init__(self, num_classes=3):
            super().__init__()
            self.num_classes = self.feat_dim = num_classes
            self.in_channels = 3
            self.conv = nn.Conv2d(3, num_classes, 1)

        def extract_feat(self, x):
            return self.conv(x)

        def forward_head(self, feat, size=None):
            return feat

    torch.manual_seed(0)
    model = FixMatch(model=dict(type='_PixelwiseSeg'), task=dict(type='SegmentationTask'),
                     selector=dict(type='FixedThresholdSelector', threshold=0.0),
                     semi_train_cfg=dict(cutmix_prob=1.0))
    batch = _batch(n=4)
    batch['inputs']['unsup_student'] = batch['inputs']['unsup_teacher'].clone()
    data = model.data_preprocessor(batch, True)
    inputs = data['inputs']
    probs = model.task.predict(model.teacher, inputs['unsup_teacher'])
    labels, weight = model.selector(probs)
    mixed, m_probs, m_labels, m_weight = model.mixer(
        inputs, model.student_views, probs, labels, weight)
    assert not torch.equal(mixed['unsup_student'], inputs['unsup_student'])  # boxes pasted
    # the teacher's labels on the mixed view equal the mixed pseudo-labels, pixel by pixel
    relabel = model.task.predict(model.teacher, mixed['unsup_student']).argmax(1)
    assert torch.equal(relabel, m_labels)
    assert torch.allclose(model.task.predict(model.teacher, mixed['unsup_student']), m_probs,
                          atol=1e-6)
    assert inputs['unsup_student'] is data['inputs']['unsup_student']  # input dict untouched
    with pytest.raises(ValueError, match='dense'):
        model.mixer(
            inputs, model.student_views, probs[:, :, 0, 0], labels[:, 0, 0], weight[:, 0, 0])


def test_health_per_class_pixel_selection_on_a_hand_made_map():
    """Per-class kept counts and rates on a 1x2x3 map with known pseudo-labels."""
    # pseudo-labels: class 0 on 3 pixels, class 1 on 2, class 2 on 1
    labels = torch.tensor([[[0, 0, 0], [1, 1, 2]]])
    weight = torch.tensor([[[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]]])
    probs = torch.nn.functional.one_hot(labels, 3).permute(0, 3, 1, 2).float()
    true = torch.tensor([[[0, 1, 0], [1, 255, 0]]])  # the kept class-2 pixel is wrong
    log = selection_health(probs, labels, weight, {'true_seg': true})
    assert [log[f'sel_n_{c}'].item() for c in range(3)] == [2, 0, 1]
    torch.testing.assert_close(torch.stack([log[f'sel_frac_{c}'] for c in range(3)]),
                               torch.tensor([2 / 3, 0.0, 1.0]))
    assert log['sel_frac'].item() == 0.5
    assert log['pl_acc'].item() == pytest.approx(2 / 3)  # kept and known: 3, 2 right
    assert log['pl_acc_all'].item() == pytest.approx(3 / 5)  # known: 5 (255 dropped)
    # per kept class: class 0's two kept pixels are right, class 2's one is wrong; class 1
    # keeps none, so it has no figure (a 0 would read as 'all wrong')
    assert log['pl_prec_0'].item() == 1.0 and log['pl_prec_2'].item() == 0.0
    assert 'pl_prec_1' not in log


def test_rest_loss_leaves_padding_out_and_follows_cutmix():
    # rest_weight on a dense map with padding: nothing selected, so every image pixel
    # counts and no padding pixel does, also after CutMix moved boxes of padding around.
    # Catches the padding pulled towards the teacher (1 - w is 1 there) and a valid mask
    # that is not mixed with the views.
    torch.manual_seed(0)
    model = FixMatch(model=SEG_NET, task=dict(type='SegmentationTask'),
                     selector=dict(type='FixedThresholdSelector', threshold=1.01),
                     semi_train_cfg=dict(rest_weight=1.0, cutmix_prob=1.0))
    with torch.no_grad():
        for p in model.teacher.parameters():
            p.add_(0.2 * torch.randn_like(p))
    model.train()
    batch = _batch()
    valid = torch.ones(2, 32, 32, dtype=torch.bool)
    valid[0, :, 20:] = False  # image 0 is padded on the right
    batch['data_samples']['unsup_teacher']['valid_mask'] = valid
    data = model.data_preprocessor(batch, True)
    torch.manual_seed(1)
    pseudo = model.project_pseudo_labels(
        model.get_pseudo_labels(data['inputs'], data['data_samples'], 0), data['data_samples'])
    assert pseudo.valid is not None and pseudo.valid.sum() < 2 * 32 * 32
    assert not torch.equal(pseudo.valid, valid.float())  # boxes of padding moved
    # the mixed mask is the unmixed one moved by the same boxes as the labels
    torch.manual_seed(1)
    again = model.project_pseudo_labels(
        model.get_pseudo_labels(data['inputs'], data['data_samples'], 0), data['data_samples'])
    assert torch.equal(pseudo.valid, again.valid)
    logits = {'unsup_student': model.student(pseudo.inputs['unsup_student'])}
    got = model.rest_loss(logits, pseudo)
    per = ((logits['unsup_student'].softmax(dim=1) - pseudo.probs) ** 2).sum(dim=1)
    want = (per * pseudo.valid).sum() / per.numel()
    torch.testing.assert_close(got, want)
    assert got < (per.sum() / per.numel())  # padding really left out
