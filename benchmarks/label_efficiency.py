"""Label efficiency: supervised-only vs Mean Teacher vs FixMatch at the same budget.

    python -m benchmarks.label_efficiency [--datasets mnist5k fashion_mnist]
        [--labels 4 10] [--algorithms supervised mean_teacher fixmatch]
        [--iters 2000] [--seed 0] [--out-dir work_dirs/bench_label_eff]

Each run is ``tools/train.py`` on the matching config with the split file written by
``tools/prepare_data.py`` (made here if missing); the result is the last validation's
teacher and student top-1 on the test set (MNIST-5k: 1,000 held-out digits;
Fashion-MNIST: the 10,000 t10k images). Results append to ``results.jsonl`` in the
output folder, a markdown table is printed, and each figure is recorded in
``benchmarks/results/label_efficiency.jsonl``.
"""

from __future__ import annotations

import argparse
import os
import os.path as osp
import subprocess
import sys

from benchmarks.harness import REPO, record_summary, run_and_record, schedule_options, this_command

CONFIGS = {
    'supervised': 'configs/supervised/supervised_tinycnn_2k_{data}-4pc.py',
    'mean_teacher': 'configs/mean_teacher/meanteacher_tinycnn_2k_{data}-4pc.py',
    'fixmatch': 'configs/fixmatch/fixmatch_tinycnn_2k_{data}-4pc.py',
}
CONFIG_DATA = {'mnist5k': 'mnist5k', 'fashion_mnist': 'fashionmnist'}


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
                opts = data_options(dataset, labels, args.seed) + schedule_options(
                    args.iters, args.seed, val_every=max(args.iters // 4, 1), log_every=100)
                rows.append(run_and_record(
                    CONFIGS[algo].format(data=CONFIG_DATA[dataset]), work_dir, opts,
                    osp.join(args.out_dir, name + '.log'),
                    osp.join(args.out_dir, 'results.jsonl'),
                    dict(dataset=dataset, labels_per_class=labels, algorithm=algo,
                         iters=args.iters, seed=args.seed),
                    dict(teacher_top1='teacher/top1', student_top1='student/top1',
                         teacher_mean_recall='teacher/mean_recall')))
    print('\n| dataset | labels/class | algorithm | teacher top-1 | student top-1 | min |')
    print('|---|---|---|---|---|---|')
    for r in rows:
        print(f"| {r['dataset']} | {r['labels_per_class']} | {r['algorithm']} | "
              f"{r['teacher_top1']:.1f} | {r['student_top1']:.1f} | {r['minutes']:.1f} |")
    record_summary('label_efficiency', rows, dict(teacher_top1='teacher_top1',
                                                  student_top1='student_top1'),
                   command=this_command('label_efficiency'),
                   task=lambda r: f"{r['dataset']}, {r['labels_per_class']} labels/class, "
                                  f"{r['iters']} it",
                   method=lambda r: r['algorithm'])


if __name__ == '__main__':
    main()
