"""Cityscapes-style semantic segmentation: city sub-folders and raw label ids mapped to
train ids.

Layout (the official archives ``leftImg8bit_trainvaltest.zip`` + ``gtFine_trainvaltest.zip``
unpacked into one folder)::

    data_root/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    data_root/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png

Sample ids are ``'<city>/<city>_<seq>_<frame>'``, so split files (``.txt`` one id per
line, or a json of :func:`~ssvision.datasets.save_seg_splits`) name images across
cities. Masks hold the raw label ids (0..33, -1 for license plates is stored as 0 in the
PNGs); ``label_map`` sends them to train ids, every other id becomes ``ignore_index``.
The default map is the official 19-class one (``CITYSCAPES_LABEL_MAP``); give your own
for another label set (e.g. a coarser one, or another dataset in the same layout).
The unlabeled part (``subset='unlabeled'``, e.g. ``train_extra`` images) needs no masks.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from ssvision.registry import DATASETS

from .voc_seg import VOCSegDataset

__all__ = ['CityscapesDataset', 'CITYSCAPES_CLASSES', 'CITYSCAPES_LABEL_MAP']

CITYSCAPES_CLASSES = (
    'road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light',
    'traffic sign', 'vegetation', 'terrain', 'sky', 'person', 'rider', 'car', 'truck', 'bus',
    'train', 'motorcycle', 'bicycle')
#: official label id -> train id (19 classes); unlisted ids (void, ground, parking, rail
#: track, guard rail, bridge, tunnel, polegroup, caravan, trailer, license plate) ignored
CITYSCAPES_LABEL_MAP = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11,
    25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}


@DATASETS.register_module()
class CityscapesDataset(VOCSegDataset):
    """Cityscapes layout over :class:`VOCSegDataset` (same results dict, subsets, checks).

    Args:
        data_root: folder holding ``leftImg8bit/`` and ``gtFine/``.
        split: ``'train'``, ``'val'``, ``'test'``, ``'train_extra'`` ... (sub-folder name).
        split_file: id list or json split (see :class:`VOCSegDataset`); without it, every
            image under ``leftImg8bit/<split>/`` is used, sorted by id.
        label_map: raw id -> train id. Defaults to :data:`CITYSCAPES_LABEL_MAP`.
        num_classes: number of train ids. Defaults to 19.
        classes: class names. Defaults to :data:`CITYSCAPES_CLASSES` when
            ``num_classes == 19``.
        ann_type: mask folder name (``'gtFine'`` or ``'gtCoarse'``).
        **kwargs: other :class:`VOCSegDataset` arguments (``subset``, ``pipeline``, ...).
    """

    IMG_SUFFIX = '_leftImg8bit.png'

    def __init__(self, data_root: str, split: str = 'train', split_file: str | None = None,
                 label_map: dict[int, int] | None = None, num_classes: int = 19,
                 classes: Sequence[str] | None = None, ann_type: str = 'gtFine',
                 **kwargs) -> None:
        if classes is None and num_classes == len(CITYSCAPES_CLASSES):
            classes = CITYSCAPES_CLASSES
        if label_map is None:
            label_map = CITYSCAPES_LABEL_MAP
        self.split = split
        super().__init__(data_root, split_file=split_file,
                         img_dir=os.path.join('leftImg8bit', split),
                         ann_dir=os.path.join(ann_type, split),
                         img_suffix=self.IMG_SUFFIX, ann_suffix=f'_{ann_type}_labelIds.png',
                         num_classes=num_classes, label_map=label_map, classes=classes,
                         **kwargs)

    def _load_ids(self, ids: Sequence[str] | None, split_file: str | None) -> list[str]:
        if ids is not None or split_file is not None:
            return super()._load_ids(ids, split_file)
        if not os.path.isdir(self.img_dir):
            raise FileNotFoundError(f'Cityscapes image folder not found: {self.img_dir}')
        names = []
        for city in sorted(os.listdir(self.img_dir)):
            folder = os.path.join(self.img_dir, city)
            if not os.path.isdir(folder):
                continue
            names += [f'{city}/{fn[:-len(self.IMG_SUFFIX)]}' for fn in sorted(os.listdir(folder))
                      if fn.endswith(self.IMG_SUFFIX)]
        if not names:
            raise FileNotFoundError(f'no *{self.IMG_SUFFIX} images under {self.img_dir}')
        return sorted(names)
