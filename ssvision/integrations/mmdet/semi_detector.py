"""mmdetection plug-in: a semi-supervised detector with class-aware pseudo-box selection.

:class:`SsvSemiDetector` extends mmdetection's ``SemiBaseDetector`` (teacher / student
built from any mmdet detector config, mmdet's multi-branch pipelines, data
preprocessor, ``MeanTeacherHook`` and ``TeacherStudentValLoop``), and changes how
pseudo-boxes are chosen and used:

* **class-aware selection**: the teacher's detections go through an ssvision box
  selector (``semi_train_cfg.selector``, default
  :class:`~ssvision.models.selectors.ClassAwareBoxSelector`: per-class adaptive score
  thresholds) instead of one global ``cls_pseudo_thr``. The selector's state is part of
  the model, so it is checkpointed and resumed;
* **one-stage teachers work**: RetinaNet / FCOS / ATSS teachers score far below 0.9 for
  a long time, and with a global threshold they yield no pseudo-box while the unsup
  loss silently stays 0; the per-class thresholds follow the teacher's own score
  distribution, and a run of iterations without any pseudo-box raises a warning;
* **no false background**: only unlabeled images with at least one pseudo-box enter the
  student's unsup forward (an image with none adds exactly 0, it is not trained as all
  background); a batch with none gives an unsup loss of exactly 0, without NaN;
* **regression gating** (``reg_uncertainty``, any detector): the teacher also predicts
  on the horizontally flipped batch; pseudo-boxes whose sides move more than
  ``reg_uncertainty`` of their size between the two (or that have no match) train
  classification terms only, the others also the box terms.

The pseudo-boxes come from ssvision's one pseudo-box policy
(:class:`~ssvision.models.algorithms.pseudo_boxes.PseudoBoxPolicy`: select, gate, move
into the student's view, health figures), the same code ssvision's own
:class:`~ssvision.models.algorithms.SemiDetector` runs, so the two cannot drift apart.
Only the glue (mmdetection's data samples and homographies) is here.

A plain mmdetection checkpoint (e.g. from mmdetection's model zoo) loads into teacher
and student (``SemiBaseDetector``'s key mapping), so ``load_from`` fine-tunes.

``semi_train_cfg`` keys: mmdetection's (``freeze_teacher``, ``sup_weight``,
``unsup_weight``, ``min_pseudo_bbox_wh``) and ``selector`` (an ssvision box selector
config; ``num_classes`` is filled in from the detector when missing),
``reg_uncertainty`` (None: off), ``zero_warn_iters`` (50).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from mmdet.models.detectors.semi_base import SemiBaseDetector
from mmdet.models.utils import rename_loss_dict, reweight_loss_dict
from mmdet.registry import MODELS as MMDET_MODELS
from mmdet.structures.bbox import get_box_tensor
from mmengine.structures import InstanceData

from ssvision.models.algorithms.pseudo_boxes import PseudoBoxes, PseudoBoxPolicy
from ssvision.registry import MODELS as SSV_MODELS
from ssvision.structures import DetInstances

__all__ = ['SsvSemiDetector']


def _num_classes(detector_cfg) -> int | None:
    for key in ('bbox_head', 'roi_head'):
        head = detector_cfg.get(key)
        if head is None:
            continue
        if key == 'roi_head':
            head = head.get('bbox_head', {})
        if isinstance(head, (list, tuple)):
            head = head[-1]
        if 'num_classes' in head:
            return int(head['num_classes'])
    return None


def _dets(instances) -> DetInstances:
    """mmdetection's predicted (or true) instances as :class:`DetInstances`."""
    scores = instances.scores if 'scores' in instances else None
    return DetInstances(get_box_tensor(instances.bboxes), instances.labels, scores)


@MMDET_MODELS.register_module()
class SsvSemiDetector(SemiBaseDetector):
    """Mean-teacher mmdetection detector with ssvision's pseudo-box policy (see the
    module docstring)."""

    def __init__(self, detector, semi_train_cfg=None, semi_test_cfg=None,
                 data_preprocessor=None, init_cfg=None) -> None:
        semi_train_cfg = copy.deepcopy(dict(semi_train_cfg or {}))
        selector = semi_train_cfg.pop('selector', None)
        reg_uncertainty = semi_train_cfg.pop('reg_uncertainty', None)
        zero_warn_iters = int(semi_train_cfg.pop('zero_warn_iters', 50))
        if semi_train_cfg.get('ignore_score') is not None:
            raise ValueError('semi_train_cfg.ignore_score (ignore regions) is not built for '
                             "mmdetection's detectors yet; ssvision's SemiDetector has it for "
                             'TorchvisionDetector RetinaNet')
        super().__init__(detector=detector, semi_train_cfg=semi_train_cfg,
                         semi_test_cfg=semi_test_cfg or {}, data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        self.num_classes = _num_classes(detector)
        if selector is None:
            if self.num_classes is None:
                raise ValueError('give semi_train_cfg.selector: the number of classes could '
                                 'not be read from the detector config')
            selector = dict(type='ClassAwareBoxSelector', num_classes=self.num_classes)
        selector = dict(selector)
        if selector.get('type') == 'ClassAwareBoxSelector' and 'num_classes' not in selector:
            selector['num_classes'] = self.num_classes
        # built in ssvision's scope whatever the default scope (mmdet's here)
        with SSV_MODELS.switch_scope_and_registry('ssvision') as registry:
            self.selector = registry.build(selector)
        # mmdetection's own size filter of pseudo-boxes becomes the policy's. mmdetection
        # keeps boxes wider and higher than the sizes (w > min_w, h > min_h), the policy
        # those at least its size wide and high: on float32 boxes (mmdetection's), "> t"
        # is ">= the next float32 above t". One size for both sides: the larger.
        min_wh = self.semi_train_cfg.get('min_pseudo_bbox_wh', (1e-2, 1e-2))
        min_size = np.nextafter(np.float32(max(min_wh)), np.float32(np.inf))
        self.policy = PseudoBoxPolicy(self.selector, self.num_classes, reg_uncertainty,
                                      min_box_size=float(min_size),
                                      zero_warn_iters=zero_warn_iters,
                                      name=type(self).__name__)

    # ------------------------------------------------------------ the iteration
    def loss(self, multi_batch_inputs: dict, multi_batch_data_samples: dict) -> dict:
        """Labeled losses, then the policy's pseudo-boxes in the student's views and
        their losses (mmdetection's ``SemiBaseDetector.loss`` with the policy in place
        of its pseudo-instance steps)."""
        losses = dict(self.loss_by_gt_instances(multi_batch_inputs['sup'],
                                                multi_batch_data_samples['sup']))
        pseudo = self.pseudo_boxes(multi_batch_inputs['unsup_teacher'],
                                   multi_batch_data_samples['unsup_teacher'],
                                   multi_batch_data_samples['unsup_student'])
        losses.update(self.loss_by_pseudo_boxes(multi_batch_inputs['unsup_student'],
                                                multi_batch_data_samples['unsup_student'],
                                                pseudo))
        return losses

    @torch.no_grad()
    def _detect(self, batch_inputs, batch_data_samples) -> list[DetInstances]:
        # mmdet's predict writes into (and returns) the samples it is given: clone them
        results = self.teacher.predict(batch_inputs, [s.clone() for s in batch_data_samples],
                                       rescale=False)
        return [_dets(r.pred_instances) for r in results]

    @torch.no_grad()
    def pseudo_boxes(self, batch_inputs, teacher_samples, student_samples) -> PseudoBoxes:
        """The teacher's detections on the weak views through the pseudo-box policy:
        pseudo-boxes in the student's views, and their health."""
        self.teacher.eval()
        dets = self._detect(batch_inputs, teacher_samples)
        flipped = widths = None
        if self.policy.needs_flipped:
            # flip each image inside its own (unpadded) extent, so its content stays at
            # [0, w) and the heads' clipping to img_shape does not cut it
            flipped_inputs = batch_inputs.clone()
            widths = []
            for i, s in enumerate(teacher_samples):
                h, w = s.img_shape[:2]
                flipped_inputs[i, :, :h, :w] = batch_inputs[i, :, :h, :w].flip(-1)
                widths.append(w)
            flipped = self._detect(flipped_inputs, teacher_samples)
        dev = batch_inputs.device
        moves = [(torch.as_tensor(t.homography_matrix, device=dev),
                  torch.as_tensor(s.homography_matrix, device=dev), tuple(s.img_shape[:2]))
                 for t, s in zip(teacher_samples, student_samples)]
        # true boxes of the unlabeled images, when the json has them (health only)
        true = [_dets(s.gt_instances) if 'gt_instances' in s and 'bboxes' in s.gt_instances
                else DetInstances() for s in teacher_samples]
        return self.policy(dets, moves, flipped=flipped, widths=widths, true=true)

    def loss_by_gt_instances(self, batch_inputs, batch_data_samples):
        # the labeled boxes per class feed the class-aware selector's count prior
        self.selector.observe([s.gt_instances.labels for s in batch_data_samples])
        return super().loss_by_gt_instances(batch_inputs, batch_data_samples)

    def loss_by_pseudo_boxes(self, batch_inputs, batch_data_samples,
                             pseudo: PseudoBoxes) -> dict:
        """``unsup_``-prefixed, ``unsup_weight``-scaled losses: classification terms over
        the images with pseudo-boxes, box terms over those with reliable ones; the
        health figures ride along."""
        zero = batch_inputs.new_zeros(())
        terms = {}
        for part, idx in self.policy.forwards(pseudo):
            samples = []
            for i in idx:
                s = batch_data_samples[i].clone()
                b = getattr(pseudo, part)[i]
                s.gt_instances = InstanceData(bboxes=b.bboxes, labels=b.labels)
                samples.append(s)
            terms[part] = self.student.loss(batch_inputs[idx], samples)
        cls_terms, reg_terms = self.policy.split_terms(terms)
        losses = {**cls_terms, **reg_terms}
        if not losses:
            losses = {'loss': zero}
        weight = self.semi_train_cfg.get('unsup_weight', 1.0)
        out = rename_loss_dict('unsup_', reweight_loss_dict(losses, weight))
        out.update({k: v.to(zero.device) for k, v in pseudo.health.items()})
        return out
