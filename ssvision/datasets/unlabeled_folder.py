"""Unlabeled images as users have them: one folder, any depth, no classes, masks or json.

One dataset per task, over one base (:class:`UnlabeledImages`) that finds, checks and
loads the files; each task's class fills in what its pipelines read from an unlabeled
sample (``docs/data_flow.md``):

==========================  ==================================================================
class                       results dict
==========================  ==================================================================
``UnlabeledImageFolder``    ``img`` (``color_type``), ``gt_label = -1``, ``true_label = -1``
``UnlabeledSegFolder``      ``img`` RGB; no ``gt_seg`` / ``true_seg``, so the mask-aware views
                            pad a label map of ignore (``PackSegInputs`` fills 255)
``UnlabeledDetFolder``      ``img`` RGB, ``ori_shape``; no boxes, so ``PackDetInputs`` packs
                            empty ``gt_instances`` and ``true_instances``
==========================  ==================================================================

plus ``sample_idx``, ``img_path`` and ``sample_seed`` (when given). The true label is
unknown (-1, all-ignore, no boxes), so pseudo-label accuracy is not computed for these
images: an unknown label never counts as a wrong pseudo-label.

Bad files (see :mod:`ssvision.datasets.image_files`): the build-time check (``check``)
skips every file whose header is unreadable, counts them in :attr:`UnlabeledImages.skipped`
and logs one warning naming the first few. A file that passes the check but fails to
decode when loaded is replaced by the next readable image of the folder (its
``sample_idx`` is the replacement's) and recorded in :attr:`UnlabeledImages.load_failures`,
shared with the main process; a warning names it at the 1st, 10th, 100th... failure.
Sizes and channel counts may differ from file to file: every image is decoded to
``color_type`` (gray, RGBA and 16-bit files included), and the pipelines' resize / crop
ops give batches one size.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from mmengine.logging import print_log

from ssvision.registry import DATASETS

from .base import PipelineDataset, build_pipeline, read_image
from .image_files import (
    IMG_EXTENSIONS,
    NAMED_FILES,
    UnreadableLog,
    check_images,
    describe_files,
    find_images,
)

__all__ = ['UnlabeledImages', 'UnlabeledImageFolder', 'UnlabeledSegFolder',
           'UnlabeledDetFolder']

#: images tried after a failed decode before loading gives up
MAX_REPLACEMENTS = 50


def _is_power_of_ten(n: int) -> bool:
    digits = str(n)
    return digits[0] == '1' and set(digits[1:]) <= {'0'}


class UnlabeledImages(PipelineDataset):
    """Every image file under ``root`` (any depth), sorted by path, without labels.

    Args:
        root: the folder.
        pipeline: transforms (config dicts or callables), results dict -> dict.
        extensions: accepted file extensions (case-insensitive), with the dot.
        check: build-time check of the files, ``'header'`` (default), ``'decode'`` or
            ``'none'`` (see :func:`~ssvision.datasets.image_files.check_images`).
        classes: class names, for ``metainfo``; by default those of the labeled dataset
            once :class:`~ssvision.datasets.SemiDataset` pairs the two.

    Attributes:
        paths (list[str]): readable image files; ``names`` the same relative to ``root``.
        skipped (list[tuple[str, str]]): ``(file, reason)`` dropped by the build-time check.
        load_failures (UnreadableLog): files that failed to decode when loaded.

    Raises:
        FileNotFoundError: ``root`` is not a folder.
        ValueError: ``root`` holds no image file, or none that is readable (the
            messages name the folder).
    """

    color_type = 'color'

    def __init__(self, root: str, pipeline: Sequence[dict | Callable] = (),
                 extensions: Sequence[str] = IMG_EXTENSIONS, check: str = 'header',
                 classes: Sequence[str] | None = None) -> None:
        from ssvision.utils.paths import find_data
        self.root = str(find_data(str(root)))
        self.pipeline = build_pipeline(pipeline)
        found = find_images(self.root, extensions)
        self.paths, self.skipped = check_images(found, check, self.color_type)
        if not self.paths:
            raise ValueError(f'{self.root}: none of its {len(found)} image files is readable: '
                             f'{describe_files(self.skipped)}')
        if self.skipped:
            print_log(f'{type(self).__name__}({self.root}): skipped {len(self.skipped)} of '
                      f'{len(found)} image files that cannot be read: '
                      f'{describe_files(self.skipped)}', logger='current',
                      level=logging.WARNING)
        self.names = [os.path.relpath(p, self.root).replace(os.sep, '/') for p in self.paths]
        self.classes = tuple(str(c) for c in classes or ())
        self.load_failures = UnreadableLog()
        self._failed: set[int] = set()  # this process's failed indices, not retried

    # ----------------------------------------------------------------- access
    @property
    def metainfo(self) -> dict:
        """``{'classes': tuple of names}`` (empty until known)."""
        return {'classes': self.classes}

    @property
    def num_classes(self) -> int | None:
        return len(self.classes) or None

    def __len__(self) -> int:
        return len(self.paths)

    def _record_failure(self, idx: int, error: OSError) -> None:
        self._failed.add(idx)
        position = self.load_failures.add(self.paths[idx])
        if _is_power_of_ten(position):  # 1st, 10th, 100th...: a few lines in all
            print_log(f'{type(self).__name__}({self.root}): {position} image file(s) failed to '
                      f'decode while loading, each replaced by the next readable image; '
                      f'first: {describe_files(self.load_failures.files())} '
                      f'(this one: {error})', logger='current', level=logging.WARNING)

    def load_image(self, idx: int) -> tuple[np.ndarray, int]:
        """Decode image ``idx``, or the next one that decodes.

        Returns:
            tuple: ``(img uint8 (H, W, C), index of the image returned)``.

        Raises:
            OSError: ``MAX_REPLACEMENTS + 1`` images in a row fail (the message names
                the folder and the first of them).
        """
        n = len(self.paths)
        tries = min(n, MAX_REPLACEMENTS + 1)
        for step in range(tries):
            j = (idx + step) % n
            if j in self._failed:
                continue
            try:
                return read_image(self.paths[j], self.color_type), j
            except OSError as e:
                self._record_failure(j, e)
        raise OSError(f'{self.root}: {tries} image files in a row from {self.paths[idx]} '
                      f'cannot be decoded (failed so far: '
                      f'{describe_files(self.load_failures.files(), NAMED_FILES)})')

    def prepare_results(self, idx: int, sample_seed: int | None = None) -> dict[str, Any]:
        """Results dict of image ``idx`` before the pipeline (see the module docstring)."""
        img, j = self.load_image(idx)
        results: dict[str, Any] = {'img': img, 'sample_idx': int(j),
                                   'img_path': self.paths[j]}
        if sample_seed is not None:
            results['sample_seed'] = int(sample_seed)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(root={self.root}, len={len(self)}, '
                f'skipped={len(self.skipped)})')


@DATASETS.register_module()
class UnlabeledImageFolder(UnlabeledImages):
    """Unlabeled classification images: every sample has ``gt_label = true_label = -1``.

    Args:
        root: the folder (any depth; sub-folder names are not classes).
        color_type: ``'color'`` (uint8 ``(H, W, 3)`` RGB) or ``'grayscale'``
            (``(H, W, 1)``); must match the labeled dataset's.
        **kwargs: :class:`UnlabeledImages` arguments.
    """

    def __init__(self, root: str, color_type: str = 'color', **kwargs) -> None:
        if color_type not in ('color', 'grayscale'):
            raise ValueError(f"color_type must be 'color' or 'grayscale', got {color_type!r}")
        self.color_type = color_type
        super().__init__(root, **kwargs)

    def prepare_results(self, idx: int, sample_seed: int | None = None) -> dict[str, Any]:
        results = super().prepare_results(idx, sample_seed)
        results['gt_label'] = -1
        results['true_label'] = -1  # unknown: no pseudo-label accuracy
        return results


@DATASETS.register_module()
class UnlabeledSegFolder(UnlabeledImages):
    """Unlabeled segmentation images (RGB), no mask files; see the module docstring."""


@DATASETS.register_module()
class UnlabeledDetFolder(UnlabeledImages):
    """Unlabeled detection images (RGB), no json; see the module docstring."""

    def prepare_results(self, idx: int, sample_seed: int | None = None) -> dict[str, Any]:
        results = super().prepare_results(idx, sample_seed)
        results['ori_shape'] = results['img'].shape[:2]
        return results
