"""Ignore regions: the teacher's uncertain detections are left out of the student's
classification loss instead of being trained as background (RetinaNet, Faster R-CNN)."""

import copy

import pytest
import torch
from torchvision.models.detection import RetinaNet
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.rpn import RegionProposalNetwork
from torchvision.ops import box_iou, sigmoid_focal_loss

from ssvision.models import TorchvisionDetector
from ssvision.models.algorithms import SemiDetector
from ssvision.models.algorithms.pseudo_boxes import PseudoBoxPolicy
from ssvision.models.selectors import FixedScoreBoxSelector
from ssvision.structures import DetInstances

SIZE = 64
pytestmark = pytest.mark.usefixtures('one_thread')


def _detector(arch='retinanet'):
    torch.manual_seed(0)
    det = TorchvisionDetector(arch=arch, backbone='resnet18', num_classes=3, min_size=SIZE,
                              max_size=SIZE, anchor_sizes=(8, 16, 32, 64, 128),
                              score_thresh=0.0, detections_per_img=20)
    return det.train()


def _head_inputs(det, images, targets):
    """What RetinaNet.forward hands compute_loss: resized targets, head outputs, anchors."""
    net = det.net
    batch, targets = net.transform(images, targets)
    feats = list(net.backbone(batch.tensors).values())
    outs = net.head(feats)
    anchors = net.anchor_generator(batch, feats)
    return targets, outs, anchors


def _images():
    g = torch.Generator().manual_seed(1)
    return [torch.rand(3, SIZE, SIZE, generator=g) for _ in range(2)]


def test_without_ignore_regions_the_loss_is_torchvisions_bit_for_bit():
    # Catches the subclass changing the supervised loss (every labeled batch goes
    # through it).
    det = _detector()
    targets = det._targets([DetInstances([[4., 4., 30., 30.]], [1]),
                            DetInstances([[10., 20., 50., 60.], [2., 2., 12., 12.]], [0, 2])])
    t, outs, anchors = _head_inputs(det, _images(), targets)
    ours = det.net.compute_loss(t, outs, anchors)
    theirs = RetinaNet.compute_loss(det.net, t, outs, anchors)
    assert ours.keys() == theirs.keys()
    for k in ours:
        assert torch.equal(ours[k], theirs[k]), k


def test_ignore_region_leaves_out_exactly_its_background_anchors():
    # Catches ignoring nothing (a label -1 trained as background or as a class), ignoring
    # an object's own anchors, and a wrong IoU rule: the classification loss is rebuilt by
    # hand from the anchors that stay.
    det = _detector()
    obj = DetInstances([[4., 4., 30., 30.]], [1])
    unsure = torch.tensor([[34., 30., 60., 62.]])
    targets = det._targets([obj], [unsure])
    assert targets[0]['labels'].tolist() == [1, -1]
    t, outs, anchors = _head_inputs(det, _images()[:1], targets)
    losses = det.net.compute_loss(t, outs, anchors)
    plain = det.net.compute_loss([{'boxes': t[0]['boxes'][:1], 'labels': t[0]['labels'][:1]}],
                                 outs, anchors)
    assert torch.equal(losses['bbox_regression'], plain['bbox_regression'])
    assert losses['classification'] < plain['classification']
    a = anchors[0]
    iou_obj = box_iou(t[0]['boxes'][:1], a)[0]
    iou_ign = box_iou(t[0]['boxes'][1:], a)[0]
    matched = det.net.proposal_matcher(iou_obj[None])
    fg = matched >= 0
    keep = (matched != -2) & ~((matched == -1) & (iou_ign >= 0.4))
    assert ((matched == -1) & (iou_ign >= 0.4)).sum() > 0  # the region does cover anchors
    target = torch.zeros_like(outs['cls_logits'][0])
    target[fg, 1] = 1.0
    by_hand = sigmoid_focal_loss(outs['cls_logits'][0][keep], target[keep],
                                 reduction='sum') / fg.sum()
    torch.testing.assert_close(losses['classification'], by_hand)


def test_ignore_only_image_trains_no_object():
    # An image whose only boxes are ignore regions: its anchors near them are left out,
    # the rest are background; no regression term from an ignore region.
    det = _detector()
    t, outs, anchors = _head_inputs(det, _images()[:1],
                                    det._targets([DetInstances()],
                                                 [torch.tensor([[4., 4., 30., 30.]])]))
    losses = det.net.compute_loss(t, outs, anchors)
    empty = det.net.compute_loss([{'boxes': t[0]['boxes'][:0], 'labels': t[0]['labels'][:0]}],
                                 outs, anchors)
    assert losses['bbox_regression'].item() == 0.0
    assert 0 < losses['classification'] < empty['classification']


def test_ignore_regions_are_refused_where_not_built():
    # Catches ignore regions silently dropped by a detector that cannot use them.
    det = _detector('fcos')
    with pytest.raises(ValueError, match='ignore regions need arch'):
        det.loss(_images()[:1], [DetInstances([[4., 4., 30., 30.]], [1])],
                 [torch.tensor([[34., 30., 60., 62.]])])
    with pytest.raises(ValueError, match='ignore_score needs'):
        SemiDetector(detector=dict(type='TorchvisionDetector', arch='fcos',
                                   backbone='resnet18', num_classes=3, min_size=SIZE,
                                   max_size=SIZE),
                     selector=dict(type='FixedScoreBoxSelector', threshold=0.5),
                     semi_train_cfg=dict(ignore_score=0.2))


def test_policy_makes_ignore_regions_of_uncertain_detections_only():
    # Catches kept boxes also ignored, low-score clutter ignored, and regions left in the
    # teacher's view instead of the student's.
    dets = [DetInstances([[0., 0., 10., 10.], [20., 20., 40., 40.], [5., 30., 25., 50.]],
                         [0, 1, 2], scores=[0.9, 0.3, 0.1])]
    shift = torch.eye(3)
    shift[0, 2] = 2.0  # the student's view is 2 px right of the teacher's
    moves = [(torch.eye(3), shift, (64, 64))]
    policy = PseudoBoxPolicy(FixedScoreBoxSelector(0.5), 3, reg_uncertainty=None,
                             ignore_score=0.2)
    pseudo = policy(dets, moves)
    assert pseudo.cls[0].bboxes.tolist() == [[2., 0., 12., 10.]]
    assert pseudo.ignore[0].tolist() == [[22., 20., 42., 40.]]
    assert pseudo.health['pb_ignore_per_img'].item() == 1.0
    off = PseudoBoxPolicy(FixedScoreBoxSelector(0.5), 3, reg_uncertainty=None)(dets, moves)
    assert off.ignore == [] and 'pb_ignore_per_img' not in off.health


@pytest.mark.parametrize('arch', ['retinanet', 'fasterrcnn'])
def test_source_free_step_with_ignore_regions_keeps_uncertain_objects_out_of_background(
        top_half_selector, arch):
    # End to end through SemiDetector: the same batch and weights, the teacher made to
    # differ from the student; with ignore regions the classification loss is lower
    # (anchors left out) and the regression loss is the same (ignore regions never
    # train boxes). Catches the option not reaching the student's loss.
    from ssvision.models.algorithms import semi_detector  # noqa: F401
    g = torch.Generator().manual_seed(0)
    imgs = [torch.randint(0, 256, (3, SIZE, SIZE), generator=g, dtype=torch.uint8)
            for _ in range(2)]
    eye = torch.eye(3).expand(2, 3, 3).clone()
    batch = {'inputs': {'unsup_teacher': imgs, 'unsup_student': [i.clone() for i in imgs]},
             'data_samples': {'unsup_teacher': {'homography': eye},
                              'unsup_student': {'homography': eye.clone()}}}
    out = {}
    for ignore in (None, 0.0):
        torch.manual_seed(0)
        model = SemiDetector(
            detector=dict(type='TorchvisionDetector', arch=arch, backbone='resnet18',
                          num_classes=3, min_size=SIZE, max_size=SIZE,
                          anchor_sizes=(8, 16, 32, 64, 128), score_thresh=0.0,
                          detections_per_img=20),
            selector=dict(type='FixedScoreBoxSelector', threshold=0.0),
            semi_train_cfg=dict(source_free=True, reg_uncertainty=None, ignore_score=ignore))
        with torch.no_grad():
            for p in model.teacher.parameters():
                p.add_(1e-3 * torch.randn_like(p))
        # the selector keeps the top half of the teacher's scores; the rest are unsure
        model.policy.selector = top_half_selector
        model.train()
        out[ignore] = model(**model.data_preprocessor(batch, True), mode='loss')
    assert out[0.0]['pb_ignore_per_img'].item() > 0
    if arch == 'retinanet':
        assert torch.equal(out[None]['unsup_loss_reg'], out[0.0]['unsup_loss_reg'])
        assert 0 < out[0.0]['unsup_loss_cls'] < out[None]['unsup_loss_cls']
    else:
        # Faster R-CNN's samplers draw other negatives in place of the left-out ones
        # (its loss is a mean over a fixed number of samples), so the classification
        # loss changes but need not fall; the random draws also differ afterwards
        assert torch.isfinite(out[0.0]['unsup_loss_cls']) and out[0.0]['unsup_loss_cls'] > 0
        assert out[0.0]['unsup_loss_cls'] != out[None]['unsup_loss_cls']


# --- Faster R-CNN: the RPN's anchors and the box head's proposals -------------------

def _frcnn():
    torch.manual_seed(0)
    det = TorchvisionDetector(arch='fasterrcnn', backbone='resnet18', num_classes=3,
                              min_size=SIZE, max_size=SIZE, anchor_sizes=(8, 16, 32, 64, 128),
                              box_batch_size_per_image=64)
    return det.train()


def test_fasterrcnn_without_ignore_regions_is_torchvisions_bit_for_bit():
    # Catches the swapped-in RPN / box head changing the supervised loss of every labeled
    # batch: the same weights with torchvision's own classes, the same sampler draws.
    det = _frcnn()
    plain = copy.deepcopy(det)
    plain.net.rpn.__class__ = RegionProposalNetwork
    plain.net.roi_heads.__class__ = RoIHeads
    inst = [DetInstances([[4., 4., 30., 30.]], [1]),
            DetInstances([[10., 20., 50., 60.], [2., 2., 12., 12.]], [0, 2])]
    out = {}
    for name, d in (('ours', det), ('theirs', plain)):
        torch.manual_seed(3)
        out[name] = d.loss(_images(), inst)
    assert out['ours'].keys() == out['theirs'].keys()
    for k in out['ours']:
        assert torch.equal(out['ours'][k], out['theirs'][k]), k


def test_fasterrcnn_rpn_leaves_out_exactly_the_background_anchors_near_a_region():
    # Catches ignoring nothing, ignoring an object's anchors, the region trained as an
    # object (label -1 read as a box), and a wrong IoU rule (the RPN's background
    # threshold is 0.3, not RetinaNet's 0.4).
    det = _frcnn()
    rpn = det.net.rpn
    anchors = [torch.cat([torch.tensor([[34., 30., 60., 62.]]) + torch.randn(200, 4) * 4,
                          torch.rand(300, 2).mul(40).repeat(1, 2) + torch.tensor([0, 0, 20, 20.])])]
    targets = det._targets([DetInstances([[4., 4., 30., 30.]], [1])],
                           [torch.tensor([[34., 30., 60., 62.]])])
    assert targets[0]['labels'].tolist() == [2, -1]  # Faster R-CNN's labels are shifted
    labels, matched = rpn.assign_targets_to_anchors(anchors, targets)
    objects = [{'boxes': targets[0]['boxes'][:1], 'labels': targets[0]['labels'][:1]}]
    base, base_matched = RegionProposalNetwork.assign_targets_to_anchors(rpn, anchors, objects)
    near = box_iou(targets[0]['boxes'][1:], anchors[0])[0] >= 0.3
    dropped = (base[0] == 0) & near
    assert dropped.sum() > 20 and (base[0] == 0).sum() > dropped.sum()
    assert torch.equal(labels[0][dropped], torch.full((int(dropped.sum()),), -1.0))
    assert torch.equal(labels[0][~dropped], base[0][~dropped])
    assert torch.equal(matched[0], base_matched[0])  # the region never gives a box target


def test_fasterrcnn_box_head_never_samples_background_near_a_region():
    # Catches the region added as a proposal (and trained as background or as a class),
    # background proposals on an uncertain object still sampled, and the head's state
    # kept after the call (the next batch's proposals would be ignored by this one's
    # regions).
    det = _frcnn()
    heads = det.net.roi_heads
    region = torch.tensor([[34., 30., 60., 62.]])
    g = torch.Generator().manual_seed(0)
    proposals = torch.cat([region + torch.randn(300, 4, generator=g) * 2,
                           torch.rand(300, 2, generator=g).mul(40).repeat(1, 2)
                           + torch.tensor([0, 0, 16, 16.])])
    targets = det._targets([DetInstances([[4., 4., 30., 30.]], [1])], [region])
    objects = [{'boxes': targets[0]['boxes'][:1], 'labels': targets[0]['labels'][:1]}]
    torch.manual_seed(0)
    props, _, labels, _ = heads.select_training_samples([proposals.clone()], targets)
    torch.manual_seed(0)
    b_props, _, b_labels, _ = RoIHeads.select_training_samples(heads, [proposals.clone()],
                                                               objects)
    near = box_iou(region, props[0])[0] >= 0.5
    b_near = box_iou(region, b_props[0])[0] >= 0.5
    assert (b_near & (b_labels[0] == 0)).sum() > 10  # without the region: sampled as bg
    assert not (near & (labels[0] == 0)).any()
    assert not (props[0] == region).all(dim=1).any()  # never a proposal itself
    assert (labels[0] == 2).sum() == (b_labels[0] == 2).sum() > 0  # the object stays
    assert (labels[0] >= 0).all() and heads._ignore is None
