"""Strong views on the device (BatchRandAugment): the CPU RandAugment's law, per sample."""

import numpy as np
import pytest
import torch

from ssvision.datasets.scenes import sample_backgrounds
from ssvision.datasets.transforms.augment import RANDAUGMENT_OPS, RandAugment, _run_albu
from ssvision.models.data_preprocessors.batch_augment import BatchRandAugment

pytestmark = pytest.mark.usefixtures('one_thread')


def _photos(n=6, size=48):
    """Real RGB crops (the scikit-learn photos), uint8 (n, size, size, 3)."""
    rng = np.random.default_rng(0)
    crops = []
    for i in range(n):
        photo = sample_backgrounds()[i % 2]
        y, x = rng.integers(0, photo.shape[0] - size), rng.integers(0, photo.shape[1] - size)
        crops.append(np.ascontiguousarray(photo[y:y + size, x:x + size]))
    return np.stack(crops)


def _gpu_op(name, imgs, sign):
    aug = BatchRandAugment(num_ops=1, ops=[name], cutout_ratio=None)
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float()
    n = len(imgs)
    draws = dict(op=torch.zeros(1, n, dtype=torch.long), sign=torch.full((1, n), float(sign)),
                 centre=torch.zeros(n, 2))
    return aug(x, draws=draws).permute(0, 2, 3, 1).numpy()


def _cpu_op(name, imgs, negative):
    cpu = RandAugment(num_ops=1, ops=[name], cutout_ratio=None)
    t = cpu._op_transforms[name][int(negative)]
    rng = np.random.default_rng(0)
    return np.stack([img if t is None else _run_albu(t, img, rng) for img in imgs]).astype(float)


# per op, the mean absolute difference (gray levels) allowed against the CPU op: exact up
# to rounding for the point ops, 0.1 measured for the affine ones
TOLERANCE = {'Identity': 0.0, 'Equalize': 0.6, 'Solarize': 0.0, 'Color': 0.6,
             'Posterize': 0.0, 'Contrast': 0.6, 'Brightness': 0.6, 'Sharpness': 0.6,
             'Rotate': 0.5, 'ShearX': 0.5, 'ShearY': 0.5, 'TranslateX': 0.5,
             'TranslateY': 0.5}


@pytest.mark.parametrize('name', sorted(TOLERANCE))
def test_each_op_matches_the_cpu_op_on_real_images(name):
    # Catches a wrong range or formula (e.g. contrast around 0 instead of the mean, a
    # shear in radians, a translation in pixels instead of a fraction, a rotation the
    # other way): for each sign the GPU op must give the CPU op's image at that sign.
    imgs = _photos()
    for sign in (1, -1):
        got = _gpu_op(name, imgs, sign)
        negative = RANDAUGMENT_OPS[name] and sign < 0
        diff = np.abs(got - _cpu_op(name, imgs, negative)).mean()
        assert diff <= TOLERANCE[name], (name, sign, diff)
        if name != 'Identity':
            assert np.abs(got - imgs).mean() > 1.0, name  # the op does something


def test_autocontrast_is_the_min_max_stretch():
    # The one op defined differently from albumentations' default (documented): each
    # channel's min goes to 0 and its max to 255.
    imgs = _photos() // 2 + 40
    got = _gpu_op('AutoContrast', imgs, 1)
    assert got.min(axis=(1, 2)).max() == 0 and got.max(axis=(1, 2)).min() == 255
    lo, hi = imgs.min(axis=(1, 2), keepdims=True), imgs.max(axis=(1, 2), keepdims=True)
    # float32 on the device: a value at .5 may round either way
    np.testing.assert_allclose(got, np.round((imgs - lo) * 255.0 / (hi - lo)), atol=1.0)


def test_draws_are_per_sample_with_the_cpu_law():
    # Catches one draw per batch (torchvision v2's behaviour) and a skewed op or sign
    # choice: over 14,000 samples each op is drawn 1/14 of the time (chi-square), each
    # sign half the time, and a batch of 64 holds many different op pairs.
    aug = BatchRandAugment()
    g = torch.Generator().manual_seed(0)
    d = aug.draw(7000, g, 'cpu')
    counts = torch.bincount(d['op'].flatten(), minlength=len(aug.names)).double()
    expected = d['op'].numel() / len(aug.names)
    chi2 = ((counts - expected) ** 2 / expected).sum().item()
    assert chi2 < 36.1  # 99.9 % quantile, 13 degrees of freedom
    assert abs(d['sign'].mean().item()) < 0.03
    assert 0.47 < d['centre'].mean().item() < 0.53
    pairs = {tuple(p) for p in aug.draw(64, g, 'cpu')['op'].T.tolist()}
    assert len(pairs) > 30
    assert aug.names == tuple(RandAugment()._op_names)  # the same op set as the CPU op


def test_cutout_square_side_and_fill_as_the_cpu_one():
    # Catches a hole of the wrong side, a hole clipped at its centre, or one fill per batch.
    aug = BatchRandAugment(num_ops=0, cutout_ratio=0.5, fill=128)
    x = torch.zeros(3, 1, 32, 32)
    centre = torch.tensor([[0.5, 0.5], [0.0, 0.0], [31 / 32, 0.25]])
    out = aug(x, draws=dict(op=torch.zeros(0, 3, dtype=torch.long), sign=torch.zeros(0, 3),
                            centre=centre))
    holes = (out == 128).sum(dim=(1, 2, 3)).tolist()
    # 16x16 inside; a quarter at the corner; rows 23-31 x columns 0-15 at the bottom edge
    assert holes == [256, 64, 9 * 16]
    assert out[0, 0, 8:24, 8:24].eq(128).all()


def test_batch_augment_gray_and_seeded():
    # Gray images (C = 1) work, Color is identity there, and the same generator seed gives
    # the same views (resumable runs re-seed it per iteration).
    aug = BatchRandAugment()
    x = torch.from_numpy(_photos()[..., :1]).permute(0, 3, 1, 2).float()
    a = aug(x, torch.Generator().manual_seed(3))
    b = aug(x, torch.Generator().manual_seed(3))
    assert a.shape == x.shape and torch.equal(a, b)
    assert not torch.equal(a, aug(x, torch.Generator().manual_seed(4)))
    same = _gpu_op('Color', _photos()[..., :1], 1)
    assert np.array_equal(same, _photos()[..., :1].astype(np.float32))


def _preprocessor(**kw):
    import ssvision.models  # noqa: F401
    from ssvision.registry import MODELS
    return MODELS.build(dict(type='SemiDataPreprocessor', batch_augments=dict(
        unsup_student=dict(type='BatchRandAugment', source='unsup_teacher')), **kw))


def test_preprocessor_makes_strong_views_from_the_weak_ones_per_iteration():
    # Catches views made at validation, a strong view equal to its source, one draw per
    # run instead of per iteration, and a resumed run that draws other views than the
    # uninterrupted one (the seed comes from the iteration, not from a hidden state).
    from mmengine.logging import MessageHub
    hub = MessageHub.get_instance('batch_augment_test')
    x = torch.from_numpy(_photos(8, 32)[..., :1]).permute(0, 3, 1, 2).contiguous()
    batch = lambda: {'inputs': {'sup': x[:2], 'unsup_teacher': x},  # noqa: E731
                     'data_samples': {'unsup_teacher': {'true_label': torch.arange(8)}}}
    pre = _preprocessor(augment_seed=5)
    views = []
    for it in (0, 1, 0):
        hub.update_info('iter', it)
        out = pre(batch(), True)
        assert sorted(out['inputs']) == ['sup', 'unsup_student', 'unsup_teacher']
        assert out['data_samples']['unsup_student'] is out['data_samples']['unsup_teacher']
        views.append(out['inputs']['unsup_student'])
    assert not torch.equal(views[0], out['inputs']['unsup_teacher'])
    assert not torch.equal(views[0], views[1]) and torch.equal(views[0], views[2])
    # a fresh preprocessor (a resumed run) at iteration 1 makes iteration 1's views
    hub.update_info('iter', 1)
    assert torch.equal(_preprocessor(augment_seed=5)(batch(), True)['inputs']['unsup_student'],
                       views[1])
    assert 'unsup_student' not in pre(batch(), False)['inputs']  # validation: untouched
    with pytest.raises(KeyError, match='made from'):
        pre({'inputs': {'sup': x}}, True)


def test_fixmatch_step_with_strong_views_on_the_device():
    # The device config path end to end: FixMatch trains on views the preprocessor made
    # (the CPU sent the weak views only); the unsup loss is finite and > 0 with every
    # sample selected and exactly 0 with none. The same model on the weak view as its
    # strong view gives another loss, so the loss reads the made view (catches a view
    # made under one key and the recipe reading another).
    import ssvision.models  # noqa: F401
    from ssvision.registry import MODELS
    x = torch.from_numpy(_photos(8, 32)[..., :1]).permute(0, 3, 1, 2).contiguous()
    data = {'inputs': {'sup': x[:4], 'unsup_teacher': x},
            'data_samples': {'sup': {'gt_label': torch.tensor([0, 1, 2, 1])}}}
    for threshold, positive in ((0.0, True), (1.01, False)):
        torch.manual_seed(0)
        model = MODELS.build(dict(
            type='FixMatch', model=dict(type='TinyCNN', num_classes=3, in_channels=1, width=8),
            selector=dict(type='FixedThresholdSelector', threshold=threshold),
            data_preprocessor=dict(type='SemiDataPreprocessor', batch_augments=dict(
                unsup_student=dict(type='BatchRandAugment', source='unsup_teacher')))))
        model.train()
        made = model.data_preprocessor(data, True)
        losses = model(**made, mode='loss')
        u = losses['unsup_loss'].item()
        assert (u > 0) if positive else (u == 0.0)
        if positive:
            weak = dict(made, inputs=dict(made['inputs'],
                                          unsup_student=made['inputs']['unsup_teacher']))
            assert model(**weak, mode='loss')['unsup_loss'].item() != pytest.approx(u)


def _color_draws(n, apply=(True, False, False), factors=(1.0, 1.0, 1.0, 0.0), sigma=1.0):
    return dict(apply=torch.tensor([apply] * n), factors=torch.tensor([factors] * n),
                order=torch.arange(4).repeat(n, 1), sigma=torch.full((n,), sigma))


@pytest.mark.parametrize('op,factor', [(0, 1.4), (0, 0.6), (1, 1.5), (1, 0.5), (2, 1.5),
                                       (2, 0.5), (3, 0.2), (3, -0.15)])
def test_color_jitter_ops_match_albumentations_on_real_images(op, factor):
    # Catches contrast around 0 instead of the mean luma, saturation towards the channel
    # mean instead of the luma, and a hue shift in other units (degrees, half circle):
    # each op against the CPU op's own function at the same factor.
    from albumentations.augmentations.pixel import functional as PF

    from ssvision.models.data_preprocessors.batch_augment import BatchColorAugment
    imgs = _photos()
    factors = [1.0, 1.0, 1.0, 0.0]
    factors[op] = factor
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float()
    got = BatchColorAugment()(x, draws=_color_draws(len(imgs), factors=tuple(factors)))
    fn = (PF.adjust_brightness_torchvision, PF.adjust_contrast_torchvision,
          PF.adjust_saturation_torchvision, PF.adjust_hue_torchvision)[op]
    want = np.stack([fn(img, factor) for img in imgs]).astype(np.float32)
    diff = np.abs(got.permute(0, 2, 3, 1).numpy() - want).mean()
    # hue: the CPU shifts OpenCV's 2-degree uint8 hue, here hue is continuous
    assert diff <= (1.5 if op == 3 else 0.6), diff
    assert np.abs(want - imgs).mean() > 2.0  # the factor does change the image


def test_gray_and_blur_match_albumentations_and_draws_are_per_sample():
    # Catches a blur of the wrong width or border, gray from the channel mean, and one
    # draw per batch.
    import albumentations as A

    from ssvision.models.data_preprocessors.batch_augment import BatchColorAugment
    imgs = _photos()
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float()
    aug = BatchColorAugment()
    for sigma in (0.6, 1.7):
        got = aug(x, draws=_color_draws(len(imgs), (False, False, True), sigma=sigma))
        blur = A.GaussianBlur(blur_limit=0, sigma_limit=(sigma, sigma), p=1.0)
        want = np.stack([blur(image=img)['image'] for img in imgs]).astype(np.float32)
        assert np.abs(got.permute(0, 2, 3, 1).numpy() - want).mean() <= 0.6, sigma
    got = aug(x, draws=_color_draws(len(imgs), (False, True, False)))
    gray = A.ToGray(num_output_channels=3, p=1.0)
    want = np.stack([gray(image=img)['image'] for img in imgs]).astype(np.float32)
    assert np.abs(got.permute(0, 2, 3, 1).numpy() - want).mean() <= 0.6
    d = aug.draw(20000, torch.Generator().manual_seed(0), 'cpu')
    rates = d['apply'].float().mean(dim=0)
    assert torch.allclose(rates, torch.tensor([0.8, 0.2, 0.5]), atol=0.015)
    assert d['factors'][:, 0].min() >= 0.5 and d['factors'][:, 0].max() <= 1.5
    assert d['factors'][:, 3].abs().max() <= 0.25 and 0.1 <= d['sigma'].min()
    assert len({tuple(o) for o in d['order'][:200].tolist()}) == 24  # every order occurs
