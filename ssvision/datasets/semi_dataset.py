"""A labeled and an unlabeled dataset served as one index space."""

from __future__ import annotations

from typing import Any, Union

from torch.utils.data import Dataset

from ssvision.registry import DATASETS

from .unlabeled_folder import UnlabeledImages

Index = Union[int, tuple]


class _EmptyPart(Dataset):
    """The missing part of a ``SemiDataset`` (the other part's metadata)."""

    def __init__(self, other, name: str) -> None:
        self.metainfo = dict(getattr(other, 'metainfo', {}) or {})
        self.num_classes = getattr(other, 'num_classes', None)
        self.name = name

    def __len__(self) -> int:
        return 0

    def __getitem__(self, idx):
        raise IndexError(f'this SemiDataset has no {self.name} samples')

    def __repr__(self) -> str:
        return f'<no {self.name} part>'


@DATASETS.register_module()
class SemiDataset(Dataset):
    """Concatenates a labeled and an unlabeled dataset.

    Indices ``[0, len(labeled))`` are labeled samples, ``[len(labeled), len(self))``
    unlabeled ones. :class:`~ssvision.datasets.SemiSampler` draws from both parts.
    An index may be ``(index, sample_seed)``; the seed is passed on unchanged.
    An unlabeled image folder (:class:`~ssvision.datasets.UnlabeledImages`) without
    class names of its own takes the labeled part's.

    ``labeled=None`` makes an unlabeled-only dataset (source-free adaptation, with
    ``SemiSampler(labeled_batch_size=0, ...)``): class names then come from the
    unlabeled part. ``unlabeled=None`` makes a labeled-only one (supervised training,
    ``unlabeled_ratio=0``).

    Args:
        labeled (dict | Dataset | None): the labeled dataset (config or object).
        unlabeled (dict | Dataset | None): the unlabeled dataset; its samples carry
            ``gt_label = -1``.

    Raises:
        ValueError: when the labeled part is empty, the two parts disagree on the
            class names, or they decode images to different ``color_type``.
    """

    def __init__(self, labeled: dict | Dataset | None,
                 unlabeled: dict | Dataset | None) -> None:
        if labeled is None and unlabeled is None:
            raise ValueError('SemiDataset needs a labeled or an unlabeled part')
        self.unlabeled = DATASETS.build(unlabeled) if isinstance(unlabeled, dict) else unlabeled
        if labeled is None:
            if len(self.unlabeled) == 0:
                raise ValueError('SemiDataset: no labeled part and the unlabeled dataset is '
                                 f'empty: {self.unlabeled!r}')
            self.labeled = _EmptyPart(self.unlabeled, 'labeled')
            return
        self.labeled = DATASETS.build(labeled) if isinstance(labeled, dict) else labeled
        if self.unlabeled is None:
            self.unlabeled = _EmptyPart(self.labeled, 'unlabeled')
        if len(self.labeled) == 0:
            raise ValueError(f'SemiDataset: the labeled dataset is empty: {self.labeled!r}')
        meta_l = getattr(self.labeled, 'metainfo', {}) or {}
        if isinstance(self.unlabeled, UnlabeledImages) and not self.unlabeled.classes:
            self.unlabeled.classes = tuple(meta_l.get('classes') or ())
        meta_u = getattr(self.unlabeled, 'metainfo', {}) or {}
        if meta_l.get('classes') and meta_u.get('classes') and \
                tuple(meta_l['classes']) != tuple(meta_u['classes']):
            raise ValueError(
                'SemiDataset: labeled and unlabeled datasets have different classes: '
                f'{meta_l["classes"]} vs {meta_u["classes"]}')
        # image folders decode every file to their color_type; array sources have none
        colors = (getattr(self.labeled, 'color_type', None),
                  getattr(self.unlabeled, 'color_type', None))
        if None not in colors and colors[0] != colors[1]:
            raise ValueError(f"SemiDataset: the labeled images are read as {colors[0]!r} but "
                             f"the unlabeled ones as {colors[1]!r}; set one color_type")

    @property
    def num_labeled(self) -> int:
        return len(self.labeled)

    @property
    def num_unlabeled(self) -> int:
        return len(self.unlabeled)

    @property
    def metainfo(self) -> dict:
        return dict(getattr(self.labeled, 'metainfo', {}) or {})

    @property
    def num_classes(self) -> int | None:
        return getattr(self.labeled, 'num_classes', None)

    def __len__(self) -> int:
        return self.num_labeled + self.num_unlabeled

    def __getitem__(self, idx: Index) -> Any:
        seed = None
        if isinstance(idx, (tuple, list)):
            idx, seed = int(idx[0]), int(idx[1])
        if idx < 0 or idx >= len(self):
            raise IndexError(f'SemiDataset index {idx} out of range [0, {len(self)})')
        if idx < self.num_labeled:
            part, local = self.labeled, idx
        else:
            part, local = self.unlabeled, idx - self.num_labeled
        return part[(local, seed)] if seed is not None else part[local]
