"""Box-aware views: boxes follow every geometric op, against hand-computed boxes."""

import numpy as np
import pytest
import torch

from ssvision.datasets.transforms import (
    DetStrongAugment,
    DetWeakAugment,
    MultiBranch,
    PackDetInputs,
)
from ssvision.structures import project_boxes, transfer_boxes


def _results(h=60, w=80, boxes=((10, 20, 30, 50),), labels=(3,)):
    img = np.zeros((h, w, 3), np.uint8)
    for x1, y1, x2, y2 in boxes:  # white rectangles exactly where the boxes are
        img[y1:y2, x1:x2] = 255
    return {'img': img, 'gt_bboxes': np.asarray(boxes, np.float32).reshape(-1, 4),
            'gt_labels': np.asarray(labels, np.int64)}


def _white_extent(img):
    ys, xs = np.nonzero(img[..., 0] > 127)
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


def test_project_boxes_scale_flip_translate_and_clip():
    boxes = np.array([[10, 20, 30, 50], [70, 5, 90, 15]], np.float32)
    scale = np.diag([2.0, 0.5, 1.0])
    out, keep = project_boxes(boxes, scale, (100, 200))
    np.testing.assert_allclose(out[0], [20, 10, 60, 25])
    flip = np.array([[-1.0, 0, 80], [0, 1, 0], [0, 0, 1]])
    out, keep = project_boxes(boxes, flip, (60, 80))
    np.testing.assert_allclose(out[0], [50, 20, 70, 50])
    # the second box (partly outside the 80-wide image) flips to x in [-10, 10]:
    # clipped to [0, 10], still 10 px wide, kept
    assert keep.tolist() == [True, True]
    np.testing.assert_allclose(out[1], [0, 5, 10, 15])


def test_project_boxes_drops_boxes_leaving_the_view():
    boxes = torch.tensor([[10.0, 10, 20, 20], [50, 50, 60, 60]])
    shift = torch.tensor([[1.0, 0, 45], [0, 1, 0], [0, 0, 1]])
    out, keep = project_boxes(boxes, shift, (64, 64), min_size=1.0)
    assert keep.tolist() == [True, False]  # the second moves to x in [95, 105]: gone
    torch.testing.assert_close(out[0], torch.tensor([55.0, 10, 64, 20]))
    # rotation by 90 degrees about the origin: the tight box of the moved rectangle
    rot = torch.tensor([[0.0, -1, 64], [1, 0, 0], [0, 0, 1]])
    out, keep = project_boxes(boxes[:1], rot, (64, 64))
    torch.testing.assert_close(out[0], torch.tensor([44.0, 10, 54, 20]))


def test_weak_resize_and_flip_move_pixels_and_boxes_alike():
    t = DetWeakAugment(short_side=(120, 120), flip_prob=1.0, seed=0)
    res = t(_results())
    # short side 60 -> 120: scale 2; then flip in a 160-wide image
    assert res['img'].shape == (120, 160, 3)
    np.testing.assert_allclose(res['gt_bboxes'][0], [160 - 60, 40, 160 - 20, 100])
    np.testing.assert_allclose(res['homography'],
                               [[-2, 0, 160], [0, 2, 0], [0, 0, 1]], atol=1e-9)
    x1, y1, x2, y2 = _white_extent(res['img'])
    assert abs(x1 - 100) <= 1 and abs(x2 - 140) <= 1 and abs(y1 - 40) <= 1 and abs(y2 - 100) <= 1


def test_strong_affine_moves_pixels_and_boxes_alike_and_records_the_matrix():
    t = DetStrongAugment(affine_prob=1.0, scale=(1.0, 1.0), translate=0.2, cutout_prob=0.0,
                         fill=0, seed=3)
    res = t(_results())
    m = res['homography']
    tx, ty = m[0, 2], m[1, 2]
    np.testing.assert_allclose(m[:2, :2], np.eye(2), atol=1e-9)
    want = np.clip([10 + tx, 20 + ty, 30 + tx, 50 + ty], 0, [80, 60, 80, 60])
    np.testing.assert_allclose(res['gt_bboxes'][0], want, atol=1e-4)
    x1, y1, x2, y2 = _white_extent(res['img'])
    assert max(abs(x1 - want[0]), abs(y1 - want[1]), abs(x2 - want[2]),
               abs(y2 - want[3])) <= 1
    # scale 2 about the centre (40, 30): x -> 2x - 40, y -> 2y - 30
    m = DetStrongAugment.affine_matrix((60, 80), 2.0, 0.0, 0.0, 0.0, 0.0)
    out, _ = project_boxes(np.array([[10, 20, 30, 50]], np.float32), m, (60, 80))
    np.testing.assert_allclose(out[0], [0, 10, 20, 60])  # clipped at 0 and 60


def test_boxes_that_all_leave_the_view_are_dropped_never_kept_invalid():
    t = DetStrongAugment(affine_prob=1.0, scale=(3.0, 3.0), translate=0.0, cutout_prob=0.0,
                         seed=0)
    res = t(_results(boxes=((0, 0, 6, 6), (74, 54, 80, 60)), labels=(1, 2)))
    assert res['gt_bboxes'].shape == (0, 4) and res['gt_labels'].shape == (0,)
    packed = PackDetInputs()(res)
    assert len(packed['data_samples']['gt_instances']) == 0


def test_empty_image_packs_and_unlabeled_true_boxes_move_too():
    res = _results(boxes=(), labels=())
    res['gt_bboxes'] = np.zeros((0, 4), np.float32)
    out = DetWeakAugment(short_side=(30, 30), flip_prob=1.0, seed=0)(res)
    assert out['gt_bboxes'].shape == (0, 4)
    unl = {'img': np.zeros((60, 80, 3), np.uint8),
           'true_bboxes': np.array([[10, 20, 30, 50]], np.float32), 'true_labels': np.array([1])}
    out = DetWeakAugment(short_side=(30, 30), flip_prob=0.0, seed=0)(unl)
    np.testing.assert_allclose(out['true_bboxes'][0], [5, 10, 15, 25])
    packed = PackDetInputs()(out)['data_samples']
    assert len(packed['true_instances']) == 1 and len(packed['gt_instances']) == 0


def test_teacher_boxes_transfer_into_the_student_view():
    """The student's own gt boxes equal the teacher view's boxes moved by H_s inv(H_t)."""
    pipeline = [DetWeakAugment(short_side=(90, 90), flip_prob=1.0, seed=0),
                MultiBranch(branches=dict(
                    t=[PackDetInputs()],
                    s=[DetStrongAugment(affine_prob=1.0, scale=(0.8, 1.2), translate=0.1,
                                        cutout_prob=1.0, seed=0), PackDetInputs()]))]
    res = _results(boxes=((20, 10, 40, 30), (50, 30, 70, 50)), labels=(0, 1))
    res['sample_seed'] = 7
    for t in pipeline:
        res = t(res)
    t_s, s_s = res['data_samples']['t'], res['data_samples']['s']
    moved, keep = transfer_boxes(t_s['gt_instances'], t_s['homography'], s_s['homography'],
                                 res['inputs']['s'].shape[-2:], min_size=2.0)
    torch.testing.assert_close(moved.bboxes, s_s['gt_instances'].bboxes, atol=1e-3, rtol=0)
    assert moved.labels.tolist() == s_s['gt_instances'].labels.tolist()


def test_transform_arguments_are_checked():
    with pytest.raises(ValueError, match='short_side'):
        DetWeakAugment(short_side=(50, 10))
    with pytest.raises(ValueError, match='scale'):
        DetStrongAugment(scale=(0, 1))
    with pytest.raises(ValueError, match='uint8'):
        DetWeakAugment()({'img': np.zeros((5, 5), np.uint8)})
