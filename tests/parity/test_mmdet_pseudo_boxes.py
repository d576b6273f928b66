"""The mmdetection plug-in's pseudo-boxes against mmdetection 3.3's own semi-supervised
filtering, on the same teacher output.

mmdetection's code runs unchanged (``SemiBaseDetector.loss``, ``SoftTeacher``'s
``get_pseudo_instances`` / ``project_pseudo_instances`` / ``filter_gt_instances`` /
``rcnn_reg_loss_by_pseudo_instances``); only its networks are stubs that return
hand-made detections (and, for Soft Teacher's box jitter, a hand-made box head), so no
trained model is needed. ssvision's side is the plug-in (``SsvSemiDetector``) for the
score and size filters, and the shared pseudo-box policy in ``mode='jitter'`` for the
box-jitter gate (the plug-in itself gates regression by flip consistency only).

The mmdetection-equivalent configuration of the plug-in is
``selector=dict(type='FixedScoreBoxSelector', threshold=cls_pseudo_thr)``, mmdetection's
``min_pseudo_bbox_wh`` and ``reg_uncertainty=None`` (``SemiBaseDetector`` has no
regression gate). The inequalities at the score and the regression thresholds and the
size the jitter's spread is divided by follow mmdetection / Soft Teacher, each with a
test at the tie. Differences the inputs avoid, where noted: teacher boxes outside the original image
(mmdetection clips them there first), a Soft Teacher initial score threshold under
``cls_pseudo_thr``.

Coordinates are multiples of 1/256 and the views' matrices scale by powers of two, so
both sides' projections are exact in float32 and a box can sit exactly on a size
threshold in the student's view.
"""

import copy
from unittest import mock

import numpy as np
import pytest
import torch

pytestmark = [pytest.mark.mmdet, pytest.mark.parity,
              # Soft Teacher's std over the copies of an image without boxes
              pytest.mark.filterwarnings('ignore:std():UserWarning')]
pytest.importorskip('mmdet')
pytest.importorskip('mmcv.ops')

from mmdet.models.detectors import SoftTeacher  # noqa: E402
from mmdet.models.utils import filter_gt_instances  # noqa: E402
from mmdet.registry import MODELS  # noqa: E402
from mmdet.structures import DetDataSample  # noqa: E402
from mmengine.config import ConfigDict  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402
from mmengine.structures import InstanceData  # noqa: E402

import ssvision.integrations.mmdet  # noqa: E402,F401  (registers SsvSemiDetector)
from ssvision.models.algorithms import pseudo_boxes  # noqa: E402
from ssvision.models.algorithms.pseudo_boxes import (  # noqa: E402
    PseudoBoxPolicy,
    jitter_uncertainty,
)
from ssvision.models.selectors import FixedScoreBoxSelector  # noqa: E402
from ssvision.structures import DetInstances  # noqa: E402

NUM_CLASSES = 3
ORI = (64, 96)  # (H, W) of every original image
CLS_THR = 0.9  # mmdetection's and Soft Teacher's cls_pseudo_thr
F32_THR = float(np.float32(CLS_THR))  # the score a float32 teacher gives "0.9" as
JITTER_TIMES, JITTER_SCALE, REG_THR = 10, 0.06, 0.02  # Soft Teacher's configs


@pytest.fixture(autouse=True)
def _mmdet_scope():
    """mmdetection's registry scope for each test, and the earlier scope after it (a
    scope left as the default would make later tests build ssvision's modules from
    mmdetection's registries)."""
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield


def _affine(a, c, d, f):
    return [[a, 0.0, c], [0.0, d, f], [0.0, 0.0, 1.0]]


# per image: (teacher view matrix, teacher view (H, W), student view matrix, student
# view (H, W)); the matrices map the original image into the view, as mmdetection's
# homography_matrix does
VIEWS = [
    # teacher resized x2; student flipped and resized x0.5 (teacher -> student: x1/4)
    (_affine(2, 0, 2, 0), (128, 192), _affine(-0.5, 48, 0.5, 0), (32, 48)),
    # teacher flipped; student shifted left 16 and down 8, so boxes leave its view
    (_affine(-1, 96, 1, 0), ORI, _affine(1, -16, 1, 8), ORI),
    # no detection at all
    (_affine(1, 0, 1, 0), ORI, _affine(1, 0, 1, 0), ORI),
    # teacher resized x0.5; student the original image (teacher -> student: x2)
    (_affine(0.5, 0, 0.5, 0), (32, 48), _affine(1, 0, 1, 0), ORI),
    # detections, all scoring under the threshold
    (_affine(1, 0, 1, 0), ORI, _affine(1, 0, 1, 0), ORI),
]


def _grid(x):
    return torch.floor(x * 256) / 256


def _random_dets(g, n, shape, min_score=0.5, below=False):
    """``n`` boxes of various sizes inside a view of ``shape``, dyadic scores in
    ``[min_score, 1)`` (never exactly a float32 0.9), labels of every class."""
    h, w = shape
    xy = _grid(torch.rand(n, 2, generator=g) * torch.tensor([w * 0.8, h * 0.8]))
    wh = _grid(torch.tensor([w, h]) / 32 + torch.rand(n, 2, generator=g) * torch.tensor(
        [w / 3, h / 3]))
    boxes = torch.cat([xy, torch.minimum(xy + wh, torch.tensor([w, h]))], dim=1)
    top = CLS_THR if below else 1.0
    scores = torch.floor((min_score + torch.rand(n, generator=g) * (top - min_score)) * 64) / 64
    labels = torch.randint(0, NUM_CLASSES, (n,), generator=g)
    return boxes, labels, scores


def _edges(min_wh):
    """Per image, hand-made detections on the edges of mmdetection's inequalities:
    ``(teacher-view box, score, whether mmdetection keeps it)`` for ``min_pseudo_bbox_wh``
    ``min_wh`` (mmdetection's default, 1e-2, when None). Teacher -> student scales by 1/4
    in image 0 and by 2 in image 3."""
    hi = 0.96875
    above = float(np.nextafter(np.float32(CLS_THR), np.float32(1)))
    below = float(np.nextafter(np.float32(CLS_THR), np.float32(0)))
    if min_wh is None:  # degenerate boxes
        img0 = [([16, 16, 40, 16 + 1 / 32], hi, False),    # 1/128 px high: out
                ([16, 40, 40, 40 + 1 / 16], hi, True)]     # 1/64 px high: in
        img3 = [([4, 4, 4 + 1 / 256, 20], hi, False),      # 1/128 px wide: out
                ([8, 4, 8 + 1 / 128, 20], hi, True)]       # 1/64 px wide: in
    else:
        img0 = [([16, 16, 24, 48], hi, False),             # exactly 2 px wide: out
                ([40, 16, 48.5, 48], hi, True),            # 2.125 px wide: in
                ([60, 60, 100, 68], hi, False),            # 10 x exactly 2 px: out
                ([110, 60, 150, 68.5], hi, True)]          # 10 x 2.125 px: in
        img3 = [([4, 4, 5, 20], hi, False),                # exactly 2 px wide: out
                ([8, 4, 9.0625, 20], hi, True)]            # 2.125 px wide: in
    # scores one float32 step above and below the threshold
    img0 += [([100, 20, 140, 60], above, True), ([20, 70, 60, 110], below, False)]
    img1 = [([78, 10, 90, 30], hi, min_wh is None),        # clipped to 2 px wide
            ([84, 20, 96, 40], hi, False),                 # out of the student view: 0 px
            ([40, 50, 60, 60], hi, True)]                  # clipped to 6 px high
    return {0: img0, 1: img1, 3: img3}


def _to_student(i, box):
    """A teacher-view box of image ``i`` in the student's view, clipped to it (exact for
    these matrices and coordinates)."""
    h_t, _, h_s, (h, w) = VIEWS[i]
    m = np.asarray(h_s) @ np.linalg.inv(h_t)
    x = np.clip(m[0, 0] * np.array(box[0::2]) + m[0, 2], 0, w)
    y = np.clip(m[1, 1] * np.array(box[1::2]) + m[1, 2], 0, h)
    return (x.min(), y.min(), x.max(), y.max())


def _teacher_dets(min_wh=None, seed=0):
    """The teacher's detections per image (teacher-view pixels), as mmdetection's heads
    return them: float32 boxes clipped to the view, int64 labels, float32 scores."""
    g = torch.Generator().manual_seed(seed)
    edges = _edges(min_wh)
    dets = []
    for i, (_, t_shape, _, _) in enumerate(VIEWS):
        # images 3 and 4: every random box scores under the threshold
        n = {0: 10, 1: 10, 2: 0, 3: 4, 4: 8}[i]
        boxes, labels, scores = _random_dets(g, n, t_shape, below=i >= 3)
        e = edges.get(i, [])
        boxes = torch.cat([boxes, torch.tensor([b for b, _, _ in e]).reshape(-1, 4)])
        labels = torch.cat([labels, torch.arange(len(e)) % NUM_CLASSES])
        scores = torch.cat([scores, torch.tensor([sc for _, sc, _ in e]).reshape(-1)])
        dets.append(DetInstances(boxes, labels, scores))
    return dets


def _samples(branch):
    """DetDataSamples of the teacher's (``'t'``) or the student's (``'s'``) views."""
    out = []
    for i, (h_t, t_shape, h_s, s_shape) in enumerate(VIEWS):
        h, shape = (h_t, t_shape) if branch == 't' else (h_s, s_shape)
        out.append(DetDataSample(metainfo=dict(
            img_id=i, img_shape=shape, ori_shape=ORI, scale_factor=(1.0, 1.0),
            homography_matrix=np.asarray(h, dtype=np.float32))))
    return out


def _instances(d: DetInstances) -> InstanceData:
    return InstanceData(bboxes=d.bboxes.clone(), labels=d.labels.clone(),
                        scores=d.scores.clone())


def _one_stage(num_classes=NUM_CLASSES):
    # a small FCOS: only built, its forward is replaced
    return dict(
        type='FCOS',
        backbone=dict(type='ResNet', depth=18, base_channels=16, num_stages=4,
                      out_indices=(0, 1, 2, 3), norm_cfg=dict(type='BN'), style='pytorch'),
        neck=dict(type='FPN', in_channels=[16, 32, 64, 128], out_channels=32, start_level=1,
                  add_extra_convs='on_output', num_outs=5),
        bbox_head=dict(type='FCOSHead', num_classes=num_classes, in_channels=32,
                       stacked_convs=1, feat_channels=32, strides=[8, 16, 32, 64, 128]),
        test_cfg=dict(nms_pre=100, min_bbox_size=0, score_thr=0.0,
                      nms=dict(type='nms', iou_threshold=0.5), max_per_img=50))


def _two_stage(num_classes=NUM_CLASSES):
    # a small Faster R-CNN for Soft Teacher: only built, its forward is replaced
    return dict(
        type='FasterRCNN',
        backbone=dict(type='ResNet', depth=18, base_channels=16, num_stages=4,
                      out_indices=(0, 1, 2, 3), norm_cfg=dict(type='BN'), style='pytorch'),
        neck=dict(type='FPN', in_channels=[16, 32, 64, 128], out_channels=16, num_outs=5),
        rpn_head=dict(type='RPNHead', in_channels=16, feat_channels=16,
                      anchor_generator=dict(type='AnchorGenerator', scales=[8],
                                            ratios=[0.5, 1.0, 2.0],
                                            strides=[4, 8, 16, 32, 64]),
                      bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4,
                                      target_stds=[1.0] * 4)),
        roi_head=dict(
            type='StandardRoIHead',
            bbox_roi_extractor=dict(type='SingleRoIExtractor',
                                    roi_layer=dict(type='RoIAlign', output_size=7,
                                                   sampling_ratio=0),
                                    out_channels=16, featmap_strides=[4, 8, 16, 32]),
            bbox_head=dict(type='Shared2FCBBoxHead', in_channels=16, fc_out_channels=32,
                           roi_feat_size=7, num_classes=num_classes,
                           bbox_coder=dict(type='DeltaXYWHBBoxCoder',
                                           target_means=[0.0] * 4,
                                           target_stds=[0.1, 0.1, 0.2, 0.2]),
                           reg_class_agnostic=False)),
        train_cfg=None,
        test_cfg=dict(rpn=dict(nms_pre=100, max_per_img=50,
                               nms=dict(type='nms', iou_threshold=0.7), min_bbox_size=0),
                      rcnn=dict(score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5),
                                max_per_img=50)))


# ----------------------------------------------------------------- score and size filter
def _run_loss(model, dets, records):
    """One ``model.loss`` with the teacher's ``predict`` returning ``dets`` and the
    student's ``loss`` recording the samples it is given (the first call: the labeled
    batch)."""
    none = DetInstances(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), torch.zeros(0))

    def predict(inputs, samples, rescale=True):
        # each view's pixels hold its image's index (the student's: -1 - index), so the
        # teacher run on the student's views detects nothing
        for k, s in enumerate(samples):
            i = int(inputs[k, 0, 0, 0])
            assert i < 0 or i == s.img_id
            s.pred_instances = _instances(dets[i] if i >= 0 else none)
        return samples

    def student_loss(inputs, samples):
        records.append(copy.deepcopy(samples))
        return {'loss_cls': inputs.new_zeros(())}

    model.teacher.predict = predict
    model.student.loss = student_loss
    # a labeled image with many objects of every class: a class-aware selector (the
    # plug-in's default) would then keep boxes under cls_pseudo_thr
    sup = DetDataSample(metainfo=dict(img_shape=ORI, ori_shape=ORI))
    sup.gt_instances = InstanceData(bboxes=torch.tensor([[1.0, 1, 20, 20]]).repeat(12, 1),
                                    labels=torch.arange(12) % NUM_CLASSES)
    n = len(VIEWS)
    index = torch.arange(n, dtype=torch.float32)[:, None, None, None]
    inputs = {'sup': torch.zeros(1, 3, *ORI),
              'unsup_teacher': index.expand(n, 3, 128, 192).clone(),
              'unsup_student': (-1 - index).expand(n, 3, *ORI).clone()}
    samples = {'sup': [sup], 'unsup_teacher': _samples('t'), 'unsup_student': _samples('s')}
    return model.loss(inputs, samples)


def _mmdet_and_plugin(min_wh, dets):
    """Per image ``(mmdetection's kept instances, the plug-in's kept DetInstances)``,
    both in the student's view, from the same teacher detections."""
    wh = {} if min_wh is None else {'min_pseudo_bbox_wh': min_wh}
    ref = MODELS.build(ConfigDict(type='SemiBaseDetector', detector=_one_stage(),
                                  semi_train_cfg=dict(cls_pseudo_thr=CLS_THR, **wh)))
    ref_calls = []
    _run_loss(ref, dets, ref_calls)
    ref_kept = {s.img_id: s.gt_instances for s in ref_calls[1]}

    plugin = MODELS.build(ConfigDict(
        type='SsvSemiDetector', detector=_one_stage(),
        semi_train_cfg=dict(selector=dict(type='FixedScoreBoxSelector', threshold=CLS_THR),
                            **wh)))
    plugin.train()
    pseudo, ours_calls = [], []
    policy_call = plugin.pseudo_boxes

    def record_pseudo(*args):
        pseudo.append(policy_call(*args))
        return pseudo[-1]

    plugin.pseudo_boxes = record_pseudo
    _run_loss(plugin, dets, ours_calls)
    assert len(pseudo) == 1
    # what the student trains on (boxes, labels) must be the policy's output (scores)
    trained = {s.img_id: s.gt_instances for call in ours_calls[1:] for s in call}
    for i, p in enumerate(pseudo[0].cls):
        if len(p):
            torch.testing.assert_close(trained[i].bboxes, p.bboxes)
            assert torch.equal(trained[i].labels, p.labels)
        else:
            # deliberate: an image without pseudo-boxes is left out of the student's
            # unsup forward; mmdetection trains it as all background
            assert i not in trained
    return [(ref_kept[i], pseudo[0].cls[i]) for i in range(len(VIEWS))]


def _assert_same(ref: InstanceData, ours: DetInstances):
    torch.testing.assert_close(ours.bboxes, ref.bboxes, rtol=0, atol=1e-4)
    assert torch.equal(ours.labels, ref.labels)
    torch.testing.assert_close(ours.scores, ref.scores, rtol=0, atol=0)


@pytest.mark.parametrize('min_wh', [None, (2.0, 2.0)], ids=['default_wh', 'wh_2px'])
def test_kept_boxes_match_semi_base_detector(min_wh):
    # Catches: a score threshold other than cls_pseudo_thr (the class-aware default, or
    # one a float32 step off), min_pseudo_bbox_wh compared with >= instead of > or applied
    # to the width only, sizes measured in the teacher's view instead of the student's, no
    # clip to the student view, boxes moved from the wrong view (either matrix left out),
    # the teacher run on the student's views, labels or scores out of step with their boxes.
    dets = _teacher_dets(min_wh)
    pairs = _mmdet_and_plugin(min_wh, dets)
    for ref, ours in pairs:
        _assert_same(ref, ours)
    # the inputs reach the inequalities: mmdetection drops the boxes exactly on the size
    # threshold and keeps those a step over it, and so for the scores
    for i, edges in _edges(min_wh).items():
        kept = {tuple(b) for b in pairs[i][0].bboxes.tolist()}
        assert [_to_student(i, b) in kept for b, _, _ in edges] == [k for _, _, k in edges]
    assert len(pairs[2][0]) == 0 and len(pairs[4][0]) == 0 and len(dets[4]) > 0
    assert 0 < len(pairs[1][0]) < len(dets[1])


def test_score_exactly_at_cls_pseudo_thr_is_dropped():
    # Catches: >= instead of > at the score threshold (a float32 teacher score equal to
    # float32(cls_pseudo_thr) is kept by ssvision, dropped by mmdetection).
    dets = _teacher_dets((2.0, 2.0))
    d = dets[0]
    ties = torch.full((3,), F32_THR)
    dets[0] = DetInstances(torch.cat([d.bboxes, torch.tensor(
        [[100.0, 80, 140, 120], [20, 20, 60, 60], [150, 10, 190, 50]])]),
        torch.cat([d.labels, torch.tensor([0, 1, 2])]), torch.cat([d.scores, ties]))
    pairs = _mmdet_and_plugin((2.0, 2.0), dets)
    assert not (pairs[0][0].scores == F32_THR).any()  # mmdetection drops the ties
    for ref, ours in pairs:
        _assert_same(ref, ours)


# ----------------------------------------------------------------- Soft Teacher's box jitter
def _pull(copies: torch.Tensor) -> torch.Tensor:
    """A stand-in box head: per class, each jittered copy moved back towards the
    copies' mean, by a class's own fraction of its offset (so a wrong class channel
    shows). ``(times * n, 4)`` -> ``(times * n, NUM_CLASSES, 4)``."""
    pull = torch.tensor([0.5, 0.25, 0.75])[:NUM_CLASSES]
    x = copies.reshape(JITTER_TIMES, -1, 4)
    centre = x.mean(0, keepdim=True)
    out = centre[:, :, None] + pull[None, None, :, None] * (x - centre)[:, :, None]
    return out.reshape(-1, NUM_CLASSES, 4)


def _halve(copies: torch.Tensor) -> torch.Tensor:
    """A stand-in box head regressing every copy to a box half its size (same centre)."""
    c = (copies[:, :2] + copies[:, 2:]) / 2
    half = (copies[:, 2:] - copies[:, :2]) / 4
    return torch.cat([c - half, c + half], 1)[:, None].expand(-1, NUM_CLASSES, 4)


def _same(copies: torch.Tensor) -> torch.Tensor:
    """A stand-in box head regressing every copy to the same box (the copies' mean)."""
    x = copies.reshape(JITTER_TIMES, -1, 4)
    return x.mean(0, keepdim=True).expand_as(x).reshape(-1, 4)[:, None].expand(
        -1, NUM_CLASSES, 4)


class _Refiner:
    """ssvision's side of the stand-in box head: ``refine_boxes`` as
    ``TorchvisionDetector`` has it (each copy regressed with its own label)."""

    def __init__(self, head):
        self.head, self.seen = head, []

    def refine_boxes(self, images, boxes, labels):
        self.seen.append([b.clone() for b in boxes])
        return [self.head(b)[torch.arange(len(b)), lab] if len(b) else b.new_zeros(0, 4)
                for b, lab in zip(boxes, labels)]


def _zero_mean_randn(monkeypatch):
    """Replace torch.randn (the jitter's only random draw, on both sides) by fixed
    offsets whose mean over the copies is 0. Soft Teacher divides the spread by the size
    of the mean refined box, ssvision by the size of the detected box; with zero-mean
    offsets and a head that keeps the copies' mean (``_pull``) the two sizes are the
    same, so the comparison checks everything else (the normalisation has its own test)."""
    randn = torch.randn

    def fixed(*size, device=None, **kwargs):
        if len(size) == 1 and not isinstance(size[0], int):
            size = tuple(size[0])
        g = torch.Generator().manual_seed(sum(size) + 7)
        z = randn(*size, generator=g)
        return (z - z.mean(0, keepdim=True)).to(device)

    monkeypatch.setattr(torch, 'randn', fixed)


def _soft_teacher(head, dets, reg_thr=REG_THR, seed=0):
    """mmdetection's Soft Teacher on the teacher output ``dets`` and box head ``head``:
    per image ``(uncertainties, classification instances, regression instances)`` (the
    instances in the student's view, as its losses get them); the jitter draws from
    torch's global generator seeded with ``seed``."""
    # pseudo_label_initial_score_thr = cls_pseudo_thr: ssvision jitters and gates only the
    # kept boxes (the module docstring lists this difference)
    model = MODELS.build(ConfigDict(
        type='SoftTeacher', detector=_two_stage(),
        semi_train_cfg=dict(pseudo_label_initial_score_thr=CLS_THR, rpn_pseudo_thr=CLS_THR,
                            cls_pseudo_thr=CLS_THR, reg_pseudo_thr=reg_thr,
                            jitter_times=JITTER_TIMES, jitter_scale=JITTER_SCALE,
                            min_pseudo_bbox_wh=(1e-2, 1e-2))))
    teacher, feats = model.teacher, (torch.zeros(1),)

    def roi_predict(x, proposals, samples, rescale=False):
        if teacher.roi_head.test_cfg is None:  # the jittered copies
            return [InstanceData(bboxes=head(p.bboxes).reshape(len(p.bboxes), -1))
                    if len(p.bboxes) else InstanceData(bboxes=torch.zeros(0, 4 * NUM_CLASSES))
                    for p in proposals]
        return [_instances(dets[s.img_id]) for s in samples]

    teacher.extract_feat = lambda inputs: feats
    teacher.rpn_head.predict = lambda x, samples, rescale=False: [
        InstanceData(bboxes=torch.zeros(0, 4)) for _ in samples]
    teacher.roi_head.predict = roi_predict
    reg_calls = []

    def roi_loss(x, rpn_results, samples):
        reg_calls.append(copy.deepcopy(samples))
        return {'loss_bbox': torch.zeros(())}

    model.student.roi_head.loss = roi_loss
    torch.manual_seed(seed)  # after the build, whose initialisation draws too
    pseudo, _ = model.get_pseudo_instances(torch.zeros(len(VIEWS), 3, 128, 192),
                                           _samples('t'))
    # the kept boxes' uncertainties, before the move drops any (as ssvision reports them)
    uncs = [s.gt_instances.reg_uncs.reshape(-1) for s in pseudo]
    student = model.project_pseudo_instances(pseudo, _samples('s'))
    cls = filter_gt_instances(copy.deepcopy(student), score_thr=CLS_THR)
    model.rcnn_reg_loss_by_pseudo_instances(feats, [InstanceData() for _ in student], student)
    return uncs, [s.gt_instances for s in cls], [s.gt_instances for s in reg_calls[0]]


def _ssvision_jitter(head, dets, reg_thr=REG_THR, seed=0):
    """The shared policy in ``mode='jitter'`` on the same output: ``(PseudoBoxes,
    uncertainties of the kept boxes)``."""
    refiner = _Refiner(head)
    images = [torch.zeros(3, *t_shape) for _, t_shape, _, _ in VIEWS]
    uncs = []

    def spy(*args, **kwargs):  # records the kept boxes' uncertainties the policy computes
        out = jitter_uncertainty(*args, **kwargs)
        uncs.extend(out)
        return out

    policy = PseudoBoxPolicy(FixedScoreBoxSelector(CLS_THR), NUM_CLASSES, reg_thr,
                             mode='jitter', jitter_times=JITTER_TIMES,
                             jitter_scale=JITTER_SCALE, min_box_size=0.01)
    moves = [(torch.tensor(h_t), torch.tensor(h_s), s_shape)
             for h_t, _, h_s, s_shape in VIEWS]
    torch.manual_seed(seed)
    with mock.patch.object(pseudo_boxes, 'jitter_uncertainty', spy):
        # as SemiDetector calls it: the teacher and its weak views
        return policy(dets, moves, teacher=refiner, images=images), uncs


def _jitter_dets(seed=1):
    g = torch.Generator().manual_seed(seed)
    dets = []
    for i, (_, t_shape, _, _) in enumerate(VIEWS):
        n = 0 if i == 2 else 12
        dets.append(DetInstances(*_random_dets(g, n, t_shape, min_score=0.75)))
    return dets


def test_jitter_draws_match_soft_teacher_aug_box():
    # Catches: offsets scaled by (w, w, h, h) instead of (w, h, w, h), boxes under 1 px
    # not scaled as 1 px, the copies drawn as (boxes, times) instead of (times, boxes),
    # a draw per box or per image in another order, a jitter scale other than
    # jitter_scale x the box size.
    dets = _jitter_dets()
    # plus boxes under 1 px on one or both sides: their jitter is 1 px x jitter_scale
    dets[0] = DetInstances(torch.cat([dets[0].bboxes, torch.tensor(
        [[10.0, 10, 10.25, 30], [50, 50, 70, 50.5], [90, 90, 90.5, 90.5]])]),
        torch.cat([dets[0].labels, torch.tensor([0, 1, 2])]),
        torch.cat([dets[0].scores, torch.tensor([0.95, 0.95, 0.95])]))
    refiner = _Refiner(_pull)
    torch.manual_seed(123)
    jitter_uncertainty(refiner, [torch.zeros(3, 8, 8)] * len(dets), dets, JITTER_TIMES,
                       JITTER_SCALE)
    ours = [b.reshape(JITTER_TIMES, -1, 4) for b in refiner.seen[0]]
    samples = []
    for d in dets:
        s = DetDataSample()
        s.gt_instances = InstanceData(bboxes=d.bboxes.clone())
        samples.append(s)
    torch.manual_seed(123)
    ref = SoftTeacher.aug_box(samples, JITTER_TIMES, JITTER_SCALE)
    assert [r.shape for r in ref] == [o.shape for o in ours]
    for r, o in zip(ref, ours):
        torch.testing.assert_close(o, r, rtol=0, atol=1e-5)


def test_jitter_gate_matches_soft_teacher(monkeypatch):
    # Catches: a biased (1/n) standard deviation, spreads divided by (w, w, h, h), the
    # sides' maximum instead of their mean, the copies regressed with another box's class
    # (labels repeated per box instead of per copy), the jitter run on every detection
    # instead of the kept ones, a regression subset not taken from the kept boxes, the
    # gated boxes left in the teacher's view.
    _zero_mean_randn(monkeypatch)
    dets = _jitter_dets()
    uncs, cls, reg = _soft_teacher(_pull, dets)
    ours, our_uncs = _ssvision_jitter(_pull, dets)
    assert len(our_uncs) == len(uncs)
    for ref_u, u in zip(uncs, our_uncs):
        torch.testing.assert_close(u, ref_u, rtol=1e-5, atol=1e-8)
    for ref, p in zip(cls, ours.cls):
        _assert_same(ref, p)
    for ref, p in zip(reg, ours.reg):
        _assert_same(ref, p)
    # the gate acts: some kept boxes train regression, some do not
    n_cls, n_reg = sum(len(p) for p in ours.cls), sum(len(p) for p in ours.reg)
    assert 0 < n_reg < n_cls


def test_uncertainty_exactly_at_reg_pseudo_thr_is_not_trained(monkeypatch):
    # Catches: <= instead of < at the regression threshold (a head that regresses every
    # copy to one box gives an uncertainty of exactly 0; with a threshold of 0 Soft
    # Teacher trains no box's regression).
    _zero_mean_randn(monkeypatch)
    dets = _jitter_dets()
    uncs, _, reg = _soft_teacher(_same, dets, reg_thr=0.0)
    ours, our_uncs = _ssvision_jitter(_same, dets, reg_thr=0.0)
    assert all(bool((u == 0).all()) for u in uncs + our_uncs)
    assert sum(len(r) for r in reg) == 0
    for ref, p in zip(reg, ours.reg):
        _assert_same(ref, p)


def test_jitter_uncertainty_normalised_by_the_mean_refined_box():
    # Catches: the spread divided by the size of the box that was jittered instead of the
    # mean of its refined copies (a head that halves every box: twice the uncertainty).
    dets = _jitter_dets()
    uncs = _soft_teacher(_halve, dets, seed=5)[0]
    our_uncs = _ssvision_jitter(_halve, dets, seed=5)[1]
    for ref_u, u in zip(uncs, our_uncs):
        torch.testing.assert_close(u, ref_u, rtol=1e-4, atol=1e-8)
