"""Class-aware selection on long-tailed unlabeled pools.

    python benchmarks/long_tail.py [--imbalance 10 100] [--methods fixmatch flexmatch ...]
        [--iters 1000] [--seed 0] [--out-dir work_dirs/bench_long_tail]

MNIST-5k, 4 labels per class, unlabeled pool long-tailed with imbalance ratio r
(class k keeps ``n_max * r^(-k/9)`` images: class 0 most, class 9 fewest; see
``ssvision.datasets.split``), balanced test set (100 digits per class). Reports the
teacher's top-1, mean recall and the recall of the three rarest classes (7, 8, 9).
"""

from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from label_efficiency import REPO, last_val  # noqa: E402

METHODS = {
    'fixmatch': 'configs/fixmatch/fixmatch_tinycnn_2k_mnist5k-4pc.py',
    'flexmatch': 'configs/flexmatch/flexmatch_tinycnn_2k_mnist5k-4pc.py',
    'freematch': 'configs/freematch/freematch_tinycnn_2k_mnist5k-4pc.py',
    'fixmatch+dssn_sel': 'configs/fixmatch/fixmatch-dssnsel_tinycnn_2k_mnist5k-4pc.py',
    'dssn': 'configs/dssn/dssn_tinycnn_2k_mnist5k-4pc.py',
    'dssn+aux': 'configs/dssn/dssn-aux_tinycnn_2k_mnist5k-4pc.py',
}
TAIL = ('7', '8', '9')


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--imbalance', nargs='+', type=int, default=[10, 100])
    p.add_argument('--methods', nargs='+', default=list(METHODS), choices=list(METHODS))
    p.add_argument('--iters', type=int, default=1000)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out-dir', default='work_dirs/bench_long_tail')
    args = p.parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    subprocess.run([sys.executable, osp.join(REPO, 'tools/prepare_data.py'), '--seeds',
                    str(args.seed), '--only', 'mnist5k'], check=True, cwd=REPO)
    rows = []
    for imb in args.imbalance:
        split = f'data/splits/mnist5k_4pc_lt{imb}_seed{args.seed}.json'
        for method in args.methods:
            name = f'{method}_mnist5k_4pc_lt{imb}_seed{args.seed}_{args.iters}it'
            work_dir = osp.join(args.out_dir, name)
            opts = [f'train_dataloader.dataset.labeled.split_file={split}',
                    f'train_dataloader.dataset.unlabeled.split_file={split}',
                    f'val_dataloader.dataset.split_file={split}',
                    f'test_dataloader.dataset.split_file={split}',
                    f'train_cfg.max_iters={args.iters}',
                    f'train_cfg.val_interval={max(args.iters // 2, 1)}',
                    f'param_scheduler.0.end={args.iters}', f'param_scheduler.0.T_max={args.iters}',
                    f'randomness.seed={args.seed}', 'default_hooks.logger.interval=50',
                    f'default_hooks.checkpoint.interval={args.iters}']
            t0 = time.time()
            cmd = [sys.executable, osp.join(REPO, 'tools/train.py'), METHODS[method],
                   '--work-dir', work_dir, '--cfg-options', *opts]
            with open(osp.join(args.out_dir, name + '.log'), 'w') as log:
                subprocess.run(cmd, check=True, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
            rec = last_val(work_dir)
            row = dict(imbalance=imb, method=method, iters=args.iters, seed=args.seed,
                       minutes=(time.time() - t0) / 60,
                       teacher_top1=rec.get('teacher/top1'),
                       teacher_mean_recall=rec.get('teacher/mean_recall'),
                       tail_recall={c: rec.get(f'teacher/recall_{c}') for c in TAIL})
            rows.append(row)
            with open(osp.join(args.out_dir, 'results.jsonl'), 'a') as f:
                f.write(json.dumps(row) + '\n')
            print(json.dumps(row), flush=True)
    print('\n| imbalance | method | teacher top-1 | recall 7 / 8 / 9 | min |')
    print('|---|---|---|---|---|')
    for r in rows:
        tail = ' / '.join(f'{v:.0f}' for v in r['tail_recall'].values())
        print(f"| {r['imbalance']} | {r['method']} | {r['teacher_top1']:.1f} | {tail} | "
              f"{r['minutes']:.1f} |")


if __name__ == '__main__':
    main()
