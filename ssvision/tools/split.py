#!/usr/bin/env python
"""Write a labeled / unlabeled / test split json for a registered dataset.

Example::

    python tools/make_split.py --dataset MNIST5k --labels-per-class 4 --seed 0 \
        --out data/splits/mnist5k_40_seed0.json
    python tools/make_split.py --dataset FashionMNIST --dataset-arg train=True \
        --label-fraction 0.01 --imbalance-ratio 10 --seed 1 --out fm_lt.json
"""

from __future__ import annotations

import argparse
import ast

import numpy as np

# Import the loaders so they are registered even before ssvision.datasets exports them.
from ssvision.datasets import cifar, digits, image_folder, mnist  # noqa: F401
from ssvision.datasets.split import make_split, save_split
from ssvision.registry import DATASETS


def parse_value(text: str):
    """``'3'`` -> 3, ``'True'`` -> True, ``'(1, 2)'`` -> tuple; anything else stays a str."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--dataset', required=True, help='registered dataset type, e.g. MNIST5k')
    p.add_argument('--dataset-arg', action='append', default=[], metavar='KEY=VALUE',
                   help='constructor argument of the dataset (repeatable)')
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument('--labels-per-class', type=int, help='labeled samples per class')
    g.add_argument('--label-fraction', type=float, help='fraction of each class labeled')
    t = p.add_mutually_exclusive_group()
    t.add_argument('--test-per-class', type=int, default=0, help='test samples per class')
    t.add_argument('--test-fraction', type=float, help='fraction of each class for test')
    p.add_argument('--imbalance-ratio', type=float,
                   help='long-tailed unlabeled pool, most / least frequent class')
    p.add_argument('--seed', type=int, required=True)
    p.add_argument('--out', required=True, help='output json')
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    cfg = {'type': args.dataset}
    for item in args.dataset_arg:
        if '=' not in item:
            raise SystemExit(f'--dataset-arg must be KEY=VALUE, got {item!r}')
        key, value = item.split('=', 1)
        cfg[key.strip()] = parse_value(value.strip())
    for key in ('split_file', 'subset', 'pipeline'):
        if key in cfg:
            raise SystemExit(f'--dataset-arg {key}= makes no sense here: the split is built '
                             f'from the whole source')
    from ssvision.utils.progress import status
    with status(f'reading {args.dataset}'):
        dataset = DATASETS.build(cfg)
    split = make_split(dataset.labels, dataset.names,
                       num_labels_per_class=args.labels_per_class,
                       label_fraction=args.label_fraction,
                       num_test_per_class=args.test_per_class or 0,
                       test_fraction=args.test_fraction,
                       imbalance_ratio=args.imbalance_ratio,
                       num_classes=dataset.num_classes,
                       seed=args.seed)
    split['dataset'] = {k: v if isinstance(v, (int, float, str, bool, type(None))) else repr(v)
                        for k, v in cfg.items()}
    save_split(split, args.out)

    counts = split['counts']
    classes = list(dataset.metainfo['classes']) or [str(i) for i in range(dataset.num_classes)]
    width = max(5, max(len(c) for c in classes))
    print(f'{dataset!r}: {len(dataset)} samples, '
          f'{np.bincount(dataset.labels, minlength=dataset.num_classes).tolist()} per class')
    print(f'{"class":<{width}} {"labeled":>8} {"unlabeled":>10} {"test":>6}')
    for k, name in enumerate(classes):
        print(f'{name:<{width}} {counts["labeled"][k]:>8} {counts["unlabeled"][k]:>10} '
              f'{counts["test"][k]:>6}')
    print(f'{"total":<{width}} {sum(counts["labeled"]):>8} {sum(counts["unlabeled"]):>10} '
          f'{sum(counts["test"]):>6}')
    print(f'wrote {args.out}')
    return split


if __name__ == '__main__':
    main()
