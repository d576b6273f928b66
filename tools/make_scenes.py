"""Write detection / segmentation scenes (real items on real photos) as VOC or COCO.

    python tools/make_scenes.py --format coco --items mnist5k --num 200 --out data/scenes

VOC: ``JPEGImages/``, ``SegmentationClass/``, ``SegmentationObject/`` (PNG) and
``ImageSets/Segmentation/all.txt``. COCO: ``images/`` and ``annotations.json`` (RLE
masks). Same arguments -> byte-identical files. Conventions: ssvision/datasets/scenes.py.
"""

from __future__ import annotations

import argparse
import os.path as osp
import sys

import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from ssvision.datasets.scenes import (  # noqa: E402
    ITEM_SOURCES,
    build_scene_items,
    long_tail_probs,
    write_coco_scenes,
    write_voc_scenes,
)


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--format', choices=('voc', 'coco'), required=True)
    parser.add_argument('--items', choices=sorted(ITEM_SOURCES), default='mnist5k')
    parser.add_argument('--num', type=int, required=True, help='number of scenes')
    parser.add_argument('--size', type=int, default=128, help='scene height = width')
    parser.add_argument('--num-items', type=int, nargs=2, default=(2, 5),
                        metavar=('LOW', 'HIGH'), help='items pasted per scene (inclusive)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--imbalance-ratio', type=float, default=None,
                        help='long-tailed classes: p_k ~ R ** (-k / (C - 1))')
    parser.add_argument('--out', required=True, help='output folder')
    args = parser.parse_args(argv)
    try:
        bank = build_scene_items(args.items)
    except (FileNotFoundError, ImportError, OSError) as err:
        raise SystemExit(f'{args.items}: {err}') from err
    kwargs = dict(imbalance_ratio=args.imbalance_ratio, size=args.size,
                  num_items=tuple(args.num_items))
    if args.format == 'voc':
        write_voc_scenes(args.out, args.num, args.seed, bank, **kwargs)
        where = osp.join(args.out, 'ImageSets', 'Segmentation', 'all.txt')
    else:
        where = write_coco_scenes(args.out, args.num, args.seed, bank, **kwargs)
    print(f'wrote {args.num} {args.format} scenes of {args.size}x{args.size} '
          f'({args.items}, seed {args.seed}) to {args.out}; index: {where}')
    if args.imbalance_ratio is not None:
        probs = long_tail_probs(bank.num_classes, args.imbalance_ratio)
        print('class probabilities:', np.round(probs, 4).tolist())
    return where


if __name__ == '__main__':
    main()
