"""Auxiliary heads (Siamese consistency, contrastive deep supervision, rotation) on digits."""

import functools
import math

import cv2
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from ssvision.models.algorithms import FixMatch, SupervisedOnly
from ssvision.models.algorithms.base import PseudoLabels
from ssvision.models.heads import (
    DeepSupervisionContrastHead,
    DualSiameseConsistencyHead,
    RotationHead,
    rotate_batch,
)
from ssvision.models.heads.deep_supervision import supcon_loss
from ssvision.models.heads.siamese_consistency import info_nce, standardized_mse

NET = dict(type='TinyCNN', num_classes=10, in_channels=1, width=8)
SIAMESE = dict(type='DualSiameseConsistencyHead')
DEEPSUP = dict(type='DeepSupervisionContrastHead')
ROTATION = dict(type='RotationHead')


@functools.cache
def _load_digits():
    return load_digits()


def _digits(n, offset=0):
    d = _load_digits()
    imgs = np.stack([cv2.resize((img * 16).clip(0, 255).astype(np.uint8), (16, 16),
                                interpolation=cv2.INTER_LINEAR)
                     for img in d.images[offset:offset + n]])
    return torch.from_numpy(imgs)[:, None], torch.from_numpy(d.target[offset:offset + n])


def _batch(b=16, mu=2):
    # 16 labeled digits cover classes 0-9 then 0-5: SupCon anchors have positives.
    sup, sup_y = _digits(b)
    unl, unl_y = _digits(b * mu, offset=100)
    views = {'unsup_teacher': unl, 'unsup_student': torch.flip(unl, dims=[3]),
             'unsup_student2': torch.roll(unl, shifts=2, dims=2)}
    meta = {'gt_label': torch.full_like(unl_y, -1), 'true_label': unl_y}
    return {
        'inputs': {'sup': sup, **views},
        'data_samples': {'sup': {'gt_label': sup_y}, **{v: dict(meta) for v in views}},
    }


def _model(heads, threshold=0.0, cls=FixMatch):
    kwargs = {} if cls is SupervisedOnly else dict(
        selector=dict(type='FixedThresholdSelector', threshold=threshold))
    model = cls(model=NET, aux_heads=heads, **kwargs)
    model.train()
    return model


def _losses(model, batch):
    data = model.data_preprocessor(batch, True)
    return model(**data, mode='loss')


def _check_trains_student_only(model, loss):
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.student.parameters())
    assert all(p.grad is None for p in model.teacher.parameters())


@pytest.mark.parametrize('key,head', [
    ('aux_siamese_img_loss', SIAMESE),
    ('aux_siamese_feat_loss', SIAMESE),
    ('aux_siamese_img_loss', dict(SIAMESE, consistency='contrastive')),
    ('aux_siamese_feat_loss', dict(SIAMESE, consistency='contrastive')),
    ('aux_deepsup_loss', DEEPSUP),
    ('aux_rot_loss', ROTATION),
])
def test_head_loss_positive_and_trains_student_only(key, head):
    torch.manual_seed(0)
    model = _model([head])
    losses = _losses(model, _batch())
    assert math.isfinite(losses[key].item()) and losses[key].item() > 0
    _check_trains_student_only(model, losses[key])


def test_all_heads_together_keys_and_total_backward():
    torch.manual_seed(0)
    model = _model([SIAMESE, DEEPSUP, ROTATION])
    losses = _losses(model, _batch())
    for key in ('aux_siamese_img_loss', 'aux_siamese_feat_loss', 'aux_deepsup_loss',
                'aux_rot_loss', 'aux_rot_acc'):
        assert key in losses
    assert 0.0 <= losses['aux_rot_acc'].item() <= 1.0
    assert not losses['aux_rot_acc'].requires_grad
    total = sum(v for k, v in losses.items() if 'loss' in k)
    _check_trains_student_only(model, total)


def test_siamese_is_zero_when_nothing_selected():
    torch.manual_seed(0)
    model = _model([SIAMESE], threshold=1.01)
    losses = _losses(model, _batch())
    assert losses['sel_frac'].item() == 0.0
    assert losses['aux_siamese_img_loss'].item() == 0.0
    assert losses['aux_siamese_feat_loss'].item() == 0.0
    # Without selection the same batch gives a positive loss.
    model = _model([dict(SIAMESE, use_selection=False)], threshold=1.01)
    assert _losses(model, _batch())['aux_siamese_img_loss'].item() > 0


def test_siamese_loss_weights_multiply():
    torch.manual_seed(0)
    model = _model([dict(SIAMESE, loss_weight=2.0, image_weight=3.0, feature_weight=0.0)])
    data = model.data_preprocessor(_batch(), True)
    losses = model(**data, mode='loss')
    assert losses['aux_siamese_feat_loss'].item() == 0.0
    head = model.aux_heads[0]
    # Recompute the image term from the student's concatenated forward (same BN batch).
    logits = model.forward_student(data['inputs'], data['data_samples'],
                                   PseudoLabels(data['inputs'])).logits
    expected = 6.0 * head.pair_loss(logits['unsup_student'], logits['unsup_student2'], None)
    assert losses['aux_siamese_img_loss'].item() == pytest.approx(expected.item(), rel=1e-5)


def test_siamese_without_unlabeled_views_returns_graph_valid_zeros():
    torch.manual_seed(0)
    model = _model([SIAMESE])
    batch = _batch()
    for v in ('unsup_student2',):
        del batch['inputs'][v]
        del batch['data_samples'][v]
    batch['inputs'].pop('unsup_student')
    batch['data_samples'].pop('unsup_student')
    # a weak view without its strong view is a pipeline error, named clearly
    with pytest.raises(KeyError, match='unsup_student'):
        _losses(model, batch)
    batch['inputs'].pop('unsup_teacher')  # a labeled-only batch
    batch['data_samples'].pop('unsup_teacher', None)
    losses = _losses(model, batch)
    assert losses['aux_siamese_img_loss'].item() == 0.0
    assert losses['aux_siamese_feat_loss'].item() == 0.0
    assert losses['aux_siamese_img_loss'].requires_grad
    (losses['sup_loss'] + losses['aux_siamese_img_loss']).backward()


def test_standardized_mse_by_hand():
    a = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 4.0]])
    assert torch.allclose(standardized_mse(a, a), torch.zeros(2))
    # Standardisation removes shift and scale: 10 * a + 5 matches a.
    assert torch.allclose(standardized_mse(a, 10 * a + 5), torch.zeros(2), atol=1e-6)
    b = torch.tensor([[3.0, 2.0, 1.0], [0.0, 4.0, 0.0]])
    # Row 0: z(a) = (-s, 0, s), z(b) = (s, 0, -s), s = sqrt(3/2): mean((2s)^2, 0, (2s)^2)
    # = 8 s^2 / 3 = 4. Row 1: z = (-t, -t, 2t) vs (-t, 2t, -t), t = 1/sqrt(2):
    # mean(0, 9t^2, 9t^2) = 6 t^2 = 3.
    assert torch.allclose(standardized_mse(a, b), torch.tensor([4.0, 3.0]), atol=1e-4)
    # Dense outputs: one term per pixel.
    dense = torch.randn(2, 5, 3, 4)
    assert standardized_mse(dense, dense.flip(1)).shape == (2, 3, 4)


def test_pair_loss_weights_and_normalises_by_n():
    head = DualSiameseConsistencyHead()
    a = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 4.0]])
    b = torch.tensor([[3.0, 2.0, 1.0], [0.0, 4.0, 0.0]])
    assert head.pair_loss(a, b, None).item() == pytest.approx(3.5, abs=1e-4)
    assert head.pair_loss(a, b, torch.tensor([0.0, 1.0])).item() == pytest.approx(1.5, abs=1e-4)
    assert head.pair_loss(a, b, torch.zeros(2)).item() == 0.0


def test_contrastive_aligned_views_beat_shuffled():
    torch.manual_seed(0)
    a = torch.randn(16, 10)
    b = a + 0.01 * torch.randn(16, 10)
    aligned = info_nce(a, b, 0.5).mean()
    shuffled = info_nce(a, b[torch.roll(torch.arange(16), 1)], 0.5).mean()
    assert aligned < shuffled
    with pytest.raises(ValueError, match='classification'):
        info_nce(torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4), 0.5)


def test_siamese_feature_level_needs_extract_feat():
    # checked when the head is built (setup), not when the loss runs
    with pytest.raises(TypeError, match='extract_feat.*Linear'):
        DualSiameseConsistencyHead().setup(torch.nn.Linear(3, 3))
    DualSiameseConsistencyHead(feature_weight=0.0).setup(torch.nn.Linear(3, 3))
    with pytest.raises(ValueError, match='consistency'):
        DualSiameseConsistencyHead(consistency='l1')


def test_supcon_by_hand():
    # Two classes, embeddings along two axes: anchors see one positive each.
    emb = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    y = torch.tensor([0, 0, 1, 1])
    t = 0.5
    # For each anchor: s_pos = 1/t, two negatives with s = 0.
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 2))
    assert supcon_loss(emb, y, t).item() == pytest.approx(expected, rel=1e-5)
    # No positives at all: a zero that keeps the graph.
    emb = torch.randn(3, 4, requires_grad=True)
    zero = supcon_loss(emb, torch.tensor([0, 1, 2]), t)
    assert zero.item() == 0.0 and zero.requires_grad


def test_deepsup_supervised_only_and_with_pseudo_labels():
    torch.manual_seed(0)
    model = _model([DEEPSUP], cls=SupervisedOnly)
    losses = _losses(model, _batch())
    assert set(losses) == {'sup_loss', 'aux_deepsup_loss'}
    assert math.isfinite(losses['aux_deepsup_loss'].item()) and losses['aux_deepsup_loss'] > 0
    _check_trains_student_only(model, losses['aux_deepsup_loss'])
    # Labeled view only (no unlabeled views in the batch at all).
    batch = _batch()
    batch = {'inputs': {'sup': batch['inputs']['sup']},
             'data_samples': {'sup': batch['data_samples']['sup']}}
    assert _losses(model, batch)['aux_deepsup_loss'].item() > 0
    # Explicit in_channels (TinyCNN width 8: stages have 8 and 16 channels).
    model = _model([dict(DEEPSUP, in_channels=(8, 16))])
    assert _losses(model, _batch())['aux_deepsup_loss'].item() > 0


def test_rotate_helper_and_square_check():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    y = x
    for _ in range(4):
        y = rotate_batch(y, 1)
    assert torch.equal(y, x)
    k = torch.tensor([1, 3])
    once = rotate_batch(x, k)
    assert torch.equal(once[0], torch.rot90(x[0], 1, dims=(1, 2)))
    assert torch.equal(once[1], torch.rot90(x[1], 3, dims=(1, 2)))
    assert torch.equal(rotate_batch(once, 4 - k), x)
    with pytest.raises(ValueError, match='square'):
        rotate_batch(torch.zeros(1, 1, 4, 5), 1)


def test_rotation_head_limits_images_and_rejects_non_square():
    torch.manual_seed(0)
    model = _model([dict(ROTATION, max_images=5, in_features=32)])
    sizes = []
    extract = model.student.extract_feat

    def spy(x):
        sizes.append(x.shape[0])
        return extract(x)

    model.student.extract_feat = spy
    losses = _losses(model, _batch())
    assert sizes[-1] == 5  # the last call is the head's (forward calls extract_feat too)
    assert 0.0 <= losses['aux_rot_acc'].item() <= 1.0
    assert not losses['aux_rot_acc'].requires_grad
    wide = _batch()
    wide['inputs']['sup'] = torch.zeros(16, 1, 16, 20, dtype=torch.uint8)
    model = _model([dict(ROTATION, views=('sup',))], cls=SupervisedOnly)
    with pytest.raises(ValueError, match='square'):
        _losses(model, wide)


def test_heads_are_registered():
    from ssvision.registry import MODELS
    for name in ('DualSiameseConsistencyHead', 'DeepSupervisionContrastHead', 'RotationHead'):
        assert MODELS.get(name) is not None
    assert isinstance(MODELS.build(dict(type='RotationHead')), RotationHead)
    assert isinstance(MODELS.build(DEEPSUP), DeepSupervisionContrastHead)


def test_explicit_sizes_survive_init_weights_and_state_dict_round_trip():
    # mmengine's Runner calls model.init_weights(), which reads every parameter's shape:
    # lazy (uninitialised) layers fail there, explicit sizes do not.
    heads = [dict(DEEPSUP, in_channels=(8, 16)), dict(ROTATION, in_features=32)]
    model = _model(heads)
    model.init_weights()
    losses = _losses(model, _batch())
    assert losses['aux_deepsup_loss'].item() > 0
    # A lazy model loads the checkpoint of a materialised one.
    lazy = _model([DEEPSUP, ROTATION])
    lazy.load_state_dict(model.state_dict())
    for a, b in zip(model.aux_heads.parameters(), lazy.aux_heads.parameters()):
        assert torch.equal(a, b)


def test_siamese_two_class_maps_get_a_smooth_consistency():
    # A standardized 2-vector is only a sign: on binary maps the old loss was a step
    # with gradient ~ 1 / |a_1 - a_2| near ties. Catches 'auto' picking it for K = 2.
    from ssvision.models.heads import DualSiameseConsistencyHead
    from ssvision.models.heads.siamese_consistency import prob_mse
    head = DualSiameseConsistencyHead()
    a = torch.tensor([[[[0.0]], [[1e-4]]]], requires_grad=True)  # (1, 2, 1, 1), a near-tie
    b = torch.tensor([[[[1.0]], [[-1.0]]]])
    loss = head.pair_loss(a, b, None)
    assert loss.item() == pytest.approx(prob_mse(a, b).item())
    loss.backward()
    assert a.grad.abs().max().item() < 1.0  # bounded; the step's gradient here is ~1e4
    with pytest.raises(ValueError, match='>= 3 classes'):
        DualSiameseConsistencyHead(consistency='standardized_mse').pair_loss(a, b, None)
    a11 = torch.randn(2, 11, 3, 3)
    b11 = torch.randn(2, 11, 3, 3)
    from ssvision.models.heads.siamese_consistency import standardized_mse
    assert head.pair_loss(a11, b11, None).item() == pytest.approx(
        standardized_mse(a11, b11).mean().item(), rel=1e-5)


def test_siamese_feature_level_reuses_the_main_forward():
    """shared_features=True (the default): the feature pair starts from the features of
    the student's concatenated forward, with no encoder pass of its own (UniMatch's
    need_fp). The student is in training mode, so BatchNorm normalises with batch
    statistics and a pass over the strong view alone gives other features. Catches a
    head that still runs its own extract_feat (two encoder calls, features that differ
    from the slice of the main forward) and features taken from another batch."""
    calls, seen = {}, {}
    for shared in (True, False):
        torch.manual_seed(0)
        model = _model([dict(SIAMESE, shared_features=shared)])
        head = model.aux_heads[0]
        extract, pair = model.student.extract_feat, head.feature_pair
        calls[shared] = 0

        def spy(x, _extract=extract, _shared=shared):
            calls[_shared] += 1
            return _extract(x)

        def pair_spy(student, x, feat=None, _pair=pair, _shared=shared):
            seen[_shared] = feat
            return _pair(student, x, feat)

        model.student.extract_feat = spy
        head.feature_pair = pair_spy
        data = model.data_preprocessor(_batch(), True)
        losses = model(**data, mode='loss')
        assert losses['aux_siamese_feat_loss'].item() > 0
        if shared:
            names = model._student_view_names(data['inputs'], True)
            with torch.no_grad():
                full = extract(torch.cat([data['inputs'][n] for n in names]))
            i = names.index('unsup_student')
            sizes = [data['inputs'][n].shape[0] for n in names]
            start = sum(sizes[:i])
            torch.testing.assert_close(seen[True].detach(), full[start:start + sizes[i]])
            with torch.no_grad():  # the strong view alone: other batch statistics
                alone = extract(data['inputs']['unsup_student'])
            assert not torch.allclose(alone, seen[True].detach())
    # the main forward calls extract_feat once (the split forward); the old head twice
    assert calls[True] == 1 and calls[False] == 2 and seen[False] is None
