"""Label efficiency: supervised-only vs Mean Teacher vs FixMatch at the same budget.

    python benchmarks/label_efficiency.py [--datasets mnist5k fashion_mnist]
        [--labels 4 10] [--algorithms supervised mean_teacher fixmatch]
        [--iters 2000] [--seed 0] [--out-dir work_dirs/bench_label_eff]

Each run is ``tools/train.py`` on the matching config with the split file written by
``tools/prepare_data.py`` (made here if missing); the result is the last validation's
teacher and student top-1 on the test set (MNIST-5k: 1,000 held-out digits;
Fashion-MNIST: the 10,000 t10k images). Results append to ``results.jsonl`` in the
output folder and a markdown table is printed.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = {
    'supervised': 'configs/supervised/supervised_tinycnn_2k_{data}-4pc.py',
    'mean_teacher': 'configs/mean_teacher/meanteacher_tinycnn_2k_{data}-4pc.py',
    'fixmatch': 'configs/fixmatch/fixmatch_tinycnn_2k_{data}-4pc.py',
}
CONFIG_DATA = {'mnist5k': 'mnist5k', 'fashion_mnist': 'fashionmnist'}


def last_val(work_dir: str) -> dict:
    records = []
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            records += [json.loads(line) for line in f if 'teacher/top1' in line]
    return records[-1] if records else {}


def data_options(dataset: str, labels: int, seed: int) -> list[str]:
    split = f'data/splits/{dataset}_{labels}pc_seed{seed}.json'
    opts = [f'train_dataloader.dataset.labeled.split_file={split}',
            f'train_dataloader.dataset.unlabeled.split_file={split}']
    if dataset == 'mnist5k':  # the test digits are part of the split
        opts += [f'val_dataloader.dataset.split_file={split}',
                 f'test_dataloader.dataset.split_file={split}']
    return opts


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--datasets', nargs='+', default=['mnist5k', 'fashion_mnist'])
    p.add_argument('--labels', nargs='+', type=int, default=[4, 10])
    p.add_argument('--algorithms', nargs='+', default=list(CONFIGS))
    p.add_argument('--iters', type=int, default=2000)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out-dir', default='work_dirs/bench_label_eff')
    args = p.parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    subprocess.run([sys.executable, osp.join(REPO, 'tools/prepare_data.py'), '--seeds',
                    str(args.seed), '--only', *args.datasets], check=True, cwd=REPO)
    rows = []
    for dataset in args.datasets:
        for labels in args.labels:
            for algo in args.algorithms:
                name = f'{algo}_{dataset}_{labels}pc_seed{args.seed}_{args.iters}it'
                work_dir = osp.join(args.out_dir, name)
                opts = data_options(dataset, labels, args.seed) + [
                    f'train_cfg.max_iters={args.iters}',
                    f'train_cfg.val_interval={max(args.iters // 4, 1)}',
                    f'param_scheduler.0.end={args.iters}', f'param_scheduler.0.T_max={args.iters}',
                    f'randomness.seed={args.seed}', 'default_hooks.logger.interval=100',
                    f'default_hooks.checkpoint.interval={args.iters}']
                t0 = time.time()
                config = CONFIGS[algo].format(data=CONFIG_DATA[dataset])
                cmd = [sys.executable, osp.join(REPO, 'tools/train.py'), config,
                       '--work-dir', work_dir, '--cfg-options', *opts]
                with open(osp.join(args.out_dir, name + '.log'), 'w') as log:
                    subprocess.run(cmd, check=True, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
                rec = last_val(work_dir)
                row = dict(dataset=dataset, labels_per_class=labels, algorithm=algo,
                           iters=args.iters, seed=args.seed, minutes=(time.time() - t0) / 60,
                           teacher_top1=rec.get('teacher/top1'),
                           student_top1=rec.get('student/top1'),
                           teacher_mean_recall=rec.get('teacher/mean_recall'))
                rows.append(row)
                with open(osp.join(args.out_dir, 'results.jsonl'), 'a') as f:
                    f.write(json.dumps(row) + '\n')
                print(json.dumps(row), flush=True)
    print('\n| dataset | labels/class | algorithm | teacher top-1 | student top-1 | min |')
    print('|---|---|---|---|---|---|')
    for r in rows:
        print(f"| {r['dataset']} | {r['labels_per_class']} | {r['algorithm']} | "
              f"{r['teacher_top1']:.1f} | {r['student_top1']:.1f} | {r['minutes']:.1f} |")


if __name__ == '__main__':
    main()
