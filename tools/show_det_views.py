"""Draw what a semi-supervised detector sees in one training batch.

    python tools/show_det_views.py CONFIG [--checkpoint CKPT] [--out views.png] [--num 4]
                                          [--device cpu] [--seed 0] [--cfg-options k=v ...]

One row per unlabeled image: weak view with the teacher's detections (kept pseudo-boxes
in colour, dropped ones grey) | strong view with the pseudo-boxes moved into it |
student predictions | true boxes (see :mod:`ssvision.visualization.det_views`).
Without ``--checkpoint`` the model is freshly initialised. The batch is the first one
of the config's train dataloader (built with seed ``--seed``); ``--cfg-options
train_dataloader.num_workers=0 train_dataloader.persistent_workers=False`` avoids
starting worker processes.
"""

from __future__ import annotations

import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from show_seg_views import load_model_and_batch, parse_args  # noqa: E402


def main(argv=None) -> str:
    args = parse_args(argv, seed_help='seed of the initial weights and the dataloader '
                      '(default 0)')
    from ssvision.visualization.det_views import render_det_views

    _, model, batch, class_names = load_model_and_batch(args)
    out = render_det_views(model, batch, args.out, max_images=args.num,
                           class_names=class_names)
    print(f'wrote {out}')
    return out


if __name__ == '__main__':
    main()
