"""Tests of ssvision.datasets.transforms on real images (sklearn digits and sample photo)."""

import copy

import cv2
import numpy as np
import pytest
import torch

from ssvision.datasets.transforms import (
    RANDAUGMENT_OPS,
    Cutout,
    MultiBranch,
    PackClsInputs,
    RandAugment,
    WeakAugment,
)
from ssvision.registry import TRANSFORMS

sklearn_datasets = pytest.importorskip('sklearn.datasets')


@pytest.fixture(scope='module')
def gray_img():
    """A real handwritten digit, 8x8 upscaled to 28x28, uint8 (28, 28, 1)."""
    digit = sklearn_datasets.load_digits().images[0]
    img = (digit * (255.0 / 16.0)).astype(np.uint8)
    img = cv2.resize(img, (28, 28), interpolation=cv2.INTER_LINEAR)
    return img[..., None]


@pytest.fixture(scope='module')
def rgb_img():
    """A real photo (sklearn's bundled china.jpg) resized to uint8 (32, 32, 3)."""
    photo = sklearn_datasets.load_sample_image('china.jpg')
    return np.ascontiguousarray(cv2.resize(photo, (32, 32), interpolation=cv2.INTER_AREA))


def _results(img, seed=None, gt_label=3, true_label=None, sample_idx=7):
    results = dict(img=img.copy(), gt_label=gt_label, sample_idx=sample_idx)
    if true_label is not None:
        results['true_label'] = true_label
    if seed is not None:
        results['sample_seed'] = seed
    return results


def _fixmatch_branches():
    return dict(
        unsup_teacher=[dict(type='WeakAugment'), dict(type='PackClsInputs')],
        unsup_student=[dict(type='WeakAugment'), dict(type='RandAugment'),
                       dict(type='PackClsInputs')],
    )


ALL_TRANSFORMS = [
    WeakAugment(),
    WeakAugment(flip_prob=1.0, pad_ratio=0.25, pad_mode='edge', seed=3),
    RandAugment(),
    RandAugment(num_ops=3, magnitude=5, ops=['Rotate', 'Identity'], cutout_ratio=None,
                fill=0, seed=1),
    Cutout(),
    Cutout(ratio=0.25, fill=(1, 2, 3), prob=0.5, seed=2),
    PackClsInputs(),
    PackClsInputs(meta_keys=('gt_label',)),
    MultiBranch(_fixmatch_branches()),
    MultiBranch(dict(sup=[WeakAugment(flip_prob=0.0), PackClsInputs()]), seed=5),
]


@pytest.mark.parametrize('transform', ALL_TRANSFORMS, ids=repr)
def test_repr_round_trip(transform):
    cfg = transform.to_cfg()
    assert cfg['type'] == type(transform).__name__
    rebuilt = TRANSFORMS.build(cfg)
    assert type(rebuilt) is type(transform)
    assert repr(rebuilt) == repr(transform)
    assert repr(transform).startswith(type(transform).__name__ + '(')


def test_repr_shows_args():
    assert repr(Cutout(ratio=0.25)) == 'Cutout(ratio=0.25, fill=128, prob=1.0, seed=None)'
    assert repr(WeakAugment()) == (
        "WeakAugment(flip_prob=0.5, pad_ratio=0.125, pad_mode='reflect', seed=None)")


@pytest.mark.parametrize('name', ['gray', 'rgb'])
@pytest.mark.parametrize('transform_cls', [WeakAugment, RandAugment, Cutout])
def test_same_seed_same_output(request, name, transform_cls):
    img = request.getfixturevalue(f'{name}_img')
    transform = transform_cls()
    outs = [transform(_results(img, seed=s))['img'] for s in (11, 11, 12, 13, 14)]
    # A fresh instance (as in another worker) gives the same output for the same seed.
    again = transform_cls()(_results(img, seed=11))['img']
    for out in outs:
        assert out.shape == img.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], again)
    # Different seeds: not all outputs equal (a single pair can coincide, e.g. no flip).
    assert any(not np.array_equal(outs[0], o) for o in outs[2:])


def test_internal_seed_without_sample_seed(rgb_img):
    a = [RandAugment(seed=4)(_results(rgb_img))['img'] for _ in range(2)]
    np.testing.assert_array_equal(a[0], a[1])
    t = RandAugment(seed=4)
    b = [t(_results(rgb_img))['img'] for _ in range(4)]
    assert any(not np.array_equal(b[0], x) for x in b[1:])


def test_weak_flip_no_pad_is_fliplr(gray_img, rgb_img):
    t = WeakAugment(flip_prob=1.0, pad_ratio=0.0)
    for img in (gray_img, rgb_img):
        out = t(_results(img, seed=0))['img']
        np.testing.assert_array_equal(out, np.fliplr(img))
    t = WeakAugment(flip_prob=0.0, pad_ratio=0.0)
    np.testing.assert_array_equal(t(_results(rgb_img, seed=0))['img'], rgb_img)


def test_weak_is_a_translation(rgb_img):
    # pad 4 px (constant zeros) and crop: output is the image shifted by at most 4 px.
    t = WeakAugment(flip_prob=0.0, pad_ratio=0.125, pad_mode='constant')
    for seed in range(5):
        out = t(_results(rgb_img, seed=seed))['img']
        padded = np.pad(rgb_img, ((4, 4), (4, 4), (0, 0)))
        assert any(np.array_equal(out, padded[dy:dy + 32, dx:dx + 32])
                   for dy in range(9) for dx in range(9))


def test_weak_draws_every_offset_and_flips_half_the_time(rgb_img):
    # The law of the weak view: both flips, every one of the 9 x 9 crop offsets (uniform),
    # reflect padding as numpy's 'reflect'. Catches an offset range one short (never the
    # last position), a flip probability ignored, and a pad that repeats the edge pixel.
    t = WeakAugment(flip_prob=0.5, pad_ratio=0.125)
    img = rgb_img
    assert img.shape[:2] == (32, 32)
    padded = {f: np.pad(np.fliplr(img) if f else img, ((4, 4), (4, 4), (0, 0)), mode='reflect')
              for f in (False, True)}
    seen = np.zeros((2, 9, 9), dtype=int)
    for seed in range(1500):
        out = t(_results(img, seed=seed))['img']
        hits = [(f, dy, dx) for f in (0, 1) for dy in range(9) for dx in range(9)
                if np.array_equal(out, padded[bool(f)][dy:dy + 32, dx:dx + 32])]
        assert hits, seed
        seen[hits[0]] += 1
    assert (seen.sum(axis=0) > 0).all()  # every offset
    assert 0.45 < seen[1].sum() / seen.sum() < 0.55


def test_cutout_fills_block(gray_img, rgb_img):
    for img in (gray_img, rgb_img):
        out = Cutout(ratio=0.5, fill=128)(_results(img, seed=3))['img']
        changed = (out != img).any(axis=-1)
        assert changed.any()
        # Every changed pixel is 128, and they form one axis-aligned block.
        assert (out[changed] == 128).all()
        ys, xs = np.nonzero((out == 128).all(axis=-1) & (img != 128).any(axis=-1))
        block = (out[ys.min():ys.max() + 1, xs.min():xs.max() + 1] == 128).all()
        assert block
        side = round(0.5 * min(img.shape[:2]))
        assert ys.max() - ys.min() + 1 <= side and xs.max() - xs.min() + 1 <= side
    # prob=0 never cuts.
    out = Cutout(prob=0.0)(_results(rgb_img, seed=3))['img']
    np.testing.assert_array_equal(out, rgb_img)


def test_randaugment_identity_only_cutout(gray_img, rgb_img):
    for img in (gray_img, rgb_img):
        t = RandAugment(num_ops=2, magnitude=0, ops=['Identity'], cutout_ratio=0.5)
        out = t(_results(img, seed=1))['img']
        changed = (out != img).any(axis=-1)
        assert changed.any() and (out[changed] == 128).all()
        t = RandAugment(num_ops=2, magnitude=0, ops=['Identity'], cutout_ratio=None)
        np.testing.assert_array_equal(t(_results(img, seed=1))['img'], img)


@pytest.mark.parametrize('op', list(RANDAUGMENT_OPS))
def test_each_op_gray_and_rgb(op, gray_img, rgb_img):
    t = RandAugment(num_ops=1, magnitude=10, ops=[op], cutout_ratio=None)
    for img in (gray_img, rgb_img):
        for seed in (0, 1):
            out = t(_results(img, seed=seed))['img']
            assert out.shape == img.shape and out.dtype == np.uint8
            assert out.flags['C_CONTIGUOUS']
            if op not in ('Identity', 'Color') and img.shape[-1] == 3:
                assert not np.array_equal(out, img), op
            if op == 'Identity':
                np.testing.assert_array_equal(out, img)
    # Magnitude 0 of a geometric op is the identity.
    if op in ('Rotate', 'ShearX', 'ShearY', 'TranslateX', 'TranslateY', 'Brightness'):
        t0 = RandAugment(num_ops=1, magnitude=0, ops=[op], cutout_ratio=None)
        np.testing.assert_array_equal(t0(_results(rgb_img, seed=0))['img'], rgb_img)


def test_invalid_args():
    with pytest.raises(ValueError):
        RandAugment(ops=['Nope'])
    with pytest.raises(ValueError):
        RandAugment(magnitude=11)
    with pytest.raises(ValueError):
        WeakAugment(pad_mode='mirror')
    with pytest.raises(ValueError):
        Cutout(ratio=2.0)


@pytest.mark.parametrize('name,channels', [('gray', 1), ('rgb', 3)])
def test_pack(request, name, channels):
    img = request.getfixturevalue(f'{name}_img')
    packed = PackClsInputs()(_results(img, gt_label=np.int64(4)))
    inputs = packed['inputs']
    assert isinstance(inputs, torch.Tensor) and inputs.dtype == torch.uint8
    assert inputs.shape == (channels, *img.shape[:2]) and inputs.is_contiguous()
    np.testing.assert_array_equal(inputs.permute(1, 2, 0).numpy(), img)
    assert packed['data_samples'] == {'gt_label': 4, 'true_label': -1, 'sample_idx': 7}
    assert type(packed['data_samples']['gt_label']) is int
    # Missing gt_label -> -1; true_label kept.
    packed = PackClsInputs()(dict(img=img, true_label=2, sample_idx=0))
    assert packed['data_samples'] == {'gt_label': -1, 'true_label': 2, 'sample_idx': 0}


@pytest.mark.parametrize('name,channels', [('gray', 1), ('rgb', 3)])
def test_multibranch(request, name, channels):
    img = request.getfixturevalue(f'{name}_img')
    mb = TRANSFORMS.build(dict(type='MultiBranch', branches=_fixmatch_branches()))
    results = _results(img, seed=123, gt_label=-1, true_label=5)
    original = copy.deepcopy(results)
    out = mb(results)
    # The input results are left alone.
    np.testing.assert_array_equal(results['img'], original['img'])
    assert set(out) == {'inputs', 'data_samples'}
    assert list(out['inputs']) == ['unsup_teacher', 'unsup_student']
    for branch in ('unsup_teacher', 'unsup_student'):
        x = out['inputs'][branch]
        assert x.dtype == torch.uint8 and x.shape == (channels, *img.shape[:2])
        assert out['data_samples'][branch] == {'gt_label': -1, 'true_label': 5,
                                               'sample_idx': 7}
    weak, strong = out['inputs']['unsup_teacher'], out['inputs']['unsup_student']
    assert not torch.equal(weak, strong)
    # Same sample_seed -> identical views, also from a freshly built instance.
    again = MultiBranch(_fixmatch_branches())(_results(img, seed=123, gt_label=-1))
    for branch in out['inputs']:
        assert torch.equal(again['inputs'][branch], out['inputs'][branch])
    # Different seeds -> different strong views.
    other = mb(_results(img, seed=124, gt_label=-1))
    assert not torch.equal(other['inputs']['unsup_student'], strong)


def test_multibranch_branches_differ_without_seed(rgb_img):
    # Two identical branches whose transforms share a fixed seed: still different views.
    branch = [dict(type='RandAugment', seed=0), dict(type='PackClsInputs')]
    mb = MultiBranch(dict(a=branch, b=copy.deepcopy(branch)))
    out = mb(_results(rgb_img))
    assert not torch.equal(out['inputs']['a'], out['inputs']['b'])
    # With a sample seed, identical branch pipelines still differ (branch index in seed).
    out = mb(_results(rgb_img, seed=9))
    assert not torch.equal(out['inputs']['a'], out['inputs']['b'])


def test_multibranch_needs_pack(rgb_img):
    mb = MultiBranch(dict(a=[dict(type='WeakAugment')]))
    with pytest.raises(KeyError):
        mb(_results(rgb_img, seed=0))
