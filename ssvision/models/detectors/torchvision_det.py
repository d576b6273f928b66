"""torchvision detectors (Faster R-CNN, RetinaNet, FCOS) behind one small interface.

:class:`TorchvisionDetector` takes images as a list of float ``(3, H, W)`` tensors in
``[0, 1]`` (each its own size; torchvision normalises and resizes them internally to
``min_size`` / ``max_size`` and maps boxes back) and boxes as
:class:`~ssvision.structures.DetInstances` with labels ``0..K-1`` (Faster R-CNN's label 0
is background, so its labels are shifted by one inside; the one-stage heads score ``K``
sigmoid classes directly). It exposes:

* ``loss(images, instances) -> dict`` of torchvision's losses, every key listed in
  :data:`~.loss_terms.CLS_TERMS` or ``REG_TERMS`` (so a
  semi-supervised detector can use the classification and regression parts of a
  pseudo-box loss separately);
* ``predict(images) -> list[DetInstances]`` (scores set), boxes in input pixels.

RetinaNet's and Faster R-CNN's ``loss`` also take ignore regions (``ignore=``, per image
boxes): what would be trained as background but overlaps an ignore region as much as
an object's own samples do is left out of the classification loss, as torchvision
already leaves out the samples between its two thresholds. RetinaNet: anchors at IoU
>= its matcher's background threshold (0.4). Faster R-CNN: the RPN's anchors at IoU >=
0.3 (its background threshold) and the box head's proposals at IoU >= 0.5 (its
background threshold), which its samplers then never draw; an ignore region is never a
proposal itself and never trains a box. A semi-supervised detector passes the teacher's
uncertain detections there, so objects the teacher is unsure of are not trained as
background.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchvision.models.detection import RetinaNet
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.rpn import RegionProposalNetwork
from torchvision.ops import box_iou

from ssvision import checkpoints
from ssvision.checkpoints import LoadReport, adapt_first_conv
from ssvision.models.network import DetectorNetwork
from ssvision.registry import MODELS
from ssvision.structures import DetInstances

__all__ = ['TorchvisionDetector', 'DETECTOR_ARCHS']

DETECTOR_ARCHS = ('fasterrcnn', 'retinanet', 'fcos')
_ONE_STAGE = ('retinanet', 'fcos')
#: Architectures whose ``loss`` takes ignore regions.
IGNORE_ARCHS = ('retinanet', 'fasterrcnn')
#: Label of an ignore region inside the targets handed to torchvision (its resize maps
#: these boxes with the others; :class:`_RetinaNet` takes them out again).
_IGNORE_LABEL = -1


class _RetinaNet(RetinaNet):
    """torchvision's RetinaNet whose targets may hold ignore regions (label
    ``_IGNORE_LABEL``). Without one it computes exactly torchvision's loss."""

    def compute_loss(self, targets, head_outputs, anchors):
        matched_idxs, objects = [], []
        low = self.proposal_matcher.low_threshold
        for anchors_per_image, target in zip(anchors, targets):
            ignore = target['labels'] == _IGNORE_LABEL
            obj = {'boxes': target['boxes'][~ignore], 'labels': target['labels'][~ignore]}
            objects.append(obj)
            if obj['boxes'].numel() == 0:
                matched = torch.full((anchors_per_image.size(0),),
                                     self.proposal_matcher.BELOW_LOW_THRESHOLD,
                                     dtype=torch.int64, device=anchors_per_image.device)
            else:
                matched = self.proposal_matcher(box_iou(obj['boxes'], anchors_per_image))
            if ignore.any():
                near = box_iou(target['boxes'][ignore], anchors_per_image).max(dim=0).values
                background = matched == self.proposal_matcher.BELOW_LOW_THRESHOLD
                matched = torch.where(background & (near >= low), torch.full_like(
                    matched, self.proposal_matcher.BETWEEN_THRESHOLDS), matched)
            matched_idxs.append(matched)
        return self.head.compute_loss(objects, head_outputs, anchors, matched_idxs)


def _split_ignore(target: dict) -> tuple[dict, torch.Tensor]:
    """A target's objects (a target dict) and its ignore regions (boxes)."""
    ignore = target['labels'] == _IGNORE_LABEL
    return ({'boxes': target['boxes'][~ignore], 'labels': target['labels'][~ignore]},
            target['boxes'][ignore])


def _ignore_background(labels: torch.Tensor, boxes: torch.Tensor, ignore: torch.Tensor,
                       low: float) -> torch.Tensor:
    """``labels`` with its background (0) entries whose ``boxes`` overlap an ignore
    region at IoU >= ``low`` set to -1, the label torchvision's samplers never draw."""
    if len(ignore) == 0 or len(boxes) == 0:
        return labels
    near = box_iou(ignore, boxes).max(dim=0).values
    return torch.where((labels == 0) & (near >= low), torch.full_like(labels, -1), labels)


class _IgnoreRPN(RegionProposalNetwork):
    """torchvision's RPN whose targets may hold ignore regions (label ``_IGNORE_LABEL``):
    its background anchors near them are left out of the objectness loss. Without one
    it computes exactly torchvision's loss."""

    def assign_targets_to_anchors(self, anchors, targets):
        objects, ignore = zip(*map(_split_ignore, targets)) if targets else ((), ())
        labels, matched = super().assign_targets_to_anchors(anchors, list(objects))
        low = self.proposal_matcher.low_threshold
        return ([_ignore_background(lab, a, ign, low)
                 for lab, a, ign in zip(labels, anchors, ignore)], matched)


class _IgnoreRoIHeads(RoIHeads):
    """torchvision's box head whose targets may hold ignore regions: they are never added
    as proposals, and background proposals near them are never sampled. Without one it
    computes exactly torchvision's loss."""

    _ignore: tuple | None = None

    def select_training_samples(self, proposals, targets):
        if targets is None:
            return super().select_training_samples(proposals, targets)
        objects, self._ignore = zip(*map(_split_ignore, targets)) if targets else ((), ())
        try:
            return super().select_training_samples(proposals, list(objects))
        finally:
            self._ignore = None

    def assign_targets_to_proposals(self, proposals, gt_boxes, gt_labels):
        matched, labels = super().assign_targets_to_proposals(proposals, gt_boxes, gt_labels)
        if self._ignore:
            low = self.proposal_matcher.low_threshold
            labels = [_ignore_background(lab, p, ign, low)
                      for lab, p, ign in zip(labels, proposals, self._ignore)]
        return matched, labels


def _load_matching(module: nn.Module, state: dict, source: str, target: str) -> LoadReport:
    """Load the tensors of ``state`` whose key and shape match ``module`` (non-strict;
    a 4-d weight for other input channels is adapted, :func:`adapt_first_conv`);
    a key whose shape differs otherwise keeps the module's initialisation. Logged, and
    an error when nothing matched."""
    own = module.state_dict()
    state = dict(state)
    for k, v in state.items():  # a first conv for other input channels (gray -> RGB)
        if k in own and v.ndim == 4 and v.shape != own[k].shape \
                and v.shape[0] == own[k].shape[0] and v.shape[2:] == own[k].shape[2:]:
            state[k] = adapt_first_conv(v, own[k].shape[1])
    loaded = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    report = LoadReport(source, target, loaded=list(loaded),
                        reinitialized=[k for k in state if k in own and k not in loaded],
                        missing=[k for k in own if k not in state],
                        unexpected=[k for k in state if k not in own]).check()
    module.load_state_dict(loaded, strict=False)
    return report.log()


@MODELS.register_module()
class TorchvisionDetector(DetectorNetwork):
    """A torchvision detector as a :class:`~ssvision.models.network.DetectorNetwork`,
    built without downloads.

    Args:
        arch: ``'fasterrcnn'`` (two-stage), ``'retinanet'`` or ``'fcos'`` (one-stage).
        num_classes: object classes ``K`` (no background).
        backbone: ``'resnet18'``, ``'resnet34'``, ``'resnet50'``, ``'resnet101'`` (FPN) or
            ``'mobilenet_v3_large'`` (FPN over its last two stages).
        min_size, max_size: torchvision's internal resize.
        anchor_sizes: one base size per feature level (default: torchvision's, 32-512,
            sized for COCO; small objects want smaller ones). Each level gets the sizes
            ``(s, s * 2**(1/3), s * 2**(2/3))`` for one-stage detectors, ``(s,)`` for
            Faster R-CNN (mobilenet: all sizes on each level), aspect ratios 0.5, 1, 2.
        norm: ``'bn'`` (trainable BatchNorm, the choice from random init) or
            ``'frozen_bn'`` (torchvision's default for pretrained backbones).
        trainable_layers: backbone stages trained (resnet: 0-5, mobilenet: 0-6).
        backbone_checkpoint: ImageNet weights of the backbone body (a checkpoint source,
            :func:`ssvision.checkpoints.resolve`; torchvision classifier key names).
        checkpoint: weights of the whole detector in torchvision's layout, e.g. a
            COCO-trained torchvision detector (``torchvision://FasterRCNN_ResNet50_FPN_
            Weights.COCO_V1``) for another ``num_classes``: tensors whose shape differs
            (the class-dependent box predictor) keep their fresh initialisation and are
            reported as re-initialised.
        **kwargs: other arguments of the torchvision class (``score_thresh``,
            ``detections_per_img``, ``box_score_thresh``, ``nms_thresh`` ...).

    Each load logs a :class:`~ssvision.checkpoints.LoadReport` table and keeps it in
    :attr:`load_reports` (``{'backbone': ..., 'detector': ...}``); one that matches
    nothing is an error.
    """

    provides = DetectorNetwork.provides | {'instance_features'}

    def __init__(self, arch: str, num_classes: int, backbone: str = 'resnet50',
                 min_size: int = 800, max_size: int = 1333,
                 anchor_sizes: Sequence[int] | None = None, norm: str = 'bn',
                 trainable_layers: int = 5, backbone_checkpoint: str | None = None,
                 checkpoint: str | None = None, **kwargs) -> None:
        super().__init__()
        from torchvision.models.detection import FCOS, FasterRCNN
        from torchvision.models.detection.anchor_utils import AnchorGenerator
        from torchvision.models.detection.backbone_utils import (
            mobilenet_backbone,
            resnet_fpn_backbone,
        )
        from torchvision.ops import misc
        from torchvision.ops.feature_pyramid_network import LastLevelP6P7
        if arch not in DETECTOR_ARCHS:
            raise ValueError(f'arch must be one of {DETECTOR_ARCHS}, got {arch!r}')
        if num_classes < 1:
            raise ValueError(f'num_classes must be >= 1, got {num_classes}')
        if norm not in ('bn', 'frozen_bn'):
            raise ValueError(f"norm must be 'bn' or 'frozen_bn', got {norm!r}")
        self.arch, self.num_classes = arch, int(num_classes)
        self.load_reports: dict[str, LoadReport] = {}
        self.one_stage = arch in _ONE_STAGE
        self.provides = self.provides | ({'ignore_regions'} if arch in IGNORE_ARCHS else set()) \
            | (set() if self.one_stage else {'refine_boxes'})
        self.label_offset = 0 if self.one_stage else 1
        norm_layer = nn.BatchNorm2d if norm == 'bn' else misc.FrozenBatchNorm2d
        if backbone.startswith('resnet'):
            extra = dict(returned_layers=[2, 3, 4], extra_blocks=LastLevelP6P7(256, 256)) \
                if self.one_stage else {}
            body = resnet_fpn_backbone(backbone_name=backbone, weights=None,
                                       norm_layer=norm_layer,
                                       trainable_layers=trainable_layers, **extra)
            num_levels = 5
        elif backbone == 'mobilenet_v3_large':
            extra = dict(extra_blocks=LastLevelP6P7(256, 256)) if self.one_stage else {}
            body = mobilenet_backbone(backbone_name=backbone, weights=None, fpn=True,
                                      norm_layer=norm_layer,
                                      trainable_layers=trainable_layers, **extra)
            num_levels = 4 if self.one_stage else 3
        else:
            raise ValueError(f'unsupported backbone {backbone!r}')
        if backbone_checkpoint is not None:
            state = checkpoints.load_state_dict(backbone_checkpoint)
            if backbone == 'mobilenet_v3_large':  # ImageNet keys are 'features.N...'
                state = {k[len('features.'):]: v for k, v in state.items()
                         if k.startswith('features.')}
            # an ImageNet classifier's head has no place in a detector's body
            state = {k: v for k, v in state.items() if not k.startswith(('fc.', 'classifier.'))}
            self.load_reports['backbone'] = _load_matching(
                body.body, state, str(backbone_checkpoint), f'the {backbone} backbone body')
        anchor_generator = None
        if anchor_sizes is not None or backbone == 'mobilenet_v3_large':
            if anchor_sizes is not None:
                base = tuple(anchor_sizes)
            elif backbone == 'mobilenet_v3_large' and not self.one_stage:
                base = (32, 64, 128, 256, 512)  # torchvision's: all sizes on each level
            else:
                base = (32, 64, 128, 256, 512)[:num_levels]
            if backbone == 'mobilenet_v3_large' and not self.one_stage:
                sizes = (tuple(base),) * num_levels
            elif self.one_stage:
                sizes = tuple((s, int(s * 2 ** (1 / 3)), int(s * 2 ** (2 / 3))) for s in base)
            else:
                sizes = tuple((s,) for s in base)
            if len(sizes) != num_levels:
                raise ValueError(f'anchor_sizes needs {num_levels} levels for {backbone} '
                                 f'{arch}, got {len(sizes)}')
            anchor_generator = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))
        common = dict(min_size=min_size, max_size=max_size, **kwargs)
        if arch == 'fasterrcnn':
            if anchor_generator is not None:
                common['rpn_anchor_generator'] = anchor_generator
            self.net = FasterRCNN(body, num_classes=self.num_classes + 1, **common)  # + bg
            # the same modules (and state-dict keys), with ignore regions in their losses
            self.net.rpn.__class__ = _IgnoreRPN
            self.net.roi_heads.__class__ = _IgnoreRoIHeads
        else:
            if anchor_generator is not None:
                common['anchor_generator'] = anchor_generator
            if arch == 'fcos' and anchor_generator is not None:
                # FCOS is anchor-free: one 'anchor' (a location) per level
                common['anchor_generator'] = AnchorGenerator(
                    tuple((s,) for s in (anchor_sizes or (8, 16, 32, 64, 128)[:num_levels])),
                    ((1.0,),) * num_levels)
            cls = _RetinaNet if arch == 'retinanet' else FCOS
            self.net = cls(body, num_classes=self.num_classes, **common)
        if checkpoint is not None:
            self.load_reports['detector'] = _load_matching(
                self.net, checkpoints.load_state_dict(checkpoint), str(checkpoint),
                f'{type(self.net).__name__} ({self.num_classes} classes)')

    def _targets(self, instances: Sequence[DetInstances],
                 ignore: Sequence[torch.Tensor] | None = None) -> list[dict]:
        for inst in instances:
            if len(inst) and (inst.labels.min() < 0 or inst.labels.max() >= self.num_classes):
                raise ValueError(f'box labels must be in [0, {self.num_classes}), got '
                                 f'{inst.labels.unique().tolist()} (num_classes mismatch?)')
        targets = [{'boxes': inst.bboxes.float(),
                    'labels': inst.labels.long() + self.label_offset} for inst in instances]
        for target, boxes in zip(targets, ignore or []):
            boxes = boxes.float().view(-1, 4)
            # a degenerate region would fail torchvision's target check; it covers nothing
            boxes = boxes[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]
            if len(boxes):
                target['boxes'] = torch.cat([target['boxes'], boxes])
                target['labels'] = torch.cat([target['labels'], target['labels'].new_full(
                    (len(boxes),), _IGNORE_LABEL)])
        return targets

    def loss(self, images: list[torch.Tensor], instances: Sequence[DetInstances],
             ignore: Sequence[torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """torchvision's training losses for ``images`` with ``instances`` as targets.

        ``ignore``: per image, ``(n, 4)`` regions (xyxy, image pixels) whose anchors are
        left out of the classification loss instead of being background (RetinaNet and
        Faster R-CNN, see the module docstring).
        """
        if not self.training:
            raise RuntimeError('loss() needs train mode')
        if len(images) != len(instances):
            raise ValueError(f'{len(images)} images but {len(instances)} instance sets')
        if ignore is not None:
            if len(ignore) != len(images):
                raise ValueError(f'{len(images)} images but {len(ignore)} ignore sets')
            if self.arch not in IGNORE_ARCHS and any(len(b) for b in ignore):
                raise ValueError(f'ignore regions need arch in {IGNORE_ARCHS}, not '
                                 f'{self.arch!r}')
        return self.net(list(images), self._targets(instances, ignore))

    @torch.no_grad()
    def predict(self, images: list[torch.Tensor]) -> list[DetInstances]:
        """Detections per image (eval mode expected), labels ``0..K-1``, with scores."""
        outs = self.net(list(images))
        return [DetInstances(o['boxes'].float(), o['labels'].long() - self.label_offset,
                             o['scores'].float()) for o in outs]

    @torch.no_grad()
    def refine_boxes(self, images: list[torch.Tensor], boxes: Sequence[torch.Tensor],
                     labels: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Two-stage detectors: the second stage's regression of given boxes.

        Each image's ``boxes`` (``(n, 4)``, original image pixels) are fed to the box head
        as proposals and decoded with the regression of their ``labels`` (``0..K-1``),
        then clipped to the image: what the detector would make of those boxes. Used for
        Soft Teacher's box-jitter uncertainty; call in eval mode.
        """
        if self.one_stage:
            raise NotImplementedError(f'{self.arch} has no second stage to refine boxes with')
        net = self.net
        sizes = [tuple(img.shape[-2:]) for img in images]
        batch, _ = net.transform(list(images))
        scales = [boxes[i].new_tensor([nw / w, nh / h, nw / w, nh / h])
                  for i, ((h, w), (nh, nw)) in enumerate(zip(sizes, batch.image_sizes))]
        proposals = [b.float() * s for b, s in zip(boxes, scales)]
        counts = [len(b) for b in proposals]
        if sum(counts) == 0:
            return [b.new_zeros(0, 4) for b in proposals]
        heads = net.roi_heads
        feats = heads.box_head(heads.box_roi_pool(net.backbone(batch.tensors), proposals,
                                                  batch.image_sizes))
        _, deltas = heads.box_predictor(feats)
        decoded = heads.box_coder.decode(deltas, proposals)  # (sum n, K + 1, 4)
        cls = torch.cat([lab.long() for lab in labels]) + self.label_offset
        picked = decoded[torch.arange(len(cls), device=cls.device), cls]
        out = []
        for part, s, (h, w) in zip(picked.split(counts), scales, sizes):
            part = part / s
            part[:, 0::2] = part[:, 0::2].clamp(0, w)
            part[:, 1::2] = part[:, 1::2].clamp(0, h)
            out.append(part)
        return out

    @property
    def feature_channels(self) -> int:
        """Channels of the FPN levels that :meth:`instance_features` pools."""
        return int(self.net.backbone.out_channels)

    def instance_features(self, images: list[torch.Tensor],
                          boxes: Sequence[torch.Tensor], output_size: int = 7) -> torch.Tensor:
        """One feature vector per box: RoIAlign over the FPN levels, averaged spatially.

        Runs the detector's own transform (normalisation, resize) and backbone + FPN on
        ``images``, maps each image's ``boxes`` (``(n, 4)`` xyxy, image pixels) into the
        resized frame and pools them with torchvision's ``MultiScaleRoIAlign`` (level
        chosen by box size). Works for every architecture here (one- and two-stage);
        gradients flow into the backbone when called in a grad-enabled context.

        Returns:
            ``(sum n, feature_channels)``, boxes in image order.
        """
        from torchvision.ops import MultiScaleRoIAlign
        net = self.net
        sizes = [tuple(img.shape[-2:]) for img in images]
        batch, _ = net.transform(list(images))
        scaled = []
        for b, (h, w), (nh, nw) in zip(boxes, sizes, batch.image_sizes):
            scaled.append(b.float() * b.new_tensor([nw / w, nh / h, nw / w, nh / h]).float())
        feats = net.backbone(batch.tensors)
        names = [k for k in feats if k != 'pool']
        pool = self.__dict__.get('_roi_pool')
        if pool is None or pool.output_size != (output_size,) * 2:
            # no parameters; kept out of the module tree (state dict, DDP) on purpose
            pool = MultiScaleRoIAlign(names, output_size, sampling_ratio=2)
            object.__setattr__(self, '_roi_pool', pool)
        if sum(len(b) for b in scaled) == 0:
            return batch.tensors.new_zeros(0, self.feature_channels)
        pooled = pool(feats, scaled, batch.image_sizes)  # (K, C, s, s)
        return pooled.mean(dim=(2, 3))
