"""COCO detection data on real scenes: boxes, hygiene counts, partial-label splits."""

import json
import os.path as osp

import numpy as np
import pytest

from ssvision.datasets import CocoDetDataset, make_coco_split, write_coco_scenes

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def coco_file(tmp_path_factory):
    root = tmp_path_factory.mktemp('det')
    path = write_coco_scenes(str(root), 10, seed=0, items='mnist5k', size=64)
    with open(path) as f:
        coco = json.load(f)
    # hygiene cases: a crowd box, a box outside the image, an image without boxes
    coco['annotations'].append(dict(id=9001, image_id=1, category_id=2, bbox=[1, 1, 5, 5],
                                    area=25, iscrowd=1))
    coco['annotations'].append(dict(id=9002, image_id=2, category_id=2,
                                    bbox=[70, 70, 5, 5], area=25, iscrowd=0))
    coco['annotations'] = [a for a in coco['annotations'] if a['image_id'] != 3 or a['id'] > 9000]
    with open(path, 'w') as f:
        json.dump(coco, f)
    return path, coco


def test_boxes_match_the_json_and_hygiene_is_counted(coco_file):
    path, coco = coco_file
    ds = CocoDetDataset(path)
    assert len(ds) == 10 and ds.num_classes == 10 and ds.cat_ids == list(range(1, 11))
    assert ds.skipped == {'crowd': 1, 'outside_image': 1}  # [70, 70, 5, 5] in 64 x 64
    res = ds.prepare_results(0)
    anns = [a for a in coco['annotations'] if a['image_id'] == 1 and not a['iscrowd']]
    want = np.array([[a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2],
                      a['bbox'][1] + a['bbox'][3]] for a in anns], np.float32)
    np.testing.assert_allclose(res['gt_bboxes'], want)
    assert res['gt_labels'].tolist() == [a['category_id'] - 1 for a in anns]
    assert res['img'].shape == (64, 64, 3) and res['img_id'] == 1
    empty = ds.prepare_results(2)  # image 3: no annotations, still a sample
    assert empty['gt_bboxes'].shape == (0, 4)
    assert len(CocoDetDataset(path, filter_empty=True)) == 9


def test_unlabeled_subset_hides_boxes_as_true_boxes(coco_file):
    path, _ = coco_file
    ds = CocoDetDataset(path, subset='unlabeled', img_ids=[1, 3])
    res = ds.prepare_results(0)
    assert 'gt_bboxes' not in res and len(res['true_bboxes']) > 0
    assert 'true_bboxes' not in ds.prepare_results(1)
    with pytest.raises(ValueError, match='not in the file'):
        CocoDetDataset(path, img_ids=[12345])


def test_partial_label_split_is_seeded_nested_and_disjoint(coco_file):
    _, coco = coco_file
    lab10, unl10 = make_coco_split(coco, 10, seed=1)
    lab50, unl50 = make_coco_split(coco, 50, seed=1)
    ids = lambda part: {im['id'] for im in part['images']}  # noqa: E731
    assert len(ids(lab10)) == 1 and len(ids(lab50)) == 5
    assert ids(lab10) <= ids(lab50)
    assert ids(lab50) | ids(unl50) == {im['id'] for im in coco['images']}
    assert not ids(lab50) & ids(unl50)
    assert all(a['image_id'] in ids(lab50) for a in lab50['annotations'])
    assert any(ids(make_coco_split(coco, 50, seed=s)[0]) != ids(lab50) for s in range(2, 6))
    assert ids(make_coco_split(coco, 50, seed=1)[0]) == ids(lab50)
    assert lab50['categories'] == coco['categories'] == unl50['categories']


def test_split_tool_writes_files_a_config_names(coco_file, tmp_path):
    from ssvision.tools import split_coco as tool
    path, _ = coco_file
    paths = tool.main([path, '--percents', '10', '50', '--seeds', '1', '2', '--out-dir',
                       str(tmp_path), '--strip-unlabeled'])
    assert len(paths) == 8
    assert osp.basename(paths[0]) == 'annotations.1@10.json'
    assert osp.basename(paths[1]) == 'annotations.1@10-unlabeled.json'
    img_dir = osp.join(osp.dirname(path), 'images')
    lab = CocoDetDataset(paths[2], img_dir=img_dir, subset='labeled')
    unl = CocoDetDataset(paths[3], img_dir=img_dir, subset='unlabeled')
    assert len(lab) == 5 and len(unl) == 5
    assert all('true_bboxes' not in unl.prepare_results(i) for i in range(len(unl)))
