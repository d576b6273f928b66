"""Labeled / unlabeled / test splits of a classification source, stored as json.

A split lists sample *ids* (the ``names`` of a dataset: ints for array sources,
paths relative to the root for image folders), so it is independent of the order in
which a loader enumerates the source. File layout::

    {"num_classes": 10, "seed": 0,
     "rule": {"num_labels_per_class": 4, "label_fraction": null, ...},
     "labeled": [ids...], "unlabeled": [ids...], "test": [ids...],
     "counts": {"labeled": [per class], "unlabeled": [per class], "test": [per class]}}
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

SPLIT_KEYS = ('labeled', 'unlabeled', 'test')


def _per_class_count(count: int, number: int | None, fraction: float | None,
                     minimum: int) -> int:
    if number is not None:
        return int(number)
    if fraction is not None:
        return max(minimum, int(round(fraction * count)))
    return 0


def _plain_id(x: Any) -> int | str:
    if isinstance(x, (np.integer, int)) and not isinstance(x, bool):
        return int(x)
    return str(x)


def make_split(labels: Sequence[int] | np.ndarray,
               names: Sequence[int | str] | None = None,
               *,
               num_labels_per_class: int | None = None,
               label_fraction: float | None = None,
               num_test_per_class: int = 0,
               test_fraction: float | None = None,
               imbalance_ratio: float | None = None,
               num_classes: int | None = None,
               seed: int = 0) -> dict[str, Any]:
    """Draw a seeded labeled / test / unlabeled split, class by class.

    For each class ``k`` (in label order) its samples are permuted with one
    ``np.random.default_rng(seed)``; the first ``n_lab`` go to *labeled*, the next
    ``n_test`` to *test*, the rest is the class's *unlabeled* pool. The three lists are
    disjoint and every id is in at most one.

    * ``n_lab`` is ``num_labels_per_class``, or ``max(1, round(label_fraction * n_k))``
      with ``n_k`` the class's sample count (exactly one of the two is given).
    * ``n_test`` is ``num_test_per_class`` (default 0), or
      ``round(test_fraction * n_k)``.
    * Long-tailed unlabeled pool (``imbalance_ratio = r >= 1``): with ``C`` classes and
      ``a_k`` the unlabeled samples class ``k`` has left, ``n_max = min_k a_k`` (so every
      class can be served) and class ``k`` keeps the first
      ``round(n_max * r ** (-k / (C - 1)))`` of its pool (``n_max`` when ``C == 1``):
      class 0 is the most frequent, class ``C - 1`` the rarest with ``n_max / r``.
      The dropped samples are in no list. Python's ``round`` (half to even) is used.

    Args:
        labels: int ``(N,)`` true label of each sample.
        names: ``N`` unique ids (default ``range(N)``).
        num_labels_per_class: labeled samples per class.
        label_fraction: fraction of each class to label, in ``(0, 1]``.
        num_test_per_class: test samples per class.
        test_fraction: fraction of each class for test, in ``[0, 1)``.
        imbalance_ratio: ratio of the most to the least frequent class in the
            unlabeled pool; None keeps all.
        num_classes: number of classes (default ``max(labels) + 1``); every class
            needs at least one labeled sample.
        seed: seed of the numpy Generator.

    Returns:
        dict: the split (see the module docstring); ids are ints or strings.

    Raises:
        ValueError: bad arguments, or a class has fewer samples than asked for.
    """
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if names is None:
        names = list(range(len(labels)))
    names = [_plain_id(x) for x in names]
    if len(names) != len(labels):
        raise ValueError(f'{len(labels)} labels but {len(names)} names')
    if len(set(names)) != len(names):
        raise ValueError('names (sample ids) must be unique')
    if (num_labels_per_class is None) == (label_fraction is None):
        raise ValueError('give exactly one of num_labels_per_class and label_fraction')
    if num_labels_per_class is not None and num_labels_per_class < 1:
        raise ValueError(f'num_labels_per_class must be >= 1, got {num_labels_per_class}')
    if label_fraction is not None and not 0 < label_fraction <= 1:
        raise ValueError(f'label_fraction must be in (0, 1], got {label_fraction}')
    if test_fraction is not None:
        if num_test_per_class:
            raise ValueError('give at most one of num_test_per_class and test_fraction')
        if not 0 <= test_fraction < 1:
            raise ValueError(f'test_fraction must be in [0, 1), got {test_fraction}')
    if num_test_per_class < 0:
        raise ValueError(f'num_test_per_class must be >= 0, got {num_test_per_class}')
    if imbalance_ratio is not None and imbalance_ratio < 1:
        raise ValueError(f'imbalance_ratio must be >= 1, got {imbalance_ratio}')
    if labels.size and labels.min() < 0:
        raise ValueError(f'labels must be >= 0, got {labels.min()}')
    if num_classes is None:
        num_classes = int(labels.max(initial=-1)) + 1
    if labels.size and labels.max() >= num_classes:
        raise ValueError(f'label {labels.max()} >= num_classes={num_classes}')
    if num_classes < 1:
        raise ValueError('no samples / classes to split')

    rng = np.random.default_rng(seed)
    per_class: dict[str, list[np.ndarray]] = {k: [] for k in SPLIT_KEYS}
    for k in range(num_classes):
        idx = np.flatnonzero(labels == k)
        n_k = len(idx)
        n_lab = _per_class_count(n_k, num_labels_per_class, label_fraction, 1)
        n_test = _per_class_count(n_k, num_test_per_class if test_fraction is None else None,
                                  test_fraction, 0)
        if n_lab + n_test > n_k:
            raise ValueError(f'class {k} has {n_k} samples, fewer than the {n_lab} labeled '
                             f'+ {n_test} test asked for')
        perm = idx[rng.permutation(n_k)]
        per_class['labeled'].append(perm[:n_lab])
        per_class['test'].append(perm[n_lab:n_lab + n_test])
        per_class['unlabeled'].append(perm[n_lab + n_test:])

    if imbalance_ratio is not None:
        pools = per_class['unlabeled']
        n_max = min(len(p) for p in pools)
        for k in range(num_classes):
            keep = long_tail_count(n_max, imbalance_ratio, k, num_classes)
            pools[k] = pools[k][:keep]

    split: dict[str, Any] = {
        'num_classes': int(num_classes),
        'seed': int(seed),
        'rule': {
            'num_labels_per_class': num_labels_per_class,
            'label_fraction': label_fraction,
            'num_test_per_class': num_test_per_class,
            'test_fraction': test_fraction,
            'imbalance_ratio': imbalance_ratio,
        },
    }
    for key in SPLIT_KEYS:
        chosen = np.sort(np.concatenate(per_class[key])) if per_class[key] else []
        split[key] = [names[i] for i in chosen]
    split['counts'] = {key: [int(len(p)) for p in per_class[key]] for key in SPLIT_KEYS}
    return split


def long_tail_count(n_max: int, imbalance_ratio: float, k: int, num_classes: int) -> int:
    """Unlabeled samples class ``k`` keeps: ``round(n_max * r ** (-k / (C - 1)))``."""
    if num_classes == 1:
        return int(n_max)
    return int(round(n_max * imbalance_ratio ** (-k / (num_classes - 1))))


def save_split(split: dict[str, Any], path: str) -> None:
    """Write a split as json (one top-level key per line, id lists on one line)."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    lines = [f'  {json.dumps(k)}: {json.dumps(v)}' for k, v in split.items()]
    with open(path, 'w', encoding='utf-8') as f:
        f.write('{\n' + ',\n'.join(lines) + '\n}\n')


def load_split(path: str) -> dict[str, Any]:
    """Read and check a split json.

    A relative ``data/...`` path is looked up in ``$SSVISION_DATA`` first (see
    :func:`ssvision.utils.paths.find_data`), then relative to the current folder.

    Returns:
        dict: the split, with missing subsets set to ``[]``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a split (bad json, an id list missing or not a list, an id
            twice, or an id in two subsets); the message names the file.
    """
    from ssvision.utils.paths import DATA_ENV, find_data
    path = find_data(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f'split file not found: {path} (relative to {os.getcwd()}; ${DATA_ENV} may name '
            'the data folder; `ssvision prepare` writes the built-in splits)')
    try:
        with open(path, encoding='utf-8') as f:
            split = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f'split file {path} is not valid json: {e}') from e
    if not isinstance(split, dict) or not any(k in split for k in SPLIT_KEYS):
        raise ValueError(f'split file {path} has none of the keys {SPLIT_KEYS}')
    seen: dict[Any, str] = {}
    for key in SPLIT_KEYS:
        ids = split.setdefault(key, [])
        if not isinstance(ids, list):
            raise ValueError(f'split file {path}: {key!r} must be a list of ids')
        for sid in ids:
            if sid in seen:
                where = 'twice' if seen[sid] == key else f'in {seen[sid]!r} and {key!r}'
                raise ValueError(f'split file {path}: id {sid!r} is listed {where}')
            seen[sid] = key
    return split
