"""COCO box mAP (pycocotools) for every prediction source of a detector."""

from __future__ import annotations

import contextlib
import io
from typing import Any, Optional

import numpy as np
from mmengine.evaluator import BaseMetric

from ssvision.registry import METRICS

from .accuracy import _key_name

__all__ = ['CocoDetMetric']


@METRICS.register_module()
class CocoDetMetric(BaseMetric):
    """COCO bbox mAP, AP50, AP75, AP small / medium / large and per-class AP, per source.

    Reads a semi-supervised detector's ``predict`` outputs (``img_id``,
    ``pred: {name: DetInstances}`` in original-image pixels, ``gt_instances``). Ground
    truth is ``ann_file`` (or the dataset's ``metainfo['ann_file']``) restricted to the
    evaluated images, or, with neither, the packed ``gt_instances``. Labels map to
    category ids through ``dataset_meta['cat_ids']`` (label + 1 without it).

    Keys (percent): ``<name>/mAP``, ``<name>/AP50``, ``<name>/AP75``, ``<name>/APs``,
    ``<name>/APm``, ``<name>/APl`` and ``<name>/AP_<class>`` (area all, 100 detections;
    -1 for a class without ground truth among the evaluated images).

    Args:
        ann_file (str, optional): COCO json of the evaluated images.
        classwise (bool): per-class AP. Default True.
        collect_device (str): as in ``BaseMetric``.
        prefix (str, optional): as in ``BaseMetric``.
    """

    default_prefix: Optional[str] = None

    def __init__(self, ann_file: Optional[str] = None, classwise: bool = True,
                 collect_device: str = 'cpu', prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        from ssvision.utils.paths import find_data
        self.ann_file, self.classwise = find_data(ann_file), classwise

    def process(self, data_batch: Any, data_samples: list[dict]) -> None:
        for item in data_samples:
            rec = {'img_id': int(item['img_id']), 'ori_shape': tuple(item['ori_shape']),
                   'pred': {n: (d.bboxes.numpy(), d.scores.numpy(), d.labels.numpy())
                            for n, d in item['pred'].items()}}
            g = item.get('gt_instances')
            if g is not None:
                rec['gt'] = (g.bboxes.numpy(), g.labels.numpy())
            self.results.append(rec)

    def _gt(self, results: list[dict], cat_ids: list[int], classes) -> Any:
        from pycocotools.coco import COCO
        ann_file = self.ann_file or (self.dataset_meta or {}).get('ann_file')
        img_ids = sorted({r['img_id'] for r in results})
        if ann_file:
            with contextlib.redirect_stdout(io.StringIO()):
                coco = COCO(ann_file)
            missing = [i for i in img_ids if i not in coco.imgs]
            if missing:
                raise ValueError(f'{ann_file} lacks evaluated image ids {missing[:10]}')
            return coco, img_ids
        images, anns = [], []
        for r in results:
            h, w = r['ori_shape']
            images.append({'id': r['img_id'], 'height': h, 'width': w})
            boxes, labels = r.get('gt', (np.zeros((0, 4)), np.zeros(0, int)))
            for b, lab in zip(boxes, labels):
                bw, bh = float(b[2] - b[0]), float(b[3] - b[1])
                anns.append({'id': len(anns) + 1, 'image_id': r['img_id'],
                             'category_id': cat_ids[int(lab)], 'iscrowd': 0,
                             'bbox': [float(b[0]), float(b[1]), bw, bh], 'area': bw * bh})
        coco = COCO()
        coco.dataset = {'images': images, 'annotations': anns,
                        'categories': [{'id': c, 'name': str(n)} for c, n in
                                       zip(cat_ids, classes)]}
        with contextlib.redirect_stdout(io.StringIO()):
            coco.createIndex()
        return coco, img_ids

    def compute_metrics(self, results: list) -> dict[str, float]:
        from pycocotools.cocoeval import COCOeval
        meta = self.dataset_meta or {}
        classes = list(meta.get('classes') or [])
        num = max([len(classes)] + [int(lab.max()) + 1 for r in results
                                    for _, _, lab in r['pred'].values() if len(lab)]
                  + [int(r['gt'][1].max()) + 1 for r in results
                     if 'gt' in r and len(r['gt'][1])])
        cat_ids = list(meta.get('cat_ids') or range(1, num + 1))
        classes = classes or [str(c) for c in range(num)]
        coco_gt, img_ids = self._gt(results, cat_ids, classes)
        names = list(results[0]['pred']) if results else []
        metrics: dict[str, float] = {}
        for name in names:
            dets = []
            for r in results:
                boxes, scores, labels = r['pred'][name]
                for b, s, lab in zip(boxes, scores, labels):
                    dets.append({'image_id': r['img_id'], 'category_id': cat_ids[int(lab)],
                                 'bbox': [float(b[0]), float(b[1]), float(b[2] - b[0]),
                                          float(b[3] - b[1])], 'score': float(s)})
            keys = ('mAP', 'AP50', 'AP75', 'APs', 'APm', 'APl')
            if not dets:  # nothing predicted: 0 where there is ground truth, else -1
                has_gt = bool(coco_gt.getAnnIds(imgIds=img_ids))
                metrics.update({f'{name}/{k}': 0.0 if has_gt else -1.0 for k in keys})
                if self.classwise:
                    for cat, cname in zip(cat_ids, classes):
                        n = len(coco_gt.getAnnIds(imgIds=img_ids, catIds=[cat]))
                        metrics[f'{name}/AP_{_key_name(cname)}'] = 0.0 if n else -1.0
                continue
            with contextlib.redirect_stdout(io.StringIO()):
                coco_dt = coco_gt.loadRes(dets)
                ev = COCOeval(coco_gt, coco_dt, 'bbox')
                ev.params.imgIds = img_ids
                ev.evaluate()
                ev.accumulate()
                ev.summarize()
            for k, v in zip(keys, ev.stats[:6]):
                metrics[f'{name}/{k}'] = float(v) * 100 if v >= 0 else -1.0
            if self.classwise:
                prec = ev.eval['precision']  # T, R, K, A, M
                for cat, cname in zip(cat_ids, classes):
                    idx = ev.params.catIds.index(cat) if cat in ev.params.catIds else None
                    p = prec[:, :, idx, 0, -1] if idx is not None else np.array([-1.0])
                    p = p[p > -1]
                    metrics[f'{name}/AP_{_key_name(cname)}'] = float(p.mean()) * 100 \
                        if p.size else -1.0
        return metrics
