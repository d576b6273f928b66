"""Class names of a run's datasets, checked against each other and against the model's.

A label is a position in a list of class names. Two datasets whose lists differ (a
validation folder ``cats/`` where training had ``cat/``, a json whose categories come
in another order, a class missing from the test set) give labels that mean different
classes, and accuracy is then measured against the wrong classes without any error.
:func:`check_classes` compares every split of a run (the training data, validation,
test) with the *reference* list, the model's:

* the class names the model was trained with when they are known (a checkpoint
  written by training stores them under ``meta['dataset_meta']['classes']``);
* else the training data's (the first split given), which fix the model's outputs.

Same names in the same order pass. Same names in another order are mapped by name
where the dataset takes its names from its own files (class folders of
:class:`~ssvision.datasets.ImageFolder` and other classification sources, COCO
``categories``): every sample keeps its class name and gets the model's number for it
(``reorder_classes``), with one warning. Segmentation masks store class ids, and their
names come only from the config (``classes=``), so another order there is an error.
Any other difference (a name missing, an extra one, other names) is an error listing
both lists and what to change. Segmentation data without ``classes=`` (whose names are
only the indices ``'0'``, ``'1'``, ...) are compared by count only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from mmengine.logging import print_log

__all__ = ['dataset_classes', 'check_classes']


def _inner(dataset: Any) -> Any:
    """The dataset that holds the labels: the labeled part of a
    :class:`~ssvision.datasets.SemiDataset` (its unlabeled part when it has no labeled
    one), the dataset inside a wrapper (``RepeatDataset`` and the like)."""
    for _ in range(8):
        labeled = getattr(dataset, 'labeled', None)
        inside = getattr(dataset, 'dataset', None)
        if labeled is not None:
            empty = type(labeled).__name__ == '_EmptyPart'
            dataset = dataset.unlabeled if empty else labeled
        elif inside is not None and hasattr(inside, '__getitem__'):
            dataset = inside
        else:
            break
    return dataset


def dataset_classes(dataset: Any) -> tuple[str, ...] | None:
    """Class names of a dataset (its ``metainfo['classes']``, through wrappers), or None
    when it has none or only index names (segmentation data without ``classes=``)."""
    inner = _inner(dataset)
    if getattr(inner, 'has_class_names', True) is False:
        return None
    meta = getattr(inner, 'metainfo', None) or getattr(dataset, 'metainfo', None) or {}
    names = meta.get('classes') if isinstance(meta, Mapping) else None
    return tuple(str(c) for c in names) if names else None


def _describe(name: str, dataset: Any) -> str:
    inner = _inner(dataset)
    where = (getattr(inner, 'root', None) or getattr(inner, 'ann_file', None)
             or getattr(inner, 'data_root', None))
    return f'{name} ({type(inner).__name__}' + (f' {where})' if where else ')')


def _how_to_fix(dataset: Any) -> str:
    inner = _inner(dataset)
    if hasattr(inner, 'ann_file'):
        return ("give the json the same 'categories' names (ids and order may differ: "
                'categories are matched by name)')
    if hasattr(inner, 'extensions') and hasattr(inner, 'reorder_classes'):
        return ('rename, add or remove class folders so that both have the same folder '
                'names (folders are matched by name, whatever their order)')
    if hasattr(inner, 'ann_dir'):
        return ('give both datasets the same classes= in the same order, with masks that '
                'use the same class ids')
    return 'use data with the same class names'


def _difference(ref: Sequence[str], names: Sequence[str]) -> str:
    missing = [c for c in ref if c not in names]
    extra = [c for c in names if c not in ref]
    parts = []
    if missing:
        parts.append(f'missing {missing}')
    if extra:
        parts.append(f'extra {extra}')
    if not parts:
        parts.append('the same names in another order')
    return '; '.join(parts)


def check_classes(splits: Mapping[str, Any],
                  model_classes: Sequence[str] | None = None,
                  num_classes: int | None = None,
                  model_source: str = 'the checkpoint') -> list[str]:
    """Check (and where safe, map by name) the class names of a run's datasets.

    Call it where the model and the built datasets are both known, before the first
    batch is loaded (DataLoader workers copy the dataset when they start). A dataset it
    maps by name changes its labels and ``metainfo`` (COCO ``cat_ids`` included): refresh
    the ``dataset_meta`` of that split's evaluator and visualizer afterwards.

    Args:
        splits: split name (used in messages, e.g. ``'val_dataloader.dataset'``) ->
            dataset, the training data first; None values are skipped. A
            :class:`~ssvision.datasets.SemiDataset` is never relabeled (another order
            there is an error).
        model_classes: the class names the model was trained with (a checkpoint's
            ``meta['dataset_meta']['classes']``), None when unknown.
        num_classes: the number of classes the model predicts, None when unknown.
        model_source: where ``model_classes`` come from, for messages.

    Returns:
        list[str]: the names of the splits whose labels were mapped by name.

    Raises:
        ValueError: a split whose class names differ from the reference (both lists,
            the difference and the fix are named), or whose number of classes differs
            from ``num_classes``.
    """
    splits = {k: v for k, v in splits.items() if v is not None}
    if model_classes is not None:
        model_classes = tuple(str(c) for c in model_classes)
        if not model_classes or (num_classes is not None and
                                 len(model_classes) != num_classes):
            model_classes = None  # no names to compare (or not this model's)
    ref_name, ref = None, model_classes
    if ref is not None:
        ref_name = f'the model ({model_source})'
    remapped = []
    for name, dataset in splits.items():
        names = dataset_classes(dataset)
        count = len(names) if names else getattr(_inner(dataset), 'num_classes', None)
        if num_classes is not None and count is not None and count != num_classes:
            listed = f' {list(names)}' if names else ''
            raise ValueError(
                f'num_classes disagree: {_describe(name, dataset)} has {count} classes'
                f'{listed} but the model predicts {num_classes}; set the model\'s '
                'num_classes to the number of classes of the data')
        if names is None:
            continue
        if ref is None:
            ref_name, ref = _describe(name, dataset), names
            continue
        if names == ref:
            continue
        inner = _inner(dataset)
        # a SemiDataset is not relabeled: its unlabeled part shares the labeled one's names
        if not hasattr(dataset, 'labeled') and sorted(names) == sorted(ref) and \
                len(set(names)) == len(names) and hasattr(inner, 'reorder_classes'):
            inner.reorder_classes(ref)
            remapped.append(name)
            print_log(f'{_describe(name, dataset)} has the classes of {ref_name} in another '
                      f'order: {list(names)} vs {list(ref)}; its labels were mapped by name '
                      "to the model's order", logger='current', level=logging.WARNING)
            continue
        raise ValueError(
            f'class names disagree: {_describe(name, dataset)} has {list(names)} but '
            f'{ref_name} has {list(ref)} ({_difference(ref, names)}). Labels are '
            'positions in these lists, so scores would count the wrong classes: '
            f'{_how_to_fix(dataset)}.')
    return remapped
