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
  classification terms only (loss names with ``cls``), the others also the box terms
  (``bbox``, ``iou``, ``centerness``, ...).

A plain mmdetection checkpoint (e.g. from mmdetection's model zoo) loads into teacher
and student (``SemiBaseDetector``'s key mapping), so ``load_from`` fine-tunes.

``semi_train_cfg`` keys: mmdetection's (``freeze_teacher``, ``sup_weight``,
``unsup_weight``, ``min_pseudo_bbox_wh``) and ``selector`` (an ssvision box selector
config; ``num_classes`` is filled in from the detector when missing),
``reg_uncertainty`` (None: off), ``zero_warn_iters`` (50).
"""

from __future__ import annotations

import copy
import warnings

import torch
from mmdet.models.detectors.semi_base import SemiBaseDetector
from mmdet.models.utils import rename_loss_dict, reweight_loss_dict
from mmdet.registry import MODELS as MMDET_MODELS
from mmdet.structures.bbox import bbox_project

from ssvision.models.algorithms.semi_detector import box_precision, flip_uncertainty
from ssvision.registry import MODELS as SSV_MODELS
from ssvision.structures import DetInstances

__all__ = ['SsvSemiDetector']

_BOX_TERMS = ('bbox', 'iou', 'centerness', 'ctrness', 'dfl')


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


@MMDET_MODELS.register_module()
class SsvSemiDetector(SemiBaseDetector):
    """Mean-teacher mmdetection detector with ssvision's pseudo-box selection (see the
    module docstring)."""

    def __init__(self, detector, semi_train_cfg=None, semi_test_cfg=None,
                 data_preprocessor=None, init_cfg=None) -> None:
        semi_train_cfg = copy.deepcopy(dict(semi_train_cfg or {}))
        selector = semi_train_cfg.pop('selector', None)
        self._reg_uncertainty = semi_train_cfg.pop('reg_uncertainty', None)
        self._zero_warn_iters = int(semi_train_cfg.pop('zero_warn_iters', 50))
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
        self._zero_run = 0

    # ------------------------------------------------------------ pseudo-boxes
    @torch.no_grad()
    def get_pseudo_instances(self, batch_inputs, batch_data_samples):
        """Teacher detections, selected per class, in original-image coordinates; the
        uncertainty flag of each kept box rides along as ``gt_instances.reg_ok``."""
        self.teacher.eval()
        # mmdet's predict writes into (and returns) the samples it is given: clone them so
        # a second (flipped) pass cannot overwrite these detections
        results = self.teacher.predict(batch_inputs, [s.clone() for s in batch_data_samples],
                                       rescale=False)
        preds = [r.pred_instances for r in results]
        dets = [DetInstances(p.bboxes, p.labels, p.scores) for p in preds]
        keep = self.selector(dets)
        if self._reg_uncertainty is not None:
            # flip each image inside its own (unpadded) extent, so its content stays at
            # [0, w) and the heads' clipping to img_shape does not cut it
            flipped_inputs = batch_inputs.clone()
            widths = []
            for i, s in enumerate(batch_data_samples):
                h, w = s.img_shape[:2]
                flipped_inputs[i, :, :h, :w] = batch_inputs[i, :, :h, :w].flip(-1)
                widths.append(w)
            flipped = self.teacher.predict(flipped_inputs,
                                           [s.clone() for s in batch_data_samples],
                                           rescale=False)
            reg_ok = [flip_uncertainty(d, DetInstances(f.pred_instances.bboxes,
                                                       f.pred_instances.labels,
                                                       f.pred_instances.scores), w)
                      <= self._reg_uncertainty for d, f, w in zip(dets, flipped, widths)]
        else:
            reg_ok = [torch.ones(len(d), dtype=torch.bool, device=d.bboxes.device)
                      for d in dets]
        # health rides to loss_by_pseudo_instances in mmdet's batch_info
        batch_info = {'health': self._selection_health(dets, keep, batch_data_samples)}
        for samples, pred, k, ok in zip(batch_data_samples, preds, keep, reg_ok):
            inst = pred[k]
            inst.reg_ok = ok[k]
            inst.bboxes = bbox_project(
                inst.bboxes, torch.from_numpy(samples.homography_matrix).inverse().to(
                    inst.bboxes.device), samples.ori_shape)
            samples.gt_instances = inst
        return batch_data_samples, batch_info

    def _selection_health(self, dets, keep, samples) -> dict:
        k = self.num_classes or 0
        kept = [d.labels[m] for d, m in zip(dets, keep)]
        counts = torch.bincount(torch.cat(kept).long(), minlength=k) if kept else \
            torch.zeros(k, dtype=torch.long)
        n = max(len(dets), 1)
        log = {'pb_per_img': sum(len(x) for x in kept) / n,
               'cand_per_img': sum(len(d) for d in dets) / n}
        log.update({f'pb_n_{c}': float(counts[c]) for c in range(k)})
        # precision against true boxes, when the unlabeled json had them (health only)
        tp = npred = 0
        for d, m, s in zip(dets, keep, samples):
            gt = getattr(s, 'gt_instances', None)
            if gt is None or 'bboxes' not in gt or len(gt) == 0:
                continue
            true = DetInstances(gt.bboxes, gt.labels)
            a, b = box_precision(d[m], true)
            tp, npred = tp + a, npred + b
        if npred:
            log['pb_prec'] = tp / npred
        log.update(self.selector.extra_log())
        return log

    # ------------------------------------------------------------ losses
    def loss_by_gt_instances(self, batch_inputs, batch_data_samples):
        # the labeled boxes per class feed the class-aware selector's count prior
        if hasattr(self.selector, 'observe'):
            self.selector.observe([s.gt_instances.labels for s in batch_data_samples])
        return super().loss_by_gt_instances(batch_inputs, batch_data_samples)

    def loss_by_pseudo_instances(self, batch_inputs, batch_data_samples, batch_info=None):
        wh = self.semi_train_cfg.get('min_pseudo_bbox_wh', (1e-2, 1e-2))
        idx, reg_idx = [], []
        for i, s in enumerate(batch_data_samples):
            g = s.gt_instances
            w, h = g.bboxes[:, 2] - g.bboxes[:, 0], g.bboxes[:, 3] - g.bboxes[:, 1]
            s.gt_instances = g[(w > wh[0]) & (h > wh[1])]
            if len(s.gt_instances):
                idx.append(i)
                if s.gt_instances.reg_ok.any():
                    reg_idx.append(i)
        zero = batch_inputs.new_zeros(())
        weight = self.semi_train_cfg.get('unsup_weight', 1.0)
        losses = {}
        if idx:
            samples = [self._strip(batch_data_samples[i], reg_only=False) for i in idx]
            out = self.student.loss(batch_inputs[idx], samples)
            if self._reg_uncertainty is None:
                losses.update(out)
            else:
                losses.update({k: v for k, v in out.items() if not _is_box_term(k)})
                if reg_idx:
                    samples = [self._strip(batch_data_samples[i], reg_only=True)
                               for i in reg_idx]
                    out = self.student.loss(batch_inputs[reg_idx], samples)
                    losses.update({k: v for k, v in out.items() if _is_box_term(k)})
        if not losses:
            losses = {'loss': zero}
        n_boxes = sum(len(s.gt_instances) for s in batch_data_samples)
        self._zero_run = 0 if n_boxes else self._zero_run + 1
        if self._zero_run == self._zero_warn_iters:
            warnings.warn(f'SsvSemiDetector: no pseudo-box for {self._zero_run} iterations in '
                          'a row; the unsup loss is 0 (check the teacher score_thr and the '
                          'selector floor)', stacklevel=2)
        out = rename_loss_dict('unsup_', reweight_loss_dict(losses, weight))
        dev = zero.device
        health = (batch_info or {}).get('health', {})
        out.update({k: torch.tensor(float(v), device=dev) for k, v in health.items()})
        out['pb_reg_frac'] = torch.tensor(
            sum(int(s.gt_instances.reg_ok.sum()) for s in batch_data_samples)
            / max(n_boxes, 1), device=dev)
        return out

    @staticmethod
    def _strip(sample, reg_only: bool):
        """A copy whose gt_instances hold only boxes and labels (of the reliable boxes
        when ``reg_only``): what the student's loss expects."""
        s = sample.clone()
        g = s.gt_instances[s.gt_instances.reg_ok] if reg_only else s.gt_instances
        s.gt_instances = g.new(bboxes=g.bboxes, labels=g.labels)
        return s


def _is_box_term(name: str) -> bool:
    return any(t in name for t in _BOX_TERMS) and 'cls' not in name
