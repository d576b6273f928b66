"""Base class of ssvision's classification datasets.

A dataset loads its whole *source* (an image array or a list of image files plus their
labels) once, at construction, then optionally keeps only the ids a split file lists
under one *subset* (``'labeled'``, ``'unlabeled'`` or ``'test'``, see
:mod:`ssvision.datasets.split`). ``__getitem__`` builds the results dict documented in
``docs/data_flow.md`` and runs the pipeline on it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, Union

import cv2
import numpy as np
from mmengine.dataset import Compose
from torch.utils.data import Dataset

from ssvision.registry import TRANSFORMS

from .split import load_split

#: Subsets a split file holds.
SUBSETS = ('labeled', 'unlabeled', 'test')

ImageSource = Union[np.ndarray, Sequence[str]]


def read_image(path: str, color_type: str = 'color') -> np.ndarray:
    """Decode an image file with OpenCV.

    Args:
        path: image file.
        color_type: ``'color'`` (3 channels, RGB order) or ``'grayscale'`` (1 channel).

    Returns:
        np.ndarray: uint8 ``(H, W, 3)`` (RGB) or ``(H, W, 1)``.

    Raises:
        OSError: the file is missing or OpenCV cannot decode it (the message names it).
    """
    if color_type not in ('color', 'grayscale'):
        raise ValueError(f"color_type must be 'color' or 'grayscale', got {color_type!r}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f'image file not found: {path}')
    flag = cv2.IMREAD_COLOR if color_type == 'color' else cv2.IMREAD_GRAYSCALE
    # imdecode on the raw bytes also copes with non-ASCII paths.
    buf = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(buf, flag) if buf.size else None
    if img is None:
        raise OSError(f'cannot decode image file (corrupt or unsupported format): {path}')
    if color_type == 'color':
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    else:
        img = img[:, :, None]
    return np.ascontiguousarray(img)


def parse_index(idx: int | tuple[int, int], length: int,
                name: str = 'dataset') -> tuple[int, int | None]:
    """Split a sampler index into ``(index, sample_seed)`` and check its range.

    ``idx`` is an int (negative counts from the end) or ``(index, sample_seed)`` as
    yielded by ``SemiSampler``.
    """
    sample_seed = None
    if isinstance(idx, (tuple, list)):
        idx, sample_seed = idx
    idx = int(idx)
    if idx < 0:
        idx += length
    if not 0 <= idx < length:
        raise IndexError(f'index {idx} out of range for {name} of length {length}')
    return idx, sample_seed


def build_pipeline(pipeline: Sequence[dict | Callable] | None) -> Compose:
    """Build a :class:`mmengine.dataset.Compose` from configs or callables.

    Dict entries are built with ssvision's ``TRANSFORMS`` (which falls back to
    mmengine's), so ssvision transforms are found even when no default scope is set.
    """
    transforms = []
    for t in pipeline or ():
        if isinstance(t, dict):
            t = TRANSFORMS.build(t)
        if not callable(t):
            raise TypeError(f'pipeline entries must be dicts or callables, got {type(t)}')
        transforms.append(t)
    return Compose(transforms)


class PipelineDataset(Dataset):
    """A dataset whose item is ``pipeline(prepare_results(index, sample_seed))``; the
    index may be ``(index, sample_seed)`` as ``SemiSampler`` yields it."""

    def __getitem__(self, idx: int | tuple[int, int]) -> Any:
        idx, sample_seed = parse_index(idx, len(self), type(self).__name__)
        return self.pipeline(self.prepare_results(idx, sample_seed))


class BaseClsDataset(PipelineDataset):
    """Classification dataset over an in-memory image array or a list of image files.

    Subclasses implement :meth:`load_source` (and may override :attr:`source`, the
    description used in error messages); they set their own attributes *before*
    calling ``super().__init__``, which loads the source.

    Without ``split_file`` every image of the source is kept; ``subset='unlabeled'``
    then hides all labels (``gt_label = -1``), other subsets keep them. With a split
    file only the ids listed under ``subset`` are kept, in the file's order.

    Args:
        split_file: json written by :func:`ssvision.datasets.split.save_split`.
        subset: ``'labeled'``, ``'unlabeled'``, ``'test'`` or None (every image).
            Required when ``split_file`` is given.
        pipeline: transforms (config dicts or callables), results dict -> dict.
        num_classes: expected number of classes; a label ``>= num_classes`` is a
            ``ValueError``. Defaults to the number of class names of the source.

    Attributes:
        num_classes (int): number of classes.
        labels (np.ndarray): int64 ``(len(self),)`` true labels of the kept samples.
        names (list): ids of the kept samples (ints or relative paths).
    """

    def __init__(self, split_file: str | None = None, subset: str | None = None,
                 pipeline: Sequence[dict | Callable] = (), num_classes: int | None = None) -> None:
        if subset is not None and subset not in SUBSETS:
            raise ValueError(f'subset must be one of {SUBSETS} or None, got {subset!r}')
        if split_file is not None and subset is None:
            raise ValueError(f'split_file {split_file} given without subset; '
                             f'pass subset= one of {SUBSETS}')
        self.split_file = split_file
        self.subset = subset
        self.pipeline = build_pipeline(pipeline)

        images, labels, names, classes = self.load_source()
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        names = list(names)
        n = len(images)
        if len(labels) != n or len(names) != n:
            raise ValueError(f'{self.source}: {n} images but {len(labels)} labels and '
                             f'{len(names)} names')
        if isinstance(images, np.ndarray):
            if images.dtype != np.uint8 or images.ndim != 4:
                raise ValueError(f'{self.source}: image array must be uint8 (N, H, W, C), got '
                                 f'{images.dtype} {images.shape}')
        else:
            images = [str(p) for p in images]
        self.classes = tuple(str(c) for c in classes)
        if num_classes is None:
            num_classes = len(self.classes) if self.classes else int(labels.max(initial=-1)) + 1
        self.num_classes = int(num_classes)
        self._check_labels(labels)

        self._images = images
        self._source_labels = labels
        self._source_names = names

        if split_file is None:
            keep = np.arange(n, dtype=np.int64)
        else:
            keep = self._select_from_split(split_file, subset, names)
        self._keep = keep
        self.labels = labels[keep]
        self.names = [names[i] for i in keep]

    # ------------------------------------------------------------------ source
    def load_source(self) -> tuple[ImageSource, np.ndarray, list, tuple]:
        """Load the whole source.

        Returns:
            tuple: ``(images, labels, names, classes)``: images a uint8 array
            ``(N, H, W, C)`` or a list of N file paths; labels int64 ``(N,)``; names a
            list of N unique ids (ints, or paths relative to the root); classes a
            tuple of class names.
        """
        raise NotImplementedError

    @property
    def source(self) -> str:
        """Description of the source (files or folder) used in error messages."""
        return type(self).__name__

    def _check_labels(self, labels: np.ndarray) -> None:
        if labels.size == 0:
            return
        bad = np.flatnonzero((labels < 0) | (labels >= self.num_classes))
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f'{self.source}: label {int(labels[i])} of sample {i} is outside '
                f'[0, num_classes={self.num_classes}) ({bad.size} such samples)')

    def _select_from_split(self, split_file: str, subset: str, names: list) -> np.ndarray:
        split = load_split(split_file)
        split_classes = split.get('num_classes')
        if split_classes is not None and int(split_classes) != self.num_classes:
            raise ValueError(f'split file {split_file} is for {split_classes} classes but '
                             f'{self.source} has num_classes={self.num_classes}')
        ids = split.get(subset, [])
        if len(ids) == 0 and subset in ('labeled', 'test'):
            raise ValueError(f"split file {split_file} has no '{subset}' ids: "
                             f'the {subset} subset would be empty')
        index = {name: i for i, name in enumerate(names)}
        keep = np.empty(len(ids), dtype=np.int64)
        for j, sid in enumerate(ids):
            i = index.get(sid)
            if i is None:
                raise ValueError(f"split file {split_file}: {subset} id {sid!r} is not in "
                                 f'the source {self.source}')
            keep[j] = i
        return keep

    def reorder_classes(self, classes: Sequence[str]) -> None:
        """Relabel every sample so that label ``k`` means ``classes[k]``.

        For data whose classes have the same names as the model's in another order
        (see :func:`ssvision.datasets.class_names.check_classes`): each sample keeps its
        class *name*, only the numbers change.

        Raises:
            ValueError: ``classes`` are not the same names as :attr:`classes`.
        """
        classes = tuple(str(c) for c in classes)
        if sorted(classes) != sorted(self.classes) or len(set(classes)) != len(classes) \
                or len(classes) != self.num_classes:
            raise ValueError(f'{self.source}: cannot map classes {self.classes} by name onto '
                             f'{classes}: the names differ')
        new_label = np.asarray([classes.index(c) for c in self.classes], dtype=np.int64)
        self._source_labels = new_label[self._source_labels]
        self.labels = new_label[self.labels]
        self.classes = classes

    # ----------------------------------------------------------------- access
    @property
    def metainfo(self) -> dict:
        """``{'classes': tuple of class names}``."""
        return {'classes': self.classes}

    def __len__(self) -> int:
        return len(self._keep)

    def get_label(self, idx: int) -> int:
        """True label of kept sample ``idx`` (also for the unlabeled subset)."""
        return int(self.labels[idx])

    def get_img_path(self, idx: int) -> str | None:
        """File of kept sample ``idx``, None for array sources."""
        if isinstance(self._images, np.ndarray):
            return None
        return self._images[self._keep[idx]]

    def load_image(self, idx: int) -> np.ndarray:
        """Image of kept sample ``idx``: uint8 ``(H, W, C)`` (a copy for array sources)."""
        src = int(self._keep[idx])
        if isinstance(self._images, np.ndarray):
            return self._images[src].copy()
        return read_image(self._images[src], getattr(self, 'color_type', 'color'))

    def prepare_results(self, idx: int, sample_seed: int | None = None) -> dict[str, Any]:
        """Results dict of kept sample ``idx`` before the pipeline (see data_flow.md)."""
        true_label = int(self.labels[idx])
        results: dict[str, Any] = {
            'img': self.load_image(idx),
            'gt_label': -1 if self.subset == 'unlabeled' else true_label,
            'true_label': true_label,
            'sample_idx': int(idx),
        }
        path = self.get_img_path(idx)
        if path is not None:
            results['img_path'] = path
        if sample_seed is not None:
            results['sample_seed'] = int(sample_seed)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(source={self.source}, subset={self.subset}, '
                f'len={len(self)}, num_classes={self.num_classes})')
