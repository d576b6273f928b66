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

Annotation hygiene: every annotation is checked when the dataset is built, and what is
not trained on is counted by reason in :attr:`CocoDetDataset.skipped` and logged in one
line (a warning when anything but crowd boxes is dropped), with the first annotation id
of each reason:

=================  ============================================================
reason             annotation
=================  ============================================================
``crowd``          ``iscrowd=1`` (COCO's crowd regions are not trained on)
``malformed``      ``bbox`` missing, not four numbers, or not finite
``negative_size``  negative width or height
``degenerate``     narrower or lower than one pixel
``outside_image``  less than one pixel wide or high once clipped to the image
``unknown_image``  ``image_id`` not among the file's images
=================  ============================================================

Boxes reaching over the image border are clipped to it (counted in
:attr:`CocoDetDataset.clipped`). A category id missing from ``categories`` is an error
naming the annotation; a file that is not JSON is an error naming the file, line and
column.

Image files are checked when the dataset is built too (``check``): a missing file, a
file that does not decode, and a ``width`` / ``height`` that disagree with the file are
errors naming the file (and both sizes). The json's size is what boxes are clipped to
and what the evaluation scores against; a file of another size means the boxes were
drawn on another picture (e.g. the images were resized after annotation), which no
silent correction of ``width`` / ``height`` alone would make right.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import math
import os
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from mmengine.logging import print_log

from ssvision.registry import DATASETS

from .base import PipelineDataset, build_pipeline, read_image
from .image_files import (
    decode_files,
    describe_files,
    image_size,
    parallel_map,
    resolve_check,
)

__all__ = ['CocoDetDataset', 'load_json', 'make_coco_split', 'write_coco_split',
           'SKIP_REASONS']

DET_SUBSETS = ('labeled', 'unlabeled')
#: why an annotation is not trained on, in the order they are checked (module docstring)
SKIP_REASONS = ('crowd', 'malformed', 'negative_size', 'degenerate', 'outside_image',
                'unknown_image')
#: the smallest box side kept, in pixels
MIN_BOX_SIZE = 1.0


def load_json(path: str) -> Any:
    """Read a json file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not JSON (the message names the file, line and column)
            or not UTF-8 text.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'json file not found: {path}')
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f'{path}: not valid JSON: {e.msg} at line {e.lineno}, column '
                         f'{e.colno}') from e
    except UnicodeDecodeError as e:
        raise ValueError(f'{path}: not a UTF-8 text (JSON) file: {e}') from e


@DATASETS.register_module()
class CocoDetDataset(PipelineDataset):
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
        check: build-time check of the kept images, ``'decode'`` (every file decoded
            as it will be loaded, a few milliseconds a photo on several threads),
            ``'header'`` (each file's header: its size, EXIF orientation applied as
            OpenCV applies it) or ``'none'``. Defaults to ``'decode'`` (``'header'``
            for ``subset='unlabeled'``). Both find missing files and sizes that
            disagree with the json.

    Raises:
        FileNotFoundError: the json, or (at build) image files, are missing (named).
        OSError: an image file does not decode (named).
        ValueError: a bad json, or an image whose ``width`` / ``height`` disagree with
            its file (both sizes named).

    Attributes:
        img_ids (list[int]), classes (tuple[str]), cat_ids (list[int]),
        skipped (Counter): annotations not trained on, by reason (``SKIP_REASONS``),
        clipped (int): boxes clipped to their image.
    """

    def __init__(self, ann_file: str, img_dir: str | None = None, subset: str | None = None,
                 img_ids: Sequence[int] | None = None,
                 pipeline: Sequence[dict | Callable] = (), filter_empty: bool = False,
                 check: str | None = None) -> None:
        from pycocotools.coco import COCO
        if subset is not None and subset not in DET_SUBSETS:
            raise ValueError(f'subset must be one of {DET_SUBSETS} or None, got {subset!r}')
        from ssvision.utils.paths import find_data
        ann_file, img_dir = find_data(ann_file), find_data(img_dir)
        if not os.path.isfile(ann_file):
            raise FileNotFoundError(f'COCO annotation file not found: {ann_file}')
        self.ann_file = ann_file
        self.img_dir = img_dir if img_dir is not None else os.path.join(
            os.path.dirname(ann_file), 'images')
        self.subset = subset
        data = load_json(ann_file)
        if not isinstance(data, dict) or not isinstance(data.get('images', []), list) or \
                not isinstance(data.get('annotations', []), list):
            raise ValueError(f'{ann_file}: not a COCO file (a json object with lists '
                             "'images', 'annotations' and 'categories')")
        self.coco = COCO()
        self.coco.dataset = data
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            self.coco.createIndex()
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
        self.clipped = 0
        self._first_skipped: dict[str, Any] = {}
        self._boxes = {i: self._load_boxes(i) for i in ids}
        image_ids = set(self.coco.imgs)
        for ann in self.coco.dataset.get('annotations', []):
            if ann.get('image_id') not in image_ids:
                self._skip('unknown_image', ann)
        self._log_annotations(len(ids))
        if filter_empty:
            ids = [i for i in ids if len(self._boxes[i][0])]
        self.img_ids = ids
        self.pipeline = build_pipeline(pipeline)
        self.check = resolve_check(check, subset)
        self._check_files()

    # ----------------------------------------------------------------- files
    def _check_files(self) -> None:
        """The build-time check of the image files (see ``check``)."""
        if self.check == 'none' or not self.img_ids:
            return
        paths = [self.get_img_path(i) for i in range(len(self))]
        missing = [p for p in paths if not os.path.isfile(p)]
        if missing:
            raise FileNotFoundError(
                f'{self.ann_file}: {len(missing)} of {len(paths)} image files not found: '
                f'{describe_files(missing)}; file_name is relative to img_dir={self.img_dir} '
                '(set img_dir, or fix file_name in the json)')
        if self.check == 'decode':
            sizes = decode_files(paths, 'color')
        else:
            def header(path: str) -> tuple[int, int] | str:
                try:
                    return image_size(path)
                except OSError as e:
                    return str(e).replace(str(path), '<file>')
            sizes = parallel_map(header, paths)
        bad = [(p, r) for p, r in zip(paths, sizes) if isinstance(r, str)]
        if bad:
            raise OSError(f'{self.ann_file}: {len(bad)} image file(s) cannot be read: '
                          f'{describe_files(bad)}; replace or remove them (a file cut short '
                          'by a copy or download decodes only in part)')
        wrong = []
        for img_id, path, (h, w) in zip(self.img_ids, paths, sizes):
            info = self.coco.imgs[img_id]
            jh, jw = info.get('height'), info.get('width')
            if (jh, jw) != (None, None) and (jh, jw) != (h, w):
                wrong.append(f'{path} (image id {img_id}: json width x height {jw} x {jh}, '
                             f'file {w} x {h}{_turned_note(path, jh, jw, h, w)})')
        if wrong:
            raise ValueError(
                f'{self.ann_file}: width / height of {len(wrong)} of {len(paths)} images '
                f'disagree with their files: {describe_files(wrong)}. Boxes are clipped to '
                'and scored against the json size: fix width / height in the json, and if '
                'the images were resized or rotated after annotation, their boxes too.')

    # ----------------------------------------------------------------- boxes
    def _skip(self, reason: str, ann: dict) -> None:
        self.skipped[reason] += 1
        self._first_skipped.setdefault(reason, ann.get('id'))

    def _box(self, ann: dict, h: float | None, w: float | None) -> tuple | None:
        """``(x1, y1, x2, y2)`` of a non-crowd annotation, clipped; None when skipped."""
        try:
            x, y, bw, bh = (float(v) for v in ann.get('bbox'))
            reason = None if all(math.isfinite(v) for v in (x, y, bw, bh)) else 'malformed'
        except (TypeError, ValueError):  # missing, not 4 values, not numbers
            reason = 'malformed'
        if reason is None:
            if bw < 0 or bh < 0:
                reason = 'negative_size'
            elif bw < MIN_BOX_SIZE or bh < MIN_BOX_SIZE:
                reason = 'degenerate'
        if reason is not None:
            self._skip(reason, ann)
            return None
        box = (x, y, x + bw, y + bh)
        if w is None or h is None:
            return box
        clipped = (min(max(box[0], 0.0), w), min(max(box[1], 0.0), h),
                   min(max(box[2], 0.0), w), min(max(box[3], 0.0), h))
        if clipped[2] - clipped[0] < MIN_BOX_SIZE or clipped[3] - clipped[1] < MIN_BOX_SIZE:
            self._skip('outside_image', ann)
            return None
        self.clipped += clipped != box
        return clipped

    def _load_boxes(self, img_id: int) -> tuple[np.ndarray, np.ndarray]:
        info = self.coco.imgs[img_id]
        h, w = info.get('height'), info.get('width')
        boxes, labels = [], []
        for ann in self.coco.imgToAnns.get(img_id, []):
            if ann.get('category_id') not in self.cat2label:
                raise ValueError(f'{self.ann_file}: annotation {ann.get("id")} has category '
                                 f'{ann.get("category_id")} not in categories {self.cat_ids}')
            if ann.get('iscrowd', 0):
                self._skip('crowd', ann)
                continue
            box = self._box(ann, h, w)
            if box is not None:
                boxes.append(box)
                labels.append(self.cat2label[ann['category_id']])
        return (np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(labels, np.int64))

    def _log_annotations(self, num_images: int) -> None:
        """One line: boxes kept, and the annotations not trained on by reason."""
        kept = sum(len(b) for b, _ in self._boxes.values())
        line = (f'CocoDetDataset({self.ann_file}, subset={self.subset}): {kept} boxes on '
                f'{num_images} images')
        if self.skipped:
            reasons = ', '.join(f'{r} {self.skipped[r]} (first: annotation '
                                f'{self._first_skipped[r]})'
                                for r in SKIP_REASONS if self.skipped[r])
            line += f'; not trained on: {reasons}'
        if self.clipped:
            line += f'; {self.clipped} boxes clipped to their image'
        worry = any(self.skipped[r] for r in SKIP_REASONS if r != 'crowd')
        print_log(line, logger='current', level=logging.WARNING if worry else logging.INFO)

    def reorder_classes(self, classes: Sequence[str]) -> None:
        """Relabel every box so that label ``k`` means ``classes[k]``.

        For a json whose categories have the same names as the model's classes in
        another order (see :func:`ssvision.datasets.class_names.check_classes`): each
        box keeps its category, only the label numbers change, and ``cat_ids`` (which
        the evaluation uses to turn labels back into category ids) follow.

        Raises:
            ValueError: ``classes`` are not the same names as :attr:`classes`.
        """
        classes = tuple(str(c) for c in classes)
        if sorted(classes) != sorted(self.classes) or len(set(classes)) != len(classes):
            raise ValueError(f'{self.ann_file}: cannot map categories {self.classes} by name '
                             f'onto {classes}: the names differ or repeat')
        new_label = np.asarray([classes.index(c) for c in self.classes], dtype=np.int64)
        self.cat_ids = [self.cat_ids[self.classes.index(c)] for c in classes]
        self.cat2label = {c: i for i, c in enumerate(self.cat_ids)}
        self.classes = classes
        self._boxes = {i: (b, new_label[lab]) for i, (b, lab) in self._boxes.items()}

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

    def __repr__(self) -> str:
        return (f'CocoDetDataset(ann_file={self.ann_file!r}, subset={self.subset!r}, '
                f'images={len(self)}, classes={len(self.classes)})')


def _turned_note(path: str, jh, jw, h: int, w: int) -> str:
    """A hint when the json holds the file's stored size and EXIF turns the image."""
    if (jh, jw) == (w, h) and h != w:
        try:
            from PIL import Image
            with Image.open(path) as im:
                turned = im.getexif().get(0x0112, 1) in (5, 6, 7, 8)
            if turned:
                return (', turned by its EXIF orientation as it is read: the json has the '
                        'stored size')
        except Exception:  # noqa: BLE001  only a hint
            pass
    return ''


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
    coco = load_json(ann_file)
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
