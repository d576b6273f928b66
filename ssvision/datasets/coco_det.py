"""COCO-format detection data (pycocotools), and partial-label splits of it.

:class:`CocoDetDataset` reads one COCO json; images without annotations are allowed
(they are negatives when labeled, and the usual case for the unlabeled part). Category
ids map to contiguous labels ``0..K-1`` in the order of the json's ``categories``.

Results dict built by :meth:`CocoDetDataset.prepare_results`:

=================  ============================================================
key                value
=================  ============================================================
``img``            uint8 ``(H, W, 3)`` RGB
``gt_bboxes``      float32 ``(n, 4)`` ``x1, y1, x2, y2`` pixels (labeled)
``gt_labels``      int64 ``(n,)`` (labeled)
``true_bboxes``    / ``true_labels``: same, for an unlabeled image whose json has boxes
                   (health logging only, never training)
``img_id``         int, COCO image id
``sample_idx``     int, index in this dataset
``ori_shape``      ``(H, W)``
``img_path``       str
=================  ============================================================

Annotation hygiene (counted in :attr:`CocoDetDataset.skipped`, never silent):
``iscrowd=1`` boxes are not trained on (``crowd``); boxes are clipped to the image and
dropped when narrower or lower than one pixel afterwards (``degenerate``); a category id
missing from ``categories`` is an error naming the annotation.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from ssvision.registry import DATASETS

from .base import build_pipeline, parse_index, read_image

__all__ = ['CocoDetDataset', 'make_coco_split', 'write_coco_split']

DET_SUBSETS = ('labeled', 'unlabeled')


@DATASETS.register_module()
class CocoDetDataset(Dataset):
    """COCO detection dataset; images are read on access.

    Args:
        ann_file: COCO json.
        img_dir: folder the ``file_name`` of each image is relative to. Defaults to the
            json's folder + ``images``.
        subset: ``'labeled'`` (boxes are ``gt_*``), ``'unlabeled'`` (boxes, if any, become
            ``true_*``) or None (``gt_*``, for validation).
        img_ids: keep only these image ids (e.g. one part of a split), in this order.
        pipeline: transforms, results dict -> dict.
        filter_empty: drop images without any (non-crowd) box. Defaults to False.

    Attributes:
        img_ids (list[int]), classes (tuple[str]), cat_ids (list[int]),
        skipped (Counter): annotations not trained on, by reason.
    """

    def __init__(self, ann_file: str, img_dir: str | None = None, subset: str | None = None,
                 img_ids: Sequence[int] | None = None,
                 pipeline: Sequence[dict | Callable] = (), filter_empty: bool = False) -> None:
        from pycocotools.coco import COCO
        if subset is not None and subset not in DET_SUBSETS:
            raise ValueError(f'subset must be one of {DET_SUBSETS} or None, got {subset!r}')
        if not os.path.isfile(ann_file):
            raise FileNotFoundError(f'COCO annotation file not found: {ann_file}')
        self.ann_file = ann_file
        self.img_dir = img_dir if img_dir is not None else os.path.join(
            os.path.dirname(ann_file), 'images')
        self.subset = subset
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            self.coco = COCO(ann_file)
        cats = self.coco.dataset.get('categories', [])
        if not cats:
            raise ValueError(f'{ann_file}: no categories')
        self.cat_ids = [int(c['id']) for c in cats]
        self.classes = tuple(str(c['name']) for c in cats)
        self.cat2label = {c: i for i, c in enumerate(self.cat_ids)}
        ids = [int(i) for i in (img_ids if img_ids is not None else
                                [im['id'] for im in self.coco.dataset.get('images', [])])]
        missing = [i for i in ids if i not in self.coco.imgs]
        if missing:
            raise ValueError(f'{ann_file}: image ids not in the file: {missing[:10]}')
        self.skipped: Counter = Counter()
        self._boxes = {i: self._load_boxes(i) for i in ids}
        if filter_empty:
            ids = [i for i in ids if len(self._boxes[i][0])]
        self.img_ids = ids
        self.pipeline = build_pipeline(pipeline)

    # ----------------------------------------------------------------- boxes
    def _load_boxes(self, img_id: int) -> tuple[np.ndarray, np.ndarray]:
        info = self.coco.imgs[img_id]
        h, w = info.get('height'), info.get('width')
        boxes, labels = [], []
        for ann in self.coco.imgToAnns.get(img_id, []):
            if ann['category_id'] not in self.cat2label:
                raise ValueError(f'{self.ann_file}: annotation {ann.get("id")} has category '
                                 f'{ann["category_id"]} not in categories {self.cat_ids}')
            if ann.get('iscrowd', 0):
                self.skipped['crowd'] += 1
                continue
            x, y, bw, bh = (float(v) for v in ann['bbox'])
            x1, y1, x2, y2 = x, y, x + bw, y + bh
            if w is not None and h is not None:
                x1, x2 = min(max(x1, 0.0), w), min(max(x2, 0.0), w)
                y1, y2 = min(max(y1, 0.0), h), min(max(y2, 0.0), h)
            if x2 - x1 < 1 or y2 - y1 < 1:
                self.skipped['degenerate'] += 1
                continue
            boxes.append((x1, y1, x2, y2))
            labels.append(self.cat2label[ann['category_id']])
        return (np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(labels, np.int64))

    # ----------------------------------------------------------------- access
    @property
    def metainfo(self) -> dict:
        return {'classes': self.classes, 'cat_ids': list(self.cat_ids),
                'ann_file': self.ann_file}

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.img_ids)

    def get_img_path(self, idx: int) -> str:
        return os.path.join(self.img_dir, self.coco.imgs[self.img_ids[idx]]['file_name'])

    def prepare_results(self, idx: int, sample_seed: int | None = None) -> dict[str, Any]:
        img_id = self.img_ids[idx]
        path = self.get_img_path(idx)
        img = read_image(path, 'color')
        boxes, labels = self._boxes[img_id]
        info = self.coco.imgs[img_id]
        if (info.get('height'), info.get('width')) not in ((None, None), img.shape[:2]):
            raise ValueError(f'{path} is {img.shape[:2]} but {self.ann_file} says '
                             f'{(info.get("height"), info.get("width"))}')
        results: dict[str, Any] = {'img': img, 'img_id': int(img_id), 'sample_idx': int(idx),
                                   'img_path': path, 'ori_shape': img.shape[:2]}
        prefix = 'true' if self.subset == 'unlabeled' else 'gt'
        if self.subset != 'unlabeled' or len(boxes):
            results[f'{prefix}_bboxes'] = boxes.copy()
            results[f'{prefix}_labels'] = labels.copy()
        if sample_seed is not None:
            results['sample_seed'] = int(sample_seed)
        return results

    def __getitem__(self, idx: int | tuple[int, int]) -> Any:
        index, seed = parse_index(idx, len(self), type(self).__name__)
        return self.pipeline(self.prepare_results(index, seed))

    def __repr__(self) -> str:
        return (f'CocoDetDataset(ann_file={self.ann_file!r}, subset={self.subset!r}, '
                f'images={len(self)}, classes={len(self.classes)})')


def make_coco_split(coco: dict, percent: float, seed: int = 0) -> tuple[dict, dict]:
    """Partial-label split of a COCO dict: ``percent`` % of the images labeled.

    Images are permuted with ``np.random.default_rng(seed)``; the first
    ``max(1, round(percent / 100 * n))`` are labeled (smaller percentages are subsets of
    larger ones for one seed). Both outputs are COCO dicts with all categories; the
    labeled one keeps its images' annotations, the unlabeled one the rest of the images
    and their annotations (a loader with ``subset='unlabeled'`` uses them for health
    logging only; strip them with ``keep_unlabeled_annotations=False`` in
    :func:`write_coco_split`).
    """
    if not 0 < percent <= 100:
        raise ValueError(f'percent must be in (0, 100], got {percent}')
    images = sorted(coco['images'], key=lambda im: im['id'])
    n = len(images)
    if n == 0:
        raise ValueError('no images to split')
    k = max(1, int(round(percent / 100 * n)))
    order = np.random.default_rng(seed).permutation(n)
    chosen = {images[i]['id'] for i in order[:k]}
    parts = []
    for take in (True, False):
        ids = {im['id'] for im in images if (im['id'] in chosen) == take}
        part = {key: copy.deepcopy(value) for key, value in coco.items()
                if key not in ('images', 'annotations')}
        part['images'] = [im for im in images if im['id'] in ids]
        part['annotations'] = [a for a in coco.get('annotations', []) if a['image_id'] in ids]
        parts.append(part)
    return parts[0], parts[1]


def write_coco_split(ann_file: str, out_dir: str, percents: Sequence[float] = (1, 5, 10),
                     seeds: Sequence[int] = (1,),
                     keep_unlabeled_annotations: bool = True) -> list[str]:
    """Write ``<stem>.<seed>@<percent>.json`` and ``<stem>.<seed>@<percent>-unlabeled.json``
    for every percent and seed (the naming of the usual partial-COCO protocol).

    Returns:
        list[str]: written paths, labeled then unlabeled per (seed, percent).
    """
    with open(ann_file, encoding='utf-8') as f:
        coco = json.load(f)
    stem = os.path.splitext(os.path.basename(ann_file))[0]
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for seed in seeds:
        for percent in percents:
            lab, unl = make_coco_split(coco, percent, seed)
            if not keep_unlabeled_annotations:
                unl['annotations'] = []
            tag = f'{percent:g}'
            for part, suffix in ((lab, ''), (unl, '-unlabeled')):
                path = os.path.join(out_dir, f'{stem}.{seed}@{tag}{suffix}.json')
                with open(path, 'w', encoding='utf-8') as f:
                    json.dump(part, f, separators=(',', ':'))
                paths.append(path)
    return paths
