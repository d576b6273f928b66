#!/usr/bin/env python
"""Write labeled / unlabeled splits of a segmentation dataset's images (json).

Examples::

    # Cityscapes, 1/16 and 1/8 labeled, three folds
    python tools/make_seg_split.py --dataset CityscapesDataset --data-root data/cityscapes \
        --fractions 1/16 1/8 --seeds 0 1 2 --out-dir data/cityscapes/splits
    # VOC layout, 92 labeled images
    python tools/make_seg_split.py --data-root data/VOC2012 \
        --split-file ImageSets/Segmentation/train.txt --num-labeled 92 --out-dir splits

Each file ``split_<n>-<d>_seed<s>.json`` (or ``split_<count>_seed<s>.json``) holds the
``labeled`` and ``unlabeled`` id lists; a config names it as the ``split_file`` of both
parts with ``subset='labeled'`` / ``'unlabeled'``. For one seed, smaller labeled sets
are subsets of larger ones.
"""

from __future__ import annotations

import argparse
import os
from fractions import Fraction

from ssvision.datasets import make_seg_split, save_seg_splits, save_split
from ssvision.registry import DATASETS


def main(argv=None) -> list[str]:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--dataset', default='VOCSegDataset',
                   help='registered dataset type (VOCSegDataset, CityscapesDataset, ...)')
    p.add_argument('--data-root', required=True)
    p.add_argument('--split', help='CityscapesDataset: image sub-folder (default train)')
    p.add_argument('--split-file', help='id list to split (default: every image)')
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument('--fractions', nargs='+', help='labeled fractions, e.g. 1/16 0.125')
    group.add_argument('--num-labeled', type=int, nargs='+', help='labeled counts')
    p.add_argument('--seeds', type=int, nargs='+', default=[0])
    p.add_argument('--out-dir', required=True)
    args = p.parse_args(argv)
    kwargs = dict(type=args.dataset, data_root=args.data_root, split_file=args.split_file)
    if args.split:
        kwargs['split'] = args.split
    from mmengine.registry import init_default_scope
    init_default_scope('ssvision')
    from ssvision.utils.progress import status
    with status(f'reading {kwargs.get("type")}'):
        ids = DATASETS.build(kwargs).names
    written = []
    for seed in args.seeds:
        if args.fractions:
            fractions = [float(Fraction(f)) for f in args.fractions]
            written += sorted(save_seg_splits(ids, args.out_dir, fractions, seed).values())
        else:
            for n in args.num_labeled:
                path = os.path.join(args.out_dir, f'split_{n}_seed{seed}.json')
                save_split(make_seg_split(ids, num_labeled=n, seed=seed), path)
                written.append(path)
    for path in written:
        print(f'wrote {path} ({len(ids)} images)')
    return written


if __name__ == '__main__':
    main()
