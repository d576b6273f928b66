"""Plot pseudo-label selection health of a run (per-class rates, thresholds, accuracy).

    python tools/plot_selection.py WORK_DIR [--out PNG] [--window N] [--classes a b ...]

WORK_DIR is a work dir (all timestamp folders, resumes merged), a log dir or a
``scalars.json``. The PNG defaults to ``WORK_DIR/selection_stats.png``.
"""

from __future__ import annotations

import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from ssvision.visualization import load_selection_history, plot_selection  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Plot pseudo-label selection health')
    parser.add_argument('work_dir', help='work dir, log dir or scalars.json')
    parser.add_argument('--out', help='output PNG (default: WORK_DIR/selection_stats.png)')
    parser.add_argument('--window', type=int, default=1,
                        help='moving-average window in logged points (1 = none)')
    parser.add_argument('--classes', nargs='+', help='class names, in class-index order')
    parser.add_argument('--num-unlabeled', type=float,
                        help='unlabeled positions per iteration, if known')
    parser.add_argument('--title', help='figure title (default: the work dir name)')
    return parser.parse_args(argv)


def main(argv=None) -> str:
    args = parse_args(argv)
    src = args.work_dir
    root = osp.dirname(src) if osp.isfile(src) else src
    out = args.out or osp.join(root, 'selection_stats.png')
    history = load_selection_history(src)
    if len(history['step']) == 0:
        raise SystemExit(f'no training records in {src}')
    title = args.title or osp.basename(osp.normpath(root))
    plot_selection(history, out, class_names=args.classes, title=title,
                   window=args.window, num_unlabeled=args.num_unlabeled)
    print(out)
    return out


if __name__ == '__main__':
    main()
