"""Class-aware selection on long-tailed unlabeled pools.

    python -m benchmarks.long_tail [--imbalance 10 100] [--methods fixmatch flexmatch ...]
        [--iters 1000] [--seed 0] [--out-dir work_dirs/bench_long_tail]

MNIST-5k or Fashion-MNIST, 4 labels per class, unlabeled pool long-tailed with
imbalance ratio r (class k keeps ``n_max * r^(-k/9)`` images: class 0 most, class 9
fewest; see ``ssvision.datasets.split``; ``--imbalance 1`` is the balanced pool), balanced
test set (MNIST-5k: 100 held-out
digits per class; Fashion-MNIST: t10k). Reports the teacher's top-1, mean recall and
the recall of the three rarest classes (7, 8, 9).
"""

from __future__ import annotations

import argparse
import os
import os.path as osp
import subprocess
import sys

from benchmarks.harness import (
    REPO,
    fashion_options,
    record_row,
    run_and_record,
    schedule_options,
    this_command,
    train_stats,
)

METHODS = {
    'fixmatch': 'configs/fixmatch/fixmatch_tinycnn_2k_mnist5k-4pc.py',
    'flexmatch': 'configs/flexmatch/flexmatch_tinycnn_2k_mnist5k-4pc.py',
    'freematch': 'configs/freematch/freematch_tinycnn_2k_mnist5k-4pc.py',
    'fixmatch+dssn_sel': 'configs/fixmatch/fixmatch-dssnsel_tinycnn_2k_mnist5k-4pc.py',
    # ssvision's DSSN variant (DSSNTopK): the authors' DSSN is a segmentation method
    'dssn-topk': 'configs/dssn/dssn-topk_tinycnn_2k_mnist5k-4pc.py',
    'dssn-topk+aux': 'configs/dssn/dssn-topk-aux_tinycnn_2k_mnist5k-4pc.py',
    'fixmatch+look_ahead': 'configs/fixmatch/fixmatch_tinycnn_2k_mnist5k-4pc.py',
    'uda': 'configs/uda/uda_tinycnn_2k_mnist5k-4pc.py',
    'shrinkmatch': 'configs/shrinkmatch/shrinkmatch_tinycnn_2k_mnist5k-4pc.py',
    'fixmatch+lorot': 'configs/fixmatch/fixmatch-lorot_tinycnn_2k_mnist5k-4pc.py',
    'fixmatch+rotnet': 'configs/fixmatch/fixmatch-rotnet_tinycnn_2k_mnist5k-4pc.py',
    'fixmatch+fstd': 'configs/fixmatch/fixmatch-fstd_tinycnn_2k_mnist5k-4pc.py',
    'fixmatch+fstw': 'configs/fixmatch/fixmatch-fstw_tinycnn_2k_mnist5k-4pc.py',
}
#: cfg-options a method adds to its config
METHOD_OPTIONS = {'fixmatch+look_ahead': ['model.semi_train_cfg.look_ahead=True']}
TAIL_CLASSES = (7, 8, 9)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--dataset', default='mnist5k', choices=['mnist5k', 'fashion_mnist'])
    p.add_argument('--imbalance', nargs='+', type=int, default=[10, 100])
    p.add_argument('--methods', nargs='+', default=list(METHODS), choices=list(METHODS))
    p.add_argument('--iters', type=int, default=1000)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out-dir', default='work_dirs/bench_long_tail')
    args = p.parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    subprocess.run([sys.executable, osp.join(REPO, 'tools/prepare_data.py'), '--seeds',
                    str(args.seed), '--only', args.dataset], check=True, cwd=REPO)
    from ssvision.datasets import FashionMNIST, MNIST5k
    classes = (FashionMNIST if args.dataset == 'fashion_mnist' else MNIST5k)().metainfo['classes']
    tail = [classes[c].replace(' ', '_').replace('/', '_') for c in TAIL_CLASSES]
    rows = []
    for imb in args.imbalance:
        pool = f'_lt{imb}' if imb != 1 else ''
        split = f'data/splits/{args.dataset}_4pc{pool}_seed{args.seed}.json'
        for method in args.methods:
            name = f'{method}_{args.dataset}_4pc_lt{imb}_seed{args.seed}_{args.iters}it'
            work_dir = osp.join(args.out_dir, name)
            opts = [f'train_dataloader.dataset.labeled.split_file={split}',
                    f'train_dataloader.dataset.unlabeled.split_file={split}']
            if args.dataset == 'mnist5k':
                opts += [f'val_dataloader.dataset.split_file={split}',
                         f'test_dataloader.dataset.split_file={split}']
            else:
                opts += fashion_options()
            opts += schedule_options(args.iters, args.seed,
                                     val_every=max(args.iters // 2, 1), log_every=50)
            opts += METHOD_OPTIONS.get(method, [])
            row = run_and_record(
                METHODS[method], work_dir, opts, osp.join(args.out_dir, name + '.log'),
                osp.join(args.out_dir, 'results.jsonl'),
                dict(dataset=args.dataset, imbalance=imb, method=method, iters=args.iters,
                     seed=args.seed),
                dict(teacher_top1='teacher/top1', teacher_mean_recall='teacher/mean_recall',
                     tail_recall={c: f'teacher/recall_{c}' for c in tail}))
            row.update(train_stats(work_dir))
            rows.append(row)
    print('\n| dataset | imbalance | method | teacher top-1 | recall 7 / 8 / 9 | s/iter | min |')
    print('|---|---|---|---|---|---|---|')
    for r in rows:
        tail_txt = ' / '.join(f'{v:.0f}' for v in r['tail_recall'].values())
        print(f"| {r['dataset']} | {r['imbalance']} | {r['method']} | {r['teacher_top1']:.1f} | "
              f"{tail_txt} | {r['s_per_iter'] or 0:.3f} | "
              f"{r['minutes']:.1f} |")
        pool = 'balanced' if r['imbalance'] == 1 else f"long-tailed {r['imbalance']}:1"
        task = f"{r['dataset']}, 4 labels/class, {pool} pool, {r['iters']} it"
        tail = [v for v in r['tail_recall'].values() if v is not None]
        for metric, value in (('teacher top-1', r['teacher_top1']),
                              ('mean recall', r['teacher_mean_recall']),
                              ('recall of the 3 rarest',
                               sum(tail) / len(tail) if tail else None)):
            record_row('long_tail', task, r['method'], metric, value, r['seed'],
                       command=this_command('long_tail'))


if __name__ == '__main__':
    main()
