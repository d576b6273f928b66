"""Image-folder classification data: ``root/<class>/**/<image>``."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ssvision.registry import DATASETS

from .base import BaseClsDataset
from .image_files import (
    IMG_EXTENSIONS,
    check_images,
    describe_files,
    find_images,
    resolve_check,
)

__all__ = ['ImageFolder', 'IMG_EXTENSIONS']


@DATASETS.register_module()
class ImageFolder(BaseClsDataset):
    """One sub-folder of ``root`` per class; images are decoded on access.

    Classes are the sub-folder names, sorted; each class folder is searched
    recursively for files whose extension (case-insensitive) is in ``extensions``.
    Names (the split ids) are the file paths relative to ``root`` with ``/``
    separators, e.g. ``'cat/001.png'``. Every image is decoded to ``color_type``
    whatever its own channels (gray, RGBA, 16-bit); sizes may differ (a pipeline's
    resize gives batches one size).

    Labels are known, so an unreadable file is an error naming it, found when the
    dataset is built: by default every kept file is decoded once (``check='decode'``,
    a few milliseconds a photo on several threads), so a file cut short after its
    header stops the build instead of a run at its first use. ``check='header'`` (Pillow
    reads every header, about 40 microseconds a file: for labeled sets of many
    thousands of photos) and ``'none'`` trade that for speed; the ``'unlabeled'``
    subset of a split is header-checked by default.

    Class names are the folder names: datasets of one run (labeled, validation, test)
    must have the same ones, which
    :func:`~ssvision.datasets.class_names.check_classes` checks, mapping the labels by
    name (:meth:`reorder_classes`) when only the order differs from the model's.

    Args:
        root: the folder.
        extensions: accepted file extensions, with the dot.
        color_type: ``'color'`` (uint8 ``(H, W, 3)`` RGB) or ``'grayscale'``
            (``(H, W, 1)``).
        check: build-time check of the kept files: ``'decode'``, ``'header'`` or
            ``'none'``. Defaults to ``'decode'`` (``'header'`` for ``subset='unlabeled'``).
        **kwargs: :class:`BaseClsDataset` arguments.

    Raises:
        FileNotFoundError: no such folder.
        ValueError: no class sub-folder, or a class folder without images (named).
        OSError: a file that cannot be read (named).
    """

    def __init__(self, root: str, extensions: Sequence[str] = IMG_EXTENSIONS,
                 color_type: str = 'color', check: str | None = None, **kwargs) -> None:
        if color_type not in ('color', 'grayscale'):
            raise ValueError(f"color_type must be 'color' or 'grayscale', got {color_type!r}")
        from ssvision.utils.paths import find_data
        self.root = str(find_data(str(root)))
        self.extensions = tuple(e.lower() for e in extensions)
        self.color_type = color_type
        super().__init__(**kwargs)
        self.check = resolve_check(check, self.subset)
        paths = [self.get_img_path(i) for i in range(len(self))]
        _, bad = check_images(paths, self.check, self.color_type)
        if bad:
            raise OSError(f'{self.root}: {len(bad)} image file(s) cannot be read: '
                          f'{describe_files(bad)}; replace or remove them (a file cut short '
                          'by a copy or download decodes only in part)')

    @property
    def source(self) -> str:
        return self.root

    def load_source(self):
        if not os.path.isdir(self.root):
            raise FileNotFoundError(f'image folder not found: {self.root}')
        classes = sorted(e.name for e in os.scandir(self.root) if e.is_dir())
        if not classes:
            raise ValueError(f'{self.root} has no class sub-folders')
        paths, labels, names = [], [], []
        empty = []
        for label, cls in enumerate(classes):
            try:
                found = find_images(os.path.join(self.root, cls), self.extensions)
            except ValueError:
                empty.append(os.path.join(self.root, cls))
                continue
            paths += found
            labels += [label] * len(found)
        if empty:
            raise ValueError(f'{self.root}: no image files with extensions {self.extensions} '
                             f'in class folder(s) {describe_files(empty)}')
        names = [os.path.relpath(p, self.root).replace(os.sep, '/') for p in paths]
        return paths, np.asarray(labels, dtype=np.int64), names, tuple(classes)
