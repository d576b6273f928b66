"""Semi-supervised detection: one-stage and two-stage losses, selectors, COCO metric."""

import math

import pytest
import torch

from ssvision.evaluation import CocoDetMetric
from ssvision.models.algorithms import SemiDetector
from ssvision.models.algorithms.pseudo_boxes import jitter_uncertainty
from ssvision.models.selectors import ClassAwareBoxSelector, FixedScoreBoxSelector
from ssvision.models.selectors.box_selectors import BaseBoxSelector
from ssvision.structures import DetInstances, box_precision, flip_uncertainty

SIZE = 64


def _detector(arch):
    # score threshold 0: the untrained teacher's every detection is a candidate
    thr = dict(box_score_thresh=0.0) if arch == 'fasterrcnn' else dict(score_thresh=0.0)
    return dict(type='TorchvisionDetector', arch=arch, backbone='resnet18', num_classes=3,
                min_size=SIZE, max_size=SIZE, anchor_sizes=(8, 16, 32, 64, 128),
                **({'box_detections_per_img': 20} if arch == 'fasterrcnn' else
                   {'detections_per_img': 20}), **thr)


pytestmark = pytest.mark.usefixtures('one_thread')


def _batch(n=2):
    g = torch.Generator().manual_seed(0)
    img = lambda: [torch.randint(0, 256, (3, SIZE, SIZE), generator=g, dtype=torch.uint8)  # noqa: E731
                   for _ in range(n)]
    gt = [DetInstances([[8, 8, 30, 40]], [1]), DetInstances([[20, 10, 50, 30]], [2])][:n]
    eye = torch.eye(3).expand(n, 3, 3).clone()
    shift = eye.clone()
    shift[:, 0, 2] = 3.0  # the student's view is shifted 3 px right of the teacher's
    return {'inputs': {'sup': img(), 'unsup_teacher': img(), 'unsup_student': img()},
            'data_samples': {'sup': {'gt_instances': gt},
                             'unsup_teacher': {'homography': eye, 'true_instances': gt},
                             'unsup_student': {'homography': shift}}}


@pytest.mark.parametrize('arch', ['fasterrcnn', 'retinanet', 'fcos'])
def test_unsup_loss_positive_all_selected_zero_none_selected(arch):
    for threshold, positive in ((0.0, True), (1.01, False)):
        torch.manual_seed(0)
        model = SemiDetector(detector=_detector(arch),
                             selector=dict(type='FixedScoreBoxSelector', threshold=threshold),
                             semi_train_cfg=dict(reg_uncertainty=None))
        model.train()
        data = model.data_preprocessor(_batch(), True)
        losses = model(**data, mode='loss')
        assert math.isfinite(losses['sup_loss'].item()) and losses['sup_loss'].item() > 0
        u = losses['unsup_loss_cls'] + losses['unsup_loss_reg']
        assert math.isfinite(u.item())
        if positive:
            assert u.item() > 0 and losses['pb_per_img'].item() > 0
            u.backward()
            assert any(p.grad is not None and p.grad.abs().sum() > 0
                       for p in model.student.parameters())
            assert all(p.grad is None for p in model.teacher.parameters())
        else:
            assert u.item() == 0.0 and losses['pb_per_img'].item() == 0
        # true boxes are known here, so recall must be logged (a missing key fails)
        recall = losses['pb_recall'].item()
        assert 0.0 <= recall <= 1.0 if positive else recall == 0.0


def test_regression_gating_uses_only_reliable_boxes():
    torch.manual_seed(0)
    model = SemiDetector(detector=_detector('retinanet'),
                         selector=dict(type='FixedScoreBoxSelector', threshold=0.0),
                         semi_train_cfg=dict(reg_uncertainty=0.0))  # nothing is that sure
    model.train()
    data = model.data_preprocessor(_batch(), True)
    losses = model(**data, mode='loss')
    assert losses['unsup_loss_cls'].item() > 0
    assert losses['unsup_loss_reg'].item() == 0.0 and losses['pb_reg_frac'].item() == 0.0


def test_jitter_uncertainty_by_hand():
    dets = [DetInstances([[10, 10, 30, 50], [0, 0, 20, 20]], [0, 1], [0.9, 0.8]),
            DetInstances(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), torch.zeros(0))]

    class Identity:  # a second stage that keeps every box where it is
        def refine_boxes(self, images, boxes, labels):
            return [b.clone() for b in boxes]

    class Snap:  # one that regresses every copy to the same box
        def refine_boxes(self, images, boxes, labels):
            return [torch.tensor([5.0, 5, 25, 45]).expand(len(b), 4) for b in boxes]

    torch.manual_seed(0)
    u = jitter_uncertainty(Identity(), [None, None], dets, times=400, scale=0.05)
    # std of the jitter over the copies / (w, h) is the jitter scale itself
    assert u[0].shape == (2,) and torch.allclose(u[0], torch.full((2,), 0.05), atol=0.006)
    assert u[1].shape == (0,)
    u = jitter_uncertainty(Snap(), [None, None], dets, times=10)
    assert torch.equal(u[0], torch.zeros(2))


def test_refine_boxes_is_the_second_stage_regression():
    torch.manual_seed(0)
    det = SemiDetector(detector=_detector('fasterrcnn')).teacher
    img = [torch.rand(3, SIZE, SIZE), torch.rand(3, SIZE, SIZE)]
    boxes = [torch.tensor([[8.0, 8, 30, 40], [1, 2, 60, 50]]), torch.zeros(0, 4)]
    labels = [torch.tensor([0, 2]), torch.zeros(0, dtype=torch.long)]
    out = det.refine_boxes(img, boxes, labels)
    assert out[0].shape == (2, 4) and out[1].shape == (0, 4)
    assert (out[0] >= 0).all() and (out[0] <= SIZE).all()
    assert torch.equal(out[0], det.refine_boxes(img, boxes, labels)[0])  # no randomness
    # another class reads another regression column
    assert not torch.equal(out[0], det.refine_boxes(img, boxes, [torch.tensor([1, 1]),
                                                                 labels[1]])[0])
    # boxes are in the original image's pixels whatever the detector's internal resize:
    # the same picture at twice the size (both resized to the same network input) gives
    # twice the boxes
    small = [torch.rand(3, 32, 48)]
    big = [torch.nn.functional.interpolate(small[0][None], scale_factor=2.0,
                                           mode='nearest')[0]]
    b = [torch.tensor([[4.0, 4, 20, 24], [10, 2, 44, 30]])]
    lab = [torch.tensor([0, 1])]
    torch.testing.assert_close(det.refine_boxes(big, [2 * b[0]], lab)[0],
                               2 * det.refine_boxes(small, b, lab)[0], atol=1.0, rtol=0)
    assert (det.refine_boxes(small, b, lab)[0][:, 2] <= 48).all()
    one_stage = SemiDetector(detector=_detector('retinanet')).teacher
    with pytest.raises(NotImplementedError):
        one_stage.refine_boxes(img, boxes, labels)


def test_box_jitter_gate_trains_regression_only_on_steady_boxes():
    out = {}
    for thr in (-1.0, float('inf')):
        torch.manual_seed(0)
        model = SemiDetector(detector=_detector('fasterrcnn'),
                             selector=dict(type='FixedScoreBoxSelector', threshold=0.0),
                             semi_train_cfg=dict(reg_uncertainty=thr,
                                                 reg_uncertainty_mode='jitter', jitter_times=4))
        model.train()
        out[thr] = model(**model.data_preprocessor(_batch(), True), mode='loss')
    assert out[-1.0]['unsup_loss_cls'].item() > 0 and out[-1.0]['unsup_loss_reg'].item() == 0.0
    assert out[-1.0]['pb_reg_frac'].item() == 0.0
    assert out[float('inf')]['pb_reg_frac'].item() == 1.0
    assert out[float('inf')]['unsup_loss_reg'].item() > 0

    class EveryOther(BaseBoxSelector):  # keeps detections 0, 2, 4, ... of each image
        def forward(self, dets):
            return [torch.arange(len(d)) % 2 == 0 for d in dets]

    torch.manual_seed(0)
    model = SemiDetector(detector=_detector('fasterrcnn'),
                         semi_train_cfg=dict(reg_uncertainty=float('inf'),
                                             reg_uncertainty_mode='jitter', jitter_times=3))
    model.selector = model.policy.selector = EveryOther()
    model.train()
    losses = model(**model.data_preprocessor(_batch(), True), mode='loss')
    # each kept box is judged (and here trusted), none of the dropped ones
    assert losses['pb_per_img'].item() > 0 and losses['pb_reg_frac'].item() == 1.0
    with pytest.raises(ValueError, match='times'):
        jitter_uncertainty(None, [], [], times=1)
    with pytest.raises(ValueError, match='two-stage'):
        SemiDetector(detector=_detector('retinanet'),
                     semi_train_cfg=dict(reg_uncertainty_mode='jitter'))
    with pytest.raises(ValueError, match='reg_uncertainty_mode'):
        SemiDetector(detector=_detector('fasterrcnn'),
                     semi_train_cfg=dict(reg_uncertainty_mode='dropout'))


def test_burn_in_and_unknown_keys():
    from mmengine.logging import MessageHub
    model = SemiDetector(detector=_detector('retinanet'),
                         semi_train_cfg=dict(burn_in_iters=10))
    model.train()
    MessageHub.get_current_instance().update_info('iter', 3)
    try:
        losses = model(**model.data_preprocessor(_batch(1), True), mode='loss')
    finally:
        MessageHub.get_current_instance().update_info('iter', 0)
    assert not any(k.startswith('unsup_') for k in losses)
    with pytest.raises(ValueError, match=r'unknown key\(s\) \[.thr.\] in semi_train_cfg'):
        SemiDetector(detector=_detector('retinanet'), semi_train_cfg=dict(thr=0.5))


def test_class_aware_selector_keeps_each_classes_top_boxes():
    sel = ClassAwareBoxSelector(num_classes=3, ratio=0.5, floor=0.1, ceil=0.9, momentum=0.0)
    # class 0 is confident, class 1 never reaches 0.5, class 2 is absent
    dets = [DetInstances(torch.zeros(6, 4), [0, 0, 0, 1, 1, 1],
                         [0.95, 0.9, 0.6, 0.4, 0.3, 0.2])]
    keep = sel(dets)[0]
    # medians: class 0 -> 0.9 (capped at ceil 0.9), class 1 -> 0.3
    assert keep.tolist() == [True, True, False, True, True, False]
    torch.testing.assert_close(sel.thresholds(), torch.tensor([0.9, 0.3, 0.9]))
    # strictly above the threshold, as mmdetection's filter_gt_instances: 0.9 is dropped
    assert FixedScoreBoxSelector(0.9)(dets)[0].tolist() == [True] + [False] * 5
    # EMA: a later batch moves class 1's threshold only partly
    sel.momentum = 0.5
    sel([DetInstances(torch.zeros(2, 4), [1, 1], [0.5, 0.5])])
    assert sel.thresholds()[1].item() == pytest.approx(0.4)
    assert sel.state_dict()['tau'].shape == (3,)


def test_class_aware_count_prior_keeps_the_expected_boxes_per_class():
    sel = ClassAwareBoxSelector(num_classes=3, ratio=1.0, floor=0.0, ceil=1.0, min_score=0.0,
                                momentum=0.0)
    # labeled: class 0 twice per image, class 1 once in two images, class 2 never
    sel.observe([torch.tensor([0, 0, 1]), torch.tensor([0, 0])])
    assert torch.allclose(sel.boxes_per_image(), torch.tensor([2.0, 0.5, 0.0]))

    def det(scores, labels):
        return DetInstances(torch.zeros(len(scores), 4), labels, scores)
    dets = [det([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.95, 0.1],
                [0, 0, 0, 0, 0, 1, 1, 1, 2, 2]),
            det([0.85, 0.05, 0.35], [0, 0, 1])]
    keep = sel(dets)
    # class 0: 2 per image x 2 images = its 4 best (0.9, 0.85, 0.8, 0.7); class 1: 0.5 x 2
    # = its best (0.4); class 2 (never labeled): none, even at 0.95
    assert keep[0].tolist() == [True, True, True, False, False, True, False, False, False,
                                False]
    assert keep[1].tolist() == [True, False, False]
    assert torch.allclose(sel.thresholds(), torch.tensor([0.7, 0.4, 1.0]))
    # however many low-score candidates the teacher adds, the count stays
    noisy = [det(d.scores.tolist() + [0.01] * 40, d.labels.tolist() + [0] * 40) for d in dets]
    assert sum(int(k.sum()) for k in sel(noisy)) == 5
    half = ClassAwareBoxSelector(num_classes=3, ratio=0.5, floor=0.0, ceil=1.0, min_score=0.0,
                                 momentum=0.0)
    half.load_state_dict(sel.state_dict())  # the counts are checkpointed buffers
    assert float(half.labeled_images) == 2
    half(dets)
    assert torch.allclose(half.thresholds()[:2], torch.tensor([0.85, 0.4]))
    # the quantile rule keeps a share of the candidates instead
    q = ClassAwareBoxSelector(num_classes=3, mode='quantile', ratio=0.5, floor=0.0, ceil=1.0,
                              min_score=0.0, momentum=0.0)
    q.observe([torch.tensor([0])])
    assert sum(int(k.sum()) for k in q(noisy)) > 5
    with pytest.raises(ValueError, match='mode'):
        ClassAwareBoxSelector(num_classes=3, mode='topk')
    with pytest.raises(ValueError, match='labels'):
        sel.observe([torch.tensor([3])])


def test_semi_detector_feeds_the_labeled_boxes_to_the_selector():
    torch.manual_seed(0)
    model = SemiDetector(detector=_detector('retinanet'),
                         selector=dict(type='ClassAwareBoxSelector', num_classes=3,
                                       floor=0.0, min_score=0.0),
                         semi_train_cfg=dict(reg_uncertainty=None))
    model.train()
    losses = model(**model.data_preprocessor(_batch(), True), mode='loss')
    assert float(model.selector.labeled_images) == 2
    assert model.selector.labeled_boxes.tolist() == [0.0, 1.0, 1.0]
    # classes 1 and 2 expect one box per two images: each keeps its best per batch
    assert 0 < losses['pb_per_img'].item() <= 1.0 + 1e-6


def test_flip_uncertainty_and_precision_by_hand():
    dets = DetInstances([[10, 10, 30, 20], [40, 0, 60, 10]], [0, 1], [0.9, 0.8])
    # flipped detections (image width 64) of the first box, 2 px off on x1
    flipped = DetInstances([[64 - 30, 10, 64 - 12, 20]], [0], [0.9])
    u = flip_uncertainty(dets, flipped, 64)
    assert u[0].item() == pytest.approx((2 / 20) / 4)
    assert math.isinf(u[1].item())  # no match
    true = DetInstances([[10, 10, 30, 21]], [0])
    assert box_precision(dets, true) == (1, 2)
    assert box_precision(DetInstances(), true) == (0, 0)


def test_coco_metric_perfect_and_empty_predictions():
    gt = DetInstances([[0, 0, 20, 20], [30, 30, 60, 50]], [0, 1])
    perfect = DetInstances(gt.bboxes, gt.labels, [0.9, 0.8])
    wrong = DetInstances([[40, 0, 60, 10]], [0], [0.9])
    metric = CocoDetMetric()
    metric.dataset_meta = {'classes': ('a', 'b', 'c'), 'cat_ids': [1, 2, 3]}
    metric.process({}, [{'img_id': 1, 'ori_shape': (64, 64), 'gt_instances': gt,
                         'pred': {'teacher': perfect, 'student': wrong}}])
    res = metric.compute_metrics(metric.results)
    assert res['teacher/mAP'] == pytest.approx(100.0)
    assert res['teacher/AP_a'] == pytest.approx(100.0) and res['teacher/AP_c'] == -1.0
    assert res['student/mAP'] == pytest.approx(0.0)
    metric = CocoDetMetric()
    metric.process({}, [{'img_id': 1, 'ori_shape': (64, 64), 'gt_instances': gt,
                         'pred': {'teacher': DetInstances(scores=torch.zeros(0))}}])
    assert metric.compute_metrics(metric.results)['teacher/mAP'] == 0.0


def test_metric_without_ground_truth_or_predictions_and_label_checks():
    metric = CocoDetMetric()
    metric.dataset_meta = {'classes': ('a', 'b'), 'cat_ids': [1, 2]}
    metric.process({}, [{'img_id': 1, 'ori_shape': (32, 32), 'gt_instances': DetInstances(),
                         'pred': {'teacher': DetInstances(scores=torch.zeros(0))}}])
    res = metric.compute_metrics(metric.results)
    assert res['teacher/mAP'] == -1.0 and res['teacher/AP_a'] == -1.0
    from ssvision.registry import MODELS
    det = MODELS.build(_detector('retinanet'))
    det.train()
    with pytest.raises(ValueError, match='labels must be in'):
        det.loss([torch.rand(3, SIZE, SIZE)], [DetInstances([[1, 1, 9, 9]], [3])])


def test_predict_maps_boxes_back_to_the_original_image():
    torch.manual_seed(0)
    model = SemiDetector(detector=_detector('fcos'), selector=None)
    model.eval()
    h = torch.tensor([[2.0, 0, 0], [0, 2, 0], [0, 0, 1]])  # the view is 2x the original
    imgs = [torch.rand(3, SIZE, SIZE)]
    out = model.predict(imgs, {'homography': h[None], 'ori_shape': [(32, 32)],
                               'img_id': torch.tensor([5]),
                               'gt_instances': [DetInstances([[10, 10, 50, 50]], [0])]})
    assert out[0]['img_id'] == 5 and out[0]['ori_shape'] == (32, 32)
    torch.testing.assert_close(out[0]['gt_instances'].bboxes, torch.tensor([[5.0, 5, 25, 25]]))
    for d in out[0]['pred'].values():
        assert (d.bboxes <= 32).all()


def test_detector_runs_the_shared_recipe():
    """SemiDetector is a SemiBase recipe: the unlabeled weight follows burn-in and the
    linear warm-up, a plain detector checkpoint fills teacher and student, and what a
    detection task cannot do is refused at build time. Catches a detector loop of its
    own that ignores unsup_warmup_iters (the weight would be 1 at once) or loads a plain
    checkpoint into the student only."""
    from mmengine.logging import MessageHub

    from ssvision.models.algorithms import SemiBase
    assert isinstance(SemiDetector(detector=_detector('retinanet')), SemiBase)
    losses = {}
    for warmup in (0, 4):
        torch.manual_seed(0)
        model = SemiDetector(detector=_detector('retinanet'),
                             selector=dict(type='FixedScoreBoxSelector', threshold=0.0),
                             semi_train_cfg=dict(burn_in_iters=2, unsup_warmup_iters=warmup,
                                                 reg_uncertainty=None))
        model.train()
        MessageHub.get_current_instance().update_info('iter', 2)  # first unlabeled step
        try:
            losses[warmup] = model(**model.data_preprocessor(_batch(), True), mode='loss')
        finally:
            MessageHub.get_current_instance().update_info('iter', 0)
    full, ramped = losses[0]['unsup_loss_cls'].item(), losses[4]['unsup_loss_cls'].item()
    assert full > 0 and ramped == pytest.approx(full / 4, rel=1e-5)  # (t + 1) / warmup
    # a plain detector checkpoint (no student. / teacher. keys) loads into both
    torch.manual_seed(1)
    plain = SemiDetector(detector=_detector('retinanet')).student.state_dict()
    model = SemiDetector(detector=_detector('retinanet'))
    model.load_state_dict(plain, strict=False)
    for name, value in plain.items():
        assert torch.equal(model.student.state_dict()[name], value)
        assert torch.equal(model.teacher.state_dict()[name], value)
    with pytest.raises(ValueError, match='dense task'):
        SemiDetector(detector=_detector('retinanet'), semi_train_cfg=dict(cutmix_prob=0.5))
    with pytest.raises(ValueError, match='aux_heads'):
        SemiDetector(detector=_detector('retinanet'), aux_heads=[dict(type='RotationHead')])
    with pytest.raises(ValueError, match='student_forward'):
        SemiDetector(detector=_detector('retinanet'),
                     semi_train_cfg=dict(student_forward='concat'))


def test_box_selector_state_moves_in_training_mode_only():
    """Validation (eval mode) must not move the class-aware thresholds or the labeled
    count prior. Catches a selector that updates its statistics in every call."""
    sel = ClassAwareBoxSelector(num_classes=2, ratio=0.5, floor=0.1, ceil=0.9, momentum=0.0)
    dets = [DetInstances(torch.zeros(4, 4), [0, 0, 1, 1], [0.95, 0.6, 0.5, 0.3])]
    sel.eval()
    sel(dets)
    sel.observe([torch.tensor([0, 1])])
    assert not sel.seen.any() and float(sel.labeled_images) == 0
    assert torch.equal(sel.thresholds(), torch.full((2,), 0.9))
    sel.train()
    sel(dets)
    sel.observe([torch.tensor([0, 1])])
    assert sel.seen.all() and float(sel.labeled_images) == 1


def test_clean_stats_keeps_pseudo_labeled_images_out_of_bn_statistics():
    """student_forward='clean_stats': the strong, pseudo-labeled forwards must not move
    the student's BN running statistics; 'separate' does move them (so the check is not
    vacuous). Catches a clean_stats that is accepted but ignored for detection."""
    def running_means(mode, threshold):
        torch.manual_seed(0)
        model = SemiDetector(detector=_detector('retinanet'),
                             selector=dict(type='FixedScoreBoxSelector', threshold=threshold),
                             semi_train_cfg=dict(student_forward=mode, reg_uncertainty=None))
        model.train()
        model(**model.data_preprocessor(_batch(), True), mode='loss')
        return torch.cat([m.running_mean for m in model.student.modules()
                          if isinstance(m, torch.nn.BatchNorm2d)])

    labeled_only = running_means('separate', 1.01)  # no pseudo-box: labeled forward only
    assert labeled_only.numel() > 0
    assert not torch.equal(running_means('separate', 0.0), labeled_only)
    assert torch.equal(running_means('clean_stats', 0.0), labeled_only)


def test_split_loss_terms_knows_both_libraries_and_refuses_unknown_losses():
    """One table for torchvision's and mmdetection's loss names. Catches a substring rule
    that files mmdetection's 'loss_rpn_bbox' or a DETR decoder layer's 'd0.loss_iou' as
    classification, and one that trains an unknown loss on every pseudo-box silently."""
    from ssvision.models.detectors.loss_terms import split_loss_terms
    terms = {'loss_classifier': 1, 'loss_box_reg': 2, 'loss_rpn_cls': 3, 'loss_rpn_bbox': 4,
             'd0.loss_cls': 5, 'd0.loss_iou': 6, 'bbox_ctrness': 7, 'acc': 8}
    cls, reg = split_loss_terms(terms)
    assert cls == {'loss_classifier': 1, 'loss_rpn_cls': 3, 'd0.loss_cls': 5}
    assert reg == {'loss_box_reg': 2, 'loss_rpn_bbox': 4, 'd0.loss_iou': 6, 'bbox_ctrness': 7}
    with pytest.raises(KeyError, match='loss_mask'):
        split_loss_terms({'loss_cls': 1, 'loss_mask': 2})
