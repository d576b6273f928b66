"""Intersection over union of semantic segmentations for every prediction source."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from ssvision.registry import METRICS

from .accuracy import _key_name

#: Label of pixels without a class; excluded from every count.
IGNORE_INDEX = 255
_WARNING = 30


def confusion_matrix(gt: torch.Tensor, pred: torch.Tensor, num_classes: int,
                     ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """``(K, K)`` int64 counts, rows = ground truth, columns = prediction.

    Pixels whose ground truth is ``ignore_index`` (or outside ``[0, K)``) are skipped.

    Args:
        gt: ``(H, W)`` (any shape) integer labels.
        pred: predicted labels of the same shape, in ``[0, K)``.
        num_classes: ``K``.
        ignore_index: label skipped in ``gt``.
    """
    gt, pred = gt.reshape(-1).long(), pred.reshape(-1).long()
    keep = (gt != ignore_index) & (gt >= 0) & (gt < num_classes)
    if (pred[keep] < 0).any() or (pred[keep] >= num_classes).any():
        raise ValueError(f'predicted labels must be in [0, {num_classes})')
    flat = gt[keep] * num_classes + pred[keep]
    return torch.bincount(flat, minlength=num_classes ** 2).reshape(num_classes, num_classes)


@METRICS.register_module()
class SegIoU(BaseMetric):
    """mIoU, per-class IoU and pixel accuracy of each score source of a model.

    ``process`` takes the model's validation outputs, one dict per image (what
    :meth:`SegmentationTask.pack_predictions` makes)::

        {'gt_seg': (H, W) int, 'pred': {'teacher': (H, W) int, 'student': (H, W) int}}

    (any set of names; ``'scores': {name: (K, H, W)}`` is accepted instead of
    ``'pred'`` and reduced with argmax). Each image adds one item to
    ``self.results``: ``{name: (K, K) numpy int64 confusion matrix}``, small and
    picklable, and one per image so mmengine's distributed collection (which
    truncates to the dataset size to drop sampler padding) stays exact.

    ``compute_metrics`` sums the matrices and returns, for each name, in percent:

    * ``<name>/mIoU``: mean of ``IoU_c = TP_c / (TP_c + FP_c + FN_c)`` over the
      classes present in the ground truth *or* the predictions (``TP + FP + FN > 0``);
      classes absent from both are left out instead of counting as 0 or 100;
    * ``<name>/aAcc``: correctly labelled pixels / labelled pixels;
    * ``<name>/mAcc``: mean per-class recall over the classes present in the gt;
    * ``<name>/IoU_<class>``: per class, named after ``dataset_meta['classes']``
      (whitespace and ``/`` replaced by ``_``) or the class index; ``nan`` for a
      class absent from both.

    ``ignore_index`` pixels of the ground truth are excluded everywhere.

    Args:
        num_classes (int, optional): ``K``; default ``len(dataset_meta['classes'])``,
            else the score maps' ``K``, else the largest label seen + 1.
        ignore_index (int): label skipped in the ground truth. Default 255.
        collect_device (str): ``'cpu'`` or ``'gpu'``, as in ``BaseMetric``.
        prefix (str, optional): prefix of the metric keys, as in ``BaseMetric``.
    """

    default_prefix: Optional[str] = None

    def __init__(self, num_classes: Optional[int] = None, ignore_index: int = IGNORE_INDEX,
                 collect_device: str = 'cpu', prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.num_classes = None if num_classes is None else int(num_classes)
        self.ignore_index = int(ignore_index)

    def _num_classes(self, gt: torch.Tensor, preds: dict[str, torch.Tensor],
                     score_k: int) -> int:
        if self.num_classes is not None:
            return self.num_classes
        classes = (self.dataset_meta or {}).get('classes')
        if classes is not None:
            return len(classes)
        valid = gt[gt != self.ignore_index]
        k = max([score_k, int(valid.max()) + 1 if valid.numel() else 0]
                + [int(p.max()) + 1 for p in preds.values() if p.numel()])
        return max(k, 1)

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Store one ``{name: (K, K) int64 ndarray}`` confusion matrix dict per image.

        Args:
            data_batch: the batch from the dataloader (unused).
            data_samples: the model's outputs, one dict per image (see class doc).
        """
        for sample in data_samples:
            if not isinstance(sample, dict) and hasattr(sample, 'to_dict'):
                sample = sample.to_dict()
            gt = torch.as_tensor(sample['gt_seg']).detach().cpu().long()
            score_k = 0
            if 'pred' in sample:
                preds = {str(k): torch.as_tensor(v).detach().cpu().long()
                         for k, v in sample['pred'].items()}
            else:
                scores = {str(k): torch.as_tensor(v).detach().cpu()
                          for k, v in sample['scores'].items()}
                score_k = max(s.shape[0] for s in scores.values())
                preds = {k: s.argmax(dim=0) for k, s in scores.items()}
            k = self._num_classes(gt, preds, score_k)
            self.results.append({
                name: confusion_matrix(gt, pred, k, self.ignore_index).numpy()
                for name, pred in preds.items()})

    def compute_metrics(self, results: list) -> dict[str, float]:
        """IoUs and accuracies from all ranks' results.

        Args:
            results: the items stored by :meth:`process`.

        Returns:
            ``{'<name>/mIoU': float, '<name>/aAcc': float, '<name>/mAcc': float,
            '<name>/IoU_<class>': float, ...}``, all in percent.
        """
        classes = (self.dataset_meta or {}).get('classes')
        names = sorted({name for r in results for name in r})
        metrics: dict[str, float] = {}
        for name in names:
            mats = [r[name] for r in results if name in r]
            k = max(m.shape[0] for m in mats)
            conf = np.zeros((k, k), dtype=np.int64)
            for m in mats:
                conf[:m.shape[0], :m.shape[1]] += m
            total = conf.sum()
            if total == 0:
                print_log(f'SegIoU: no labelled pixel for {name!r}; no metric computed',
                          logger='current', level=_WARNING)
                continue
            tp = np.diag(conf).astype(np.float64)
            gt_count = conf.sum(axis=1)
            union = gt_count + conf.sum(axis=0) - tp
            present = union > 0
            iou = np.where(present, tp / np.maximum(union, 1), math.nan) * 100.0
            metrics[f'{name}/mIoU'] = float(iou[present].mean())
            metrics[f'{name}/aAcc'] = float(tp.sum() / total * 100.0)
            in_gt = gt_count > 0
            metrics[f'{name}/mAcc'] = float((tp[in_gt] / gt_count[in_gt]).mean() * 100.0)
            for c in range(k):
                label = classes[c] if classes is not None and c < len(classes) else c
                metrics[f'{name}/IoU_{_key_name(label)}'] = float(iou[c])
        return metrics
