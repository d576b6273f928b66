"""CIFAR-10 / CIFAR-100 from the python pickle batches (``cifar-*-python.tar.gz``).

Nothing here downloads: unpack the archive yourself and pass its folder as ``root``.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from typing import Any

import numpy as np

from ssvision.registry import DATASETS

from .base import BaseClsDataset


def _get(d: dict, key: str, path: str) -> Any:
    """``d[key]`` for pickles written with str or bytes keys (python 2 batches)."""
    if key in d:
        return d[key]
    if key.encode() in d:
        return d[key.encode()]
    raise ValueError(f'{path}: CIFAR batch has no {key!r} entry (keys: {list(d)[:8]})')


def _load_pickle(path: str) -> dict:
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f'CIFAR batch file not found: {path}; unpack the python version of the data '
            f'set there (nothing is downloaded)')
    with open(path, 'rb') as f:
        try:
            d = pickle.load(f, encoding='bytes')
        except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
            raise ValueError(f'{path}: not a CIFAR pickle batch: {e}') from e
    if not isinstance(d, dict):
        raise ValueError(f'{path}: not a CIFAR pickle batch (got {type(d).__name__})')
    return d


def _decode(names: Sequence) -> tuple[str, ...]:
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)


class _CIFARBase(BaseClsDataset):
    """Shared reader: batches of ``data`` (N, 3072) uint8 rows (R, G, B planes of 32x32)."""

    folder_name = ''
    train_files: tuple[str, ...] = ()
    test_files: tuple[str, ...] = ()
    meta_file = ''
    names_key = ''

    def __init__(self, root: str, train: bool = True, label_key: str = 'labels',
                 **kwargs) -> None:
        root = str(root)
        nested = os.path.join(root, self.folder_name)
        if not os.path.isfile(os.path.join(root, self.meta_file)) and os.path.isdir(nested):
            root = nested
        self.root = root
        self.train = train
        self.label_key = label_key
        super().__init__(**kwargs)

    @property
    def batch_files(self) -> list[str]:
        files = self.train_files if self.train else self.test_files
        return [os.path.join(self.root, f) for f in files]

    @property
    def source(self) -> str:
        return f'{self.root} ({"train" if self.train else "test"})'

    def _class_names(self) -> tuple[str, ...]:
        path = os.path.join(self.root, self.meta_file)
        meta = _load_pickle(path)
        return _decode(_get(meta, self.names_key, path))

    def load_source(self):
        images, labels = [], []
        for path in self.batch_files:
            batch = _load_pickle(path)
            data = np.asarray(_get(batch, 'data', path), dtype=np.uint8)
            lab = np.asarray(_get(batch, self.label_key, path), dtype=np.int64).reshape(-1)
            if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(lab):
                raise ValueError(f'{path}: expected data (N, 3072) and N labels, got data '
                                 f'{data.shape} and {len(lab)} labels')
            images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            labels.append(lab)
        images = np.ascontiguousarray(np.concatenate(images))
        labels = np.concatenate(labels)
        return images, labels, list(range(len(labels))), self._class_names()


@DATASETS.register_module()
class CIFAR10(_CIFARBase):
    """CIFAR-10, python version: ``data_batch_1..5``, ``test_batch``, ``batches.meta``.

    Images ``(N, 32, 32, 3)`` uint8 RGB (50,000 train / 10,000 test), names the int
    positions in the concatenated batches.

    Args:
        root: folder holding the batch files (or its parent holding
            ``cifar-10-batches-py``).
        train: the five data batches, else ``test_batch``.
        **kwargs: :class:`BaseClsDataset` arguments.
    """

    folder_name = 'cifar-10-batches-py'
    train_files = tuple(f'data_batch_{i}' for i in range(1, 6))
    test_files = ('test_batch',)
    meta_file = 'batches.meta'
    names_key = 'label_names'

    def __init__(self, root: str, train: bool = True, **kwargs) -> None:
        super().__init__(root, train=train, label_key='labels', **kwargs)


@DATASETS.register_module()
class CIFAR100(_CIFARBase):
    """CIFAR-100, python version: ``train``, ``test``, ``meta``.

    Args:
        root: folder holding the files (or its parent holding ``cifar-100-python``).
        train: ``train``, else ``test``.
        label_key: ``'fine_labels'`` (100 classes) or ``'coarse_labels'`` (20).
        **kwargs: :class:`BaseClsDataset` arguments.
    """

    folder_name = 'cifar-100-python'
    train_files = ('train',)
    test_files = ('test',)
    meta_file = 'meta'

    def __init__(self, root: str, train: bool = True, label_key: str = 'fine_labels',
                 **kwargs) -> None:
        if label_key not in ('fine_labels', 'coarse_labels'):
            raise ValueError(f"label_key must be 'fine_labels' or 'coarse_labels', "
                             f'got {label_key!r}')
        self.names_key = label_key[:-1] + '_names'  # fine_label_names / coarse_label_names
        super().__init__(root, train=train, label_key=label_key, **kwargs)
