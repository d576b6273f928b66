"""Source-free domain adaptive detection on the built-in scenes: is the shift real, and does
adaptation (mean teacher, with and without WSCoL) recover what it costs?

    python -m benchmarks.source_free [--seeds 0] [--source-iters 1500] [--iters 500]
                                     [--parallel 2] [--out-dir work_dirs/bench_sfod]
                                     [--adapt-options K=V ...]

Domains (``tools/prepare_data.py --scenes-only --sfod-scenes``, run here if missing): the
same Fashion-MNIST items and box statistics over the china photo (source) and over the
flower photo under 40 % fog (target). Steps, per seed:

1. the source detector: ``configs/source_free/supervised_retinanet-r18_1500_sfod-source.py``
   (every source scene labeled), evaluated on the source and the target validation scenes
   (the drop is the domain shift);
2. adaptation from its last checkpoint on unlabeled target scenes only:
   ``meanteacher_...`` (mean teacher, fixed 0.5 score threshold) and ``wscol_...`` (the same
   plus ``WeakStrongContrastHead``), evaluated on the target validation scenes.

Each run's figures (teacher / student mAP, AP50, pseudo-box count and precision over the
last quarter, median s/iter) go to ``results.jsonl``; ``--parallel`` runs the two
adaptations side by side (one thread each).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys

from benchmarks.harness import REPO, record_row, this_command

SOURCE = 'configs/source_free/supervised_retinanet-r18_1500_sfod-source.py'
ADAPT = {'meanteacher': 'configs/source_free/meanteacher_retinanet-r18_500_sfod-target.py',
         'wscol': 'configs/source_free/wscol_retinanet-r18_500_sfod-target.py'}
TARGET_VAL = 'data/scenes/det_sfod/target/val/annotations.json'


def scalars(work_dir: str) -> list[dict]:
    rows = []
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            rows += [json.loads(line) for line in f if line.strip()]
    return rows


def median(values):
    values = sorted(values)
    return values[len(values) // 2] if values else None


def train_figures(work_dir: str, max_iters: int) -> dict:
    rows = [r for r in scalars(work_dir) if 'loss' in r]
    tail = [r for r in rows if r.get('iter', 0) > 0.75 * max_iters]
    out = {'s_per_iter': median([r['time'] for r in rows if 'time' in r])}
    for key in ('pb_per_img', 'pb_prec', 'aux_wscol_relabel'):
        vals = [r[key] for r in tail if key in r]
        if vals:
            out[key] = sum(vals) / len(vals)
    return out


def test(config: str, ckpt: str, work_dir: str, opts: list[str], env: dict) -> dict:
    out = osp.join(work_dir, 'metrics.json')
    os.makedirs(work_dir, exist_ok=True)
    cmd = [sys.executable, osp.join(REPO, 'tools/test.py'), config, ckpt, '--model', 'both',
           '--work-dir', work_dir, '--out', out]
    subprocess.run(cmd + (['--cfg-options', *opts] if opts else []), check=True, cwd=REPO,
                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(out) as f:
        return json.load(f)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--seeds', type=int, nargs='+', default=[0])
    p.add_argument('--source-iters', type=int, default=1500)
    p.add_argument('--iters', type=int, default=500)
    p.add_argument('--parallel', type=int, default=2)
    p.add_argument('--workers', type=int, default=1)
    p.add_argument('--out-dir', default='work_dirs/bench_sfod')
    p.add_argument('--adapt-options', nargs='*', default=[],
                   help='extra --cfg-options of the adaptation runs, e.g. '
                   'model.selector.threshold=0.3')
    args = p.parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=REPO)
    if not osp.exists(osp.join(REPO, TARGET_VAL)):
        subprocess.run([sys.executable, osp.join(REPO, 'tools/prepare_data.py'),
                        '--scenes-only', '--sfod-scenes'], check=True, cwd=REPO)
    results = osp.join(args.out_dir, 'results.jsonl')
    loader = [f'train_dataloader.num_workers={args.workers}',
              f'train_dataloader.persistent_workers={args.workers > 0}']
    for seed in args.seeds:
        src_dir = osp.join(args.out_dir, f'source_seed{seed}')
        ckpt = osp.join(src_dir, f'iter_{args.source_iters}.pth')
        if not osp.exists(ckpt):
            n = args.source_iters
            subprocess.run([sys.executable, osp.join(REPO, 'tools/train.py'), SOURCE,
                            '--work-dir', src_dir, '--cfg-options', f'randomness.seed={seed}',
                            f'train_cfg.max_iters={n}', f'train_cfg.val_interval={n}',
                            f'default_hooks.checkpoint.interval={n}',
                            f'param_scheduler.1.end={n}', f'param_scheduler.1.T_max={n - 200}',
                            *loader], check=True, cwd=REPO, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        row = {'seed': seed, 'run': 'source', **train_figures(src_dir, args.source_iters)}
        row['source_val'] = test(SOURCE, ckpt, osp.join(src_dir, 'test_source'), [], env)
        row['target_val'] = test(SOURCE, ckpt, osp.join(src_dir, 'test_target'), [
            f'test_dataloader.dataset.ann_file={TARGET_VAL}',
            f'test_evaluator.ann_file={TARGET_VAL}'], env)
        with open(results, 'a') as f:
            f.write(json.dumps(row) + '\n')
        print(json.dumps(row), flush=True)
        save_rows(row)

        procs = {}
        for name, config in ADAPT.items():
            work = osp.join(args.out_dir, f'{name}_seed{seed}')
            cmd = [sys.executable, osp.join(REPO, 'tools/train.py'), config, '--work-dir', work,
                   '--cfg-options', f'load_from={ckpt}', f'randomness.seed={seed}',
                   f'train_cfg.max_iters={args.iters}', f'train_cfg.val_interval={args.iters}',
                   f'default_hooks.checkpoint.interval={args.iters}', *loader,
                   *args.adapt_options]
            log = open(osp.join(args.out_dir, f'{name}_seed{seed}.log'), 'w')
            procs[name] = (subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log,
                                            stderr=subprocess.STDOUT), work, config)
            if len([q for q in procs.values() if q[0].poll() is None]) >= args.parallel:
                procs[name][0].wait()
        for name, (proc, work, config) in procs.items():
            if proc.wait():
                raise SystemExit(f'{name} seed {seed} failed: see its log in {args.out_dir}')
            row = {'seed': seed, 'run': name, **train_figures(work, args.iters),
                   'target_val': test(config, osp.join(work, f'iter_{args.iters}.pth'),
                                      osp.join(work, 'test'), [], env)}
            with open(results, 'a') as f:
                f.write(json.dumps(row) + '\n')
            print(json.dumps(row), flush=True)
            save_rows(row)


def save_rows(row: dict) -> None:
    """A run's test metrics and pseudo-box health as rows of
    ``benchmarks/results/source_free.jsonl``."""
    command = this_command('source_free')
    for part in ('source_val', 'target_val'):
        for key, value in (row.get(part) or {}).items():
            if isinstance(value, (int, float)):
                record_row('source_free', part.replace('_', ' '), row['run'], key, value,
                           row['seed'], command=command)
    for key in ('pb_per_img', 'pb_prec', 's_per_iter'):
        record_row('source_free', 'target train', row['run'], key, row.get(key), row['seed'],
                   command=command)


if __name__ == '__main__':
    main()
