"""Cityscapes layout: city folders, raw ids mapped to train ids, splits across cities."""

import json
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from ssvision.datasets import CITYSCAPES_LABEL_MAP, CityscapesDataset, write_voc_scenes

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TRAIN_TO_RAW = {v: k for k, v in CITYSCAPES_LABEL_MAP.items()}


@pytest.fixture(scope='module')
def city_root(tmp_path_factory):
    """Real scenes rewritten in the Cityscapes layout: scene class c >= 1 is stored as
    the raw id of train id c - 1, background as raw id 0 (unlabeled -> ignored)."""
    tmp = tmp_path_factory.mktemp('cs')
    ids = write_voc_scenes(str(tmp / 'voc'), 6, seed=0, items='mnist5k', size=48)
    root = tmp / 'cityscapes'
    expected = {}
    for k, sid in enumerate(ids):
        city = 'aachen' if k < 4 else 'bremen'
        stem = f'{city}_{k:06d}_000019'
        img = Image.open(tmp / 'voc' / 'JPEGImages' / f'{sid}.png')
        sem = np.array(Image.open(tmp / 'voc' / 'SegmentationClass' / f'{sid}.png'))
        raw = np.zeros_like(sem)
        for c in range(1, 11):
            raw[sem == c] = TRAIN_TO_RAW[c - 1]
        raw[0, 0] = 4  # 'static': not a train class -> ignored
        for sub, name, arr in (('leftImg8bit', f'{stem}_leftImg8bit.png', None),
                               ('gtFine', f'{stem}_gtFine_labelIds.png', raw)):
            folder = root / sub / 'train' / city
            folder.mkdir(parents=True, exist_ok=True)
            (img if arr is None else Image.fromarray(arr)).save(folder / name)
        want = np.where(sem == 0, 255, sem.astype(np.int64) - 1)
        want[0, 0] = 255
        expected[f'{city}/{stem}'] = want.astype(np.uint8)
    return str(root), expected


def test_ids_span_cities_and_masks_map_to_train_ids(city_root):
    root, expected = city_root
    ds = CityscapesDataset(root, split='train')
    assert ds.names == sorted(expected)
    assert ds.num_classes == 19 and ds.classes[0] == 'road' and ds.classes[-1] == 'bicycle'
    for i, name in enumerate(ds.names):
        res = ds[i]
        np.testing.assert_array_equal(res['gt_seg'], expected[name])
        assert res['img'].shape == (48, 48, 3)
    assert {int(v) for v in np.unique(ds[0]['gt_seg'])} <= set(range(10)) | {255}


def test_unlabeled_subset_needs_no_masks_and_json_split_selects_ids(city_root, tmp_path):
    from ssvision.datasets import make_seg_split, save_split
    root, expected = city_root
    split = make_seg_split(sorted(expected), num_labeled=2, seed=0)
    path = str(tmp_path / 'split.json')
    save_split(split, path)
    lab = CityscapesDataset(root, split_file=path, subset='labeled')
    unl = CityscapesDataset(root, split_file=path, subset='unlabeled', ann_type='gtCoarse')
    assert lab.names == split['labeled'] and unl.names == split['unlabeled']
    res = unl[0]  # no gtCoarse folder: no mask, no error
    assert 'gt_seg' not in res and 'true_seg' not in res


def test_custom_label_map_and_missing_folder(city_root):
    root, _ = city_root
    # a two-class map: 'road' raw id 7 -> 0, 'car' raw id 26 -> 1, the rest ignored
    ds = CityscapesDataset(root, label_map={7: 0, 26: 1}, num_classes=2,
                           classes=('road', 'car'))
    for i in range(len(ds)):
        assert set(np.unique(ds[i]['gt_seg']).tolist()) <= {0, 1, 255}
    with pytest.raises(FileNotFoundError, match='leftImg8bit'):
        CityscapesDataset(root, split='val')


def test_make_seg_split_tool_on_cityscapes(city_root, tmp_path):
    from ssvision.tools import split_seg as make_seg_split
    root, expected = city_root
    out = str(tmp_path / 'splits')
    paths = make_seg_split.main(['--dataset', 'CityscapesDataset', '--data-root', root,
                                 '--fractions', '1/2', '--seeds', '0', '1', '--out-dir', out])
    assert sorted(os.path.basename(p) for p in paths) == ['split_1-2_seed0.json',
                                                          'split_1-2_seed1.json']
    for p in paths:
        with open(p) as f:
            split = json.load(f)
        assert len(split['labeled']) == 3
        assert sorted(split['labeled'] + split['unlabeled']) == sorted(expected)
    paths = make_seg_split.main(['--dataset', 'CityscapesDataset', '--data-root', root,
                                 '--num-labeled', '2', '--out-dir', out])
    with open(paths[0]) as f:
        assert len(json.load(f)['labeled']) == 2
