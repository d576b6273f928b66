#!/usr/bin/env python
"""Partial-label COCO: write labeled / unlabeled COCO json files for seeded folds.

Example::

    python tools/make_coco_split.py data/coco/annotations/instances_train2017.json \
        --percents 1 5 10 --seeds 1 2 3 4 5 --out-dir data/coco/semi_anns

writes ``instances_train2017.<seed>@<percent>.json`` (labeled) and
``...@<percent>-unlabeled.json`` (the other images) for each seed and percent; a config
names them as the ``ann_file`` of the labeled and unlabeled ``CocoDetDataset``.
Unlabeled files keep their annotations for health logging (pseudo-box precision)
unless ``--strip-unlabeled``; the loader never trains on them either way.
"""

from __future__ import annotations

import argparse

from ssvision.datasets.coco_det import write_coco_split


def main(argv=None) -> list[str]:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('ann_file')
    p.add_argument('--percents', type=float, nargs='+', default=[1, 5, 10])
    p.add_argument('--seeds', type=int, nargs='+', default=[1])
    p.add_argument('--out-dir', required=True)
    p.add_argument('--strip-unlabeled', action='store_true',
                   help='write the unlabeled files without annotations')
    args = p.parse_args(argv)
    from ssvision.utils.progress import status
    with status(f'splitting {args.ann_file}'):
        paths = write_coco_split(args.ann_file, args.out_dir, args.percents, args.seeds,
                                 keep_unlabeled_annotations=not args.strip_unlabeled)
    for path in paths:
        print('wrote', path)
    return paths


if __name__ == '__main__':
    main()
