"""ssvision's DSSN variant (DSSNTopK), its Siamese head, and the recipe's dense targets:
the properties a wrong implementation would silently break."""

import copy

import pytest
import torch
from test_seg_recipe import SEG_NET, _batch

from ssvision.models.algorithms import DSSNTopK, FixMatch
from ssvision.models.algorithms.base import PseudoLabels
from ssvision.models.algorithms.student_forward import StudentOutputs
from ssvision.models.heads import AuxContext, DualSiameseConsistencyHead

pytestmark = pytest.mark.usefixtures('one_thread')


def _dense(cls, **kwargs):
    torch.manual_seed(0)
    model = cls(model=SEG_NET, task=dict(type='SegmentationTask'), **kwargs)
    with torch.no_grad():
        for p in model.teacher.parameters():  # a teacher that is not the student
            p.add_(0.2 * torch.randn_like(p))
    model.train()
    return model


def test_siamese_pair_trains_both_sides():
    # catches: a stop-gradient on one side of the Siamese pair (only one view would be
    # pulled towards the other)
    g = torch.Generator().manual_seed(0)
    for consistency, k in (('standardized_mse', 5), ('prob_mse', 2)):
        head = DualSiameseConsistencyHead(consistency=consistency)
        a = torch.randn(2, k, 6, 6, generator=g, requires_grad=True)
        b = torch.randn(2, k, 6, 6, generator=g, requires_grad=True)
        head.pair_loss(a, b, torch.ones(2, 6, 6)).backward()
        assert a.grad is not None and a.grad.abs().sum() > 0, consistency
        assert b.grad is not None and b.grad.abs().sum() > 0, consistency
    # and through the head's loss on the student's outputs
    logits = {v: torch.randn(2, 5, 6, 6, generator=g, requires_grad=True)
              for v in ('sup', 'unsup_student', 'unsup_student2')}
    ctx = AuxContext(student=None, teacher=None, task=None, inputs={}, data_samples={},
                     logits=logits)
    head = DualSiameseConsistencyHead(feature_weight=0.0)
    head.loss(ctx)['aux_siamese_img_loss'].backward()
    assert logits['unsup_student'].grad.abs().sum() > 0
    assert logits['unsup_student2'].grad.abs().sum() > 0


def test_topk_variant_trains_both_strong_views():
    # catches: the unlabeled loss on the first strong view only
    model = _dense(DSSNTopK, aux_heads=[],
                   selector=dict(type='FixedThresholdSelector', threshold=0.0))
    g = torch.Generator().manual_seed(1)
    s1, s2 = (torch.randn(2, 3, 8, 8, generator=g) for _ in range(2))
    labels = torch.randint(0, 3, (2, 8, 8), generator=g)
    weight = torch.rand(2, 8, 8, generator=g)
    out = model.loss_by_pseudo_labels(
        StudentOutputs({'unsup_student': s1, 'unsup_student2': s2}),
        PseudoLabels({}, labels=labels, weight=weight), {})
    task = model.task
    expected = (task.hard_loss(s1, labels, weight) + task.hard_loss(s2, labels, weight)) / 2
    torch.testing.assert_close(out['unsup_loss'], expected)
    assert not torch.allclose(expected, task.hard_loss(s1, labels, weight))


@pytest.mark.parametrize('cls,heads', [
    (DSSNTopK, []),
    # FixMatch reads one strong view; the Siamese head adds the second
    (FixMatch, [dict(type='DualSiameseConsistencyHead', feature_weight=0.0)]),
])
def test_cutmix_mixes_every_student_view_the_losses_read(cls, heads):
    # catches: CutMix of the first strong view only while the targets (and the weights a
    # head reads) are mixed: the second view's boxes would be trained on another image's
    # pseudo-labels
    model = _dense(cls, aux_heads=heads, semi_train_cfg=dict(cutmix_prob=1.0))
    data = model.data_preprocessor(_batch(), True)
    inputs, samples = data['inputs'], data['data_samples']
    torch.manual_seed(3)
    pseudo = model.project_pseudo_labels(model.get_pseudo_labels(inputs, samples, 5), samples)
    changed = {v: (pseudo.inputs[v] != inputs[v]).any(dim=1)
               for v in ('unsup_student', 'unsup_student2')}
    assert changed['unsup_student'].any()
    assert torch.equal(changed['unsup_student'], changed['unsup_student2'])


def test_padding_is_never_a_pseudo_label_target():
    # catches: padding pixels (valid_mask 0) kept as targets: a crop padded beyond the
    # image would train the student on the teacher's guess about black borders
    model = _dense(FixMatch, selector=dict(type='FixedThresholdSelector', threshold=0.0))
    data = model.data_preprocessor(_batch(), True)
    n, _, h, w = data['inputs']['unsup_teacher'].shape
    valid = torch.ones(n, h, w)
    valid[:, :, w // 2:] = 0  # the right half is padding
    data['data_samples']['unsup_teacher']['valid_mask'] = valid
    pseudo = model.project_pseudo_labels(
        model.get_pseudo_labels(data['inputs'], data['data_samples'], 5), data['data_samples'])
    assert pseudo.weight[valid == 0].abs().sum() == 0
    assert (pseudo.weight[valid == 1] > 0).all()
    student = copy.deepcopy(model.student)  # before the step's forward moves its BN buffers
    losses = model(**data, mode='loss')
    sup, strong = data['inputs']['sup'], data['inputs']['unsup_student']
    logits = model.task.forward(student, torch.cat([sup, strong]))[len(sup):]
    expected = model.task.hard_loss(logits, pseudo.labels, pseudo.weight)
    torch.testing.assert_close(losses['unsup_loss'], expected, rtol=1e-4, atol=1e-6)
