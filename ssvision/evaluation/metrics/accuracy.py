"""Top-k accuracy and per-class recall for every prediction source of a model."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any, Optional, Union

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from ssvision.registry import METRICS


def _to_int(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return int(value.reshape(-1)[0].item())
    if isinstance(value, np.ndarray):
        return int(value.reshape(-1)[0])
    return int(value)


def _key_name(name: Any) -> str:
    """A class name usable in a metric key (no whitespace or ``/``)."""
    return re.sub(r'[\s/\\]+', '_', str(name)).strip('_') or '_'


@METRICS.register_module()
class SemiAccuracy(BaseMetric):
    """Accuracy of each score source (``teacher``, ``student``, ...) of a model.

    ``process`` takes the model's validation outputs, one dict per image::

        {'gt_label': int, 'scores': {'teacher': Tensor (C,), 'student': Tensor (C,)}}

    (any set of names; scores may be logits or probabilities). ``compute_metrics``
    returns, for each name:

    * ``<name>/top1``: percent of samples whose argmax equals the label;
    * ``<name>/top<k>`` for every other ``k`` in ``topk`` (label among the k best;
      with fewer than ``k`` classes every sample counts as a hit);
    * ``<name>/mean_recall``: percent, mean of the per-class recalls over the classes
      that occur in the labels (balanced accuracy);
    * ``<name>/recall_<class>``: percent recall of each class, named after
      ``dataset_meta['classes']`` (whitespace and ``/`` replaced by ``_``) or the
      class index; ``nan`` for a class without labelled samples.

    Samples with ``gt_label < 0`` (unknown label) are ignored, counted and warned about.
    Each processed sample adds exactly one plain-Python item to ``self.results``, so
    mmengine's distributed collection (which truncates to the dataset size) works.

    Args:
        topk (int | Sequence[int]): the k of the top-k accuracies. Default ``(1,)``;
            ``top1`` is always reported.
        collect_device (str): ``'cpu'`` or ``'gpu'``, as in ``BaseMetric``.
        prefix (str, optional): prefix of the metric keys, as in ``BaseMetric``.
    """

    default_prefix: Optional[str] = None

    def __init__(self, topk: Union[int, Sequence[int]] = (1,), collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        ks = (topk,) if isinstance(topk, int) else tuple(topk)
        if not ks or any(int(k) < 1 for k in ks):
            raise ValueError(f'topk must hold positive integers, got {topk}')
        self.topk = tuple(sorted({1, *(int(k) for k in ks)}))

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Store ``{'gt': int, 'num_classes': {name: C}, 'pred': {name: [top-k ids]}}``.

        Args:
            data_batch: the batch from the dataloader (unused).
            data_samples: the model's outputs, one dict per image (see class doc).
        """
        maxk = max(self.topk)
        for sample in data_samples:
            if not isinstance(sample, dict) and hasattr(sample, 'to_dict'):
                sample = sample.to_dict()
            gt = _to_int(sample['gt_label'])
            item: dict[str, Any] = {'gt': gt, 'pred': {}, 'num_classes': {}}
            if gt >= 0:
                for name, scores in sample['scores'].items():
                    scores = torch.as_tensor(scores).detach().reshape(-1).float().cpu()
                    k = min(maxk, scores.numel())
                    item['pred'][str(name)] = scores.topk(k).indices.tolist()
                    item['num_classes'][str(name)] = int(scores.numel())
            self.results.append(item)

    def compute_metrics(self, results: list) -> dict[str, float]:
        """Accuracies and recalls from all ranks' results.

        Args:
            results: the items stored by :meth:`process`.

        Returns:
            ``{'<name>/top1': float, '<name>/mean_recall': float,
            '<name>/recall_<class>': float, ...}``, all in percent.
        """
        valid = [r for r in results if r['gt'] >= 0]
        ignored = len(results) - len(valid)
        if ignored:
            print_log(f'SemiAccuracy: ignored {ignored} of {len(results)} samples with '
                      'gt_label < 0', logger='current', level=30)
        if not valid:
            print_log('SemiAccuracy: no sample with a label; no metric computed',
                      logger='current', level=30)
            return {}
        classes = (self.dataset_meta or {}).get('classes')
        names = sorted({name for r in valid for name in r['pred']})
        metrics: dict[str, float] = {}
        for name in names:
            rows = [r for r in valid if name in r['pred']]
            gt = np.array([r['gt'] for r in rows], dtype=np.int64)
            preds = [r['pred'][name] for r in rows]
            num_classes = max(max(r['num_classes'][name] for r in rows), int(gt.max()) + 1)
            if classes is not None:
                num_classes = max(num_classes, len(classes))
            top1 = np.array([p[0] for p in preds], dtype=np.int64)
            metrics[f'{name}/top1'] = float((top1 == gt).mean() * 100.0)
            for k in self.topk:
                if k == 1:
                    continue
                hits = [g in p[:k] for g, p in zip(gt.tolist(), preds)]
                metrics[f'{name}/top{k}'] = float(np.mean(hits) * 100.0)
            recalls = []
            per_class = {}
            for c in range(num_classes):
                mask = gt == c
                if mask.any():
                    recall = float((top1[mask] == c).mean() * 100.0)
                    recalls.append(recall)
                else:
                    recall = math.nan
                label = classes[c] if classes is not None and c < len(classes) else c
                per_class[f'{name}/recall_{_key_name(label)}'] = recall
            metrics[f'{name}/mean_recall'] = float(np.mean(recalls))
            metrics.update(per_class)
        return metrics
