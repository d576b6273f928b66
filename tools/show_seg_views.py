"""Draw what a semi-supervised segmentation model sees in one training batch.

    python tools/show_seg_views.py CONFIG [--checkpoint CKPT] [--out views.png] [--num 4]
                                          [--device cpu] [--seed 0] [--cfg-options k=v ...]

One row per unlabeled image: weak view | teacher pseudo-label (unselected pixels greyed
out) | strong view after CutMix | mixed pseudo-label | student prediction | true mask
(see :mod:`ssvision.visualization.seg_views`). Without ``--checkpoint`` the model is
freshly initialised. The batch is the first one of the config's train dataloader
(built with seed ``--seed``); ``--cfg-options train_dataloader.num_workers=0
train_dataloader.persistent_workers=False`` avoids starting worker processes.
"""

from __future__ import annotations

import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import Config, DictAction  # noqa: E402


def parse_args(argv=None, seed_help: str = 'seed of the initial weights, the dataloader '
               'and the CutMix draw (default 0)') -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Draw views, pseudo-labels and predictions of one training batch')
    parser.add_argument('config', help='config file')
    parser.add_argument('--checkpoint', help='checkpoint to load (default: no weights)')
    parser.add_argument('--out', default='views.png', help='output PNG (default views.png)')
    parser.add_argument('--num', type=int, default=4,
                        help='unlabeled images (rows) drawn at most (default 4)')
    parser.add_argument('--device', default='cpu', help='device of the model (default cpu)')
    parser.add_argument('--seed', type=int, default=0, help=seed_help)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. train_dataloader.num_workers=0')
    return parser.parse_args(argv)


def load_model_and_batch(args: argparse.Namespace):
    """Config, model (checkpoint loaded, on ``args.device``), the first training batch
    and the class names, as every ``show_*_views`` tool needs them."""
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner, load_checkpoint, set_random_seed

    from ssvision.registry import MODELS

    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'ssvision'))
    set_random_seed(args.seed)  # initial weights (without --checkpoint) and augmentations

    model = MODELS.build(cfg.model)
    dataloader = Runner.build_dataloader(cfg.train_dataloader, seed=args.seed)
    if hasattr(model, 'bind_data'):
        # size per-sample selector state before loading, as the train loop does
        model.bind_data(dataloader.dataset)
    if args.checkpoint:
        load_checkpoint(model, args.checkpoint, map_location='cpu')
    model.to(args.device)
    batch = next(iter(dataloader))
    class_names = cfg.get('classes')
    if class_names is None:
        class_names = (getattr(dataloader.dataset, 'metainfo', None) or {}).get('classes')
    return cfg, model, batch, class_names


def main(argv=None) -> str:
    args = parse_args(argv)
    from ssvision.visualization.seg_views import render_seg_views

    _, model, batch, class_names = load_model_and_batch(args)
    out = render_seg_views(model, batch, args.out, max_images=args.num,
                           class_names=class_names, seed=args.seed)
    print(f'wrote {out}')
    return out


if __name__ == '__main__':
    main()
