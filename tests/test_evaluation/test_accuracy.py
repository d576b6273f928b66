"""SemiAccuracy on hand-computed examples."""

import math

import pytest
import torch

from ssvision.evaluation import SemiAccuracy
from ssvision.registry import METRICS


def _onehot(c, num_classes=3):
    s = torch.zeros(num_classes)
    s[c] = 1.0
    return s


def _samples(gts, teacher, student):
    return [{'gt_label': g, 'scores': {'teacher': _onehot(t), 'student': _onehot(s)}}
            for g, t, s in zip(gts, teacher, student)]


def test_top1_and_recall_two_names():
    metric = METRICS.build(dict(type='SemiAccuracy'))
    assert isinstance(metric, SemiAccuracy)
    metric.dataset_meta = {'classes': ('cat', 'dog', 'sea lion')}
    gts = [0, 0, 1, 1, 1, 2]
    teacher = [0, 1, 1, 1, 0, 2]   # 4/6; recalls 1/2, 2/3, 1/1
    student = [0, 0, 2, 2, 2, 2]   # 3/6; recalls 1, 0, 1
    metric.process({}, _samples(gts[:4], teacher[:4], student[:4]))
    metric.process({}, _samples(gts[4:], teacher[4:], student[4:]))
    res = metric.compute_metrics(metric.results)
    assert res['teacher/top1'] == pytest.approx(100 * 4 / 6)
    assert res['teacher/recall_cat'] == pytest.approx(50.0)
    assert res['teacher/recall_dog'] == pytest.approx(100 * 2 / 3)
    assert res['teacher/recall_sea_lion'] == pytest.approx(100.0)
    assert res['teacher/mean_recall'] == pytest.approx((50 + 200 / 3 + 100) / 3)
    assert res['student/top1'] == pytest.approx(50.0)
    assert res['student/recall_cat'] == pytest.approx(100.0)
    assert res['student/recall_dog'] == pytest.approx(0.0)
    assert res['student/mean_recall'] == pytest.approx(200 / 3)
    assert not any('top5' in k for k in res)


def test_ignores_unlabelled_and_index_names():
    metric = SemiAccuracy()
    samples = [{'gt_label': torch.tensor(g), 'scores': {'teacher': _onehot(t)}}
               for g, t in [(0, 0), (-1, 1), (1, 0), (-1, 0)]]
    metric.process({}, samples)
    assert len(metric.results) == 4
    res = metric.compute_metrics(metric.results)
    assert res['teacher/top1'] == pytest.approx(50.0)
    assert res['teacher/recall_0'] == pytest.approx(100.0)
    assert res['teacher/recall_1'] == pytest.approx(0.0)
    assert math.isnan(res['teacher/recall_2'])   # class 2 never in gt
    assert res['teacher/mean_recall'] == pytest.approx(50.0)


def test_top5_and_evaluate():
    metric = SemiAccuracy(topk=(1, 5))
    metric.dataset_meta = {'classes': [str(i) for i in range(10)]}
    scores = torch.arange(10, dtype=torch.float)   # ranking 9, 8, 7, 6, 5, 4, ...
    samples = [{'gt_label': g, 'scores': {'student': scores}} for g in (9, 7, 5, 4)]
    metric.process({}, samples)
    res = metric.evaluate(size=4)
    assert res['student/top1'] == pytest.approx(25.0)
    assert res['student/top5'] == pytest.approx(75.0)
    assert metric.results == []


def test_bad_topk():
    with pytest.raises(ValueError):
        SemiAccuracy(topk=(0,))
