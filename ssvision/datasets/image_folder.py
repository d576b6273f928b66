"""Image-folder classification data: ``root/<class>/**/<image>``."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ssvision.registry import DATASETS

from .base import BaseClsDataset

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.pgm', '.tif', '.tiff', '.webp')


@DATASETS.register_module()
class ImageFolder(BaseClsDataset):
    """One sub-folder of ``root`` per class; images are decoded on access.

    Classes are the sub-folder names, sorted; each class folder is searched
    recursively for files whose extension (case-insensitive) is in ``extensions``.
    Names (the split ids) are the file paths relative to ``root`` with ``/``
    separators, e.g. ``'cat/001.png'``.

    Args:
        root: the folder.
        extensions: accepted file extensions, with the dot.
        color_type: ``'color'`` (uint8 ``(H, W, 3)`` RGB) or ``'grayscale'``
            (``(H, W, 1)``).
        **kwargs: :class:`BaseClsDataset` arguments.
    """

    def __init__(self, root: str, extensions: Sequence[str] = IMG_EXTENSIONS,
                 color_type: str = 'color', **kwargs) -> None:
        if color_type not in ('color', 'grayscale'):
            raise ValueError(f"color_type must be 'color' or 'grayscale', got {color_type!r}")
        self.root = str(root)
        self.extensions = tuple(e.lower() for e in extensions)
        self.color_type = color_type
        super().__init__(**kwargs)

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
        for label, cls in enumerate(classes):
            cls_dir = os.path.join(self.root, cls)
            for dirpath, dirnames, filenames in os.walk(cls_dir, followlinks=True):
                dirnames.sort()
                for fn in sorted(filenames):
                    if os.path.splitext(fn)[1].lower() not in self.extensions:
                        continue
                    path = os.path.join(dirpath, fn)
                    paths.append(path)
                    labels.append(label)
                    names.append(os.path.relpath(path, self.root).replace(os.sep, '/'))
        if not paths:
            raise ValueError(f'{self.root}: no image files with extensions {self.extensions}')
        return paths, np.asarray(labels, dtype=np.int64), names, tuple(classes)
