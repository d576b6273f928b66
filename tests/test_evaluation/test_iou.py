"""SegIoU on hand-computed examples."""

import math

import pytest
import torch

from ssvision.evaluation.metrics.iou import SegIoU, confusion_matrix
from ssvision.registry import METRICS

IGN = 255
GT = torch.tensor([[0, 0, 1, 1],
                   [0, 0, 1, IGN]])
# teacher: gt 0 -> 0, 1, 0, 0 (TP0 = 3, FN0 = 1); gt 1 -> 1, 1, 0 (TP1 = 2, FN1 = 1);
# FP0 = 1, FP1 = 1; IoU0 = 3 / 5, IoU1 = 2 / 4; the ignored pixel's prediction is unused
TEACHER = torch.tensor([[0, 1, 1, 1],
                        [0, 0, 0, 0]])
STUDENT = torch.tensor([[0, 0, 1, 1],
                        [0, 0, 1, 1]])


def _sample(gt, teacher, student):
    return {'gt_seg': gt, 'pred': {'teacher': teacher, 'student': student}}


def test_confusion_matrix_by_hand():
    conf = confusion_matrix(GT, TEACHER, 2)
    assert conf.tolist() == [[3, 1], [1, 2]]
    assert conf.dtype == torch.int64
    with pytest.raises(ValueError):
        confusion_matrix(GT, TEACHER + 1, 2)


def test_two_class_iou_two_names():
    metric = METRICS.build(dict(type='SegIoU'))
    assert isinstance(metric, SegIoU)
    metric.dataset_meta = {'classes': ('background', 'pot/plant')}
    # two batches: the first image whole, then the same image split into rows
    metric.process({}, [_sample(GT, TEACHER, STUDENT)])
    metric.process({}, [_sample(GT[i], TEACHER[i], STUDENT[i]) for i in range(2)])
    assert len(metric.results) == 3
    assert all(m.dtype.name == 'int64' for r in metric.results for m in r.values())
    res = metric.evaluate(3)
    assert res['teacher/IoU_background'] == pytest.approx(60.0)
    assert res['teacher/IoU_pot_plant'] == pytest.approx(50.0)
    assert res['teacher/mIoU'] == pytest.approx(55.0)
    assert res['teacher/aAcc'] == pytest.approx(100 * 5 / 7)
    assert res['teacher/mAcc'] == pytest.approx(100 * (3 / 4 + 2 / 3) / 2)
    assert res['student/mIoU'] == pytest.approx(100.0)
    assert res['student/aAcc'] == pytest.approx(100.0)


def test_ignored_pixels_do_not_count():
    other = TEACHER.clone()
    other[1, 3] = 1  # the pixel whose gt is ignore_index
    results = []
    for teacher in (TEACHER, other):
        metric = SegIoU(num_classes=2)
        metric.process({}, [_sample(GT, teacher, STUDENT)])
        results.append(metric.compute_metrics(metric.results))
    assert results[0] == results[1]


def test_absent_class_left_out_and_scores_input():
    metric = SegIoU(num_classes=3)
    scores = torch.nn.functional.one_hot(TEACHER, 3).permute(2, 0, 1).float()
    metric.process({}, [{'gt_seg': GT, 'scores': {'teacher': scores}}])
    res = metric.compute_metrics(metric.results)
    assert math.isnan(res['teacher/IoU_2'])
    assert res['teacher/IoU_0'] == pytest.approx(60.0)
    assert res['teacher/mIoU'] == pytest.approx(55.0)


def test_predicted_only_class_counts_in_miou():
    gt = torch.tensor([[0, 0]])
    pred = torch.tensor([[0, 1]])  # class 1 never in gt, predicted once: IoU 0
    metric = SegIoU()
    metric.process({}, [{'gt_seg': gt, 'pred': {'student': pred}}])
    res = metric.compute_metrics(metric.results)
    assert res['student/IoU_0'] == pytest.approx(50.0)
    assert res['student/IoU_1'] == pytest.approx(0.0)
    assert res['student/mIoU'] == pytest.approx(25.0)


def test_all_ignored_gives_no_metric():
    metric = SegIoU(num_classes=2)
    metric.process({}, [_sample(torch.full((2, 2), IGN), TEACHER[:, :2], STUDENT[:, :2])])
    assert metric.compute_metrics(metric.results) == {}
