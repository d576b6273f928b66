"""Seconds per training iteration of variants of one config, measured in one session.

    python -m benchmarks.step_time CONFIG --variant NAME=KEY=VALUE[,KEY=VALUE] ...
        [--iters 30] [--rounds 3]

Each round trains every variant for ``--iters`` iterations (one thread, no loader
workers, no validation), alternating the variants so that a noisy shared machine
affects them alike. A variant's figure is the median over rounds of its run's median
``time`` (mmengine's seconds per iteration) after the first 5 iterations; the ratio to
the first variant is printed beside it. Example (DSSNTopK's feature-level term from the
main forward vs an encoder pass of its own)::

    python -m benchmarks.step_time configs/dssn/dssn-topk_deeplabv3plus-r18_300_binscenes-n4.py \
        --variant shared=model.aux_heads.0.shared_features=True \
        --variant own=model.aux_heads.0.shared_features=False
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import tempfile

from benchmarks.harness import REPO, record_row, this_command

SKIP = 5


def run_once(config: str, opts: list[str], iters: int) -> float:
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    with tempfile.TemporaryDirectory() as work:
        base = [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={10**6}',
                'default_hooks.logger.interval=1', 'log_processor.window_size=1',
                f'default_hooks.checkpoint.interval={10**6}',
                'default_hooks.checkpoint.save_last=False', 'train_dataloader.num_workers=0',
                'train_dataloader.persistent_workers=False']
        cmd = [sys.executable, osp.join(REPO, 'tools/train.py'), config, '--work-dir', work,
               '--cfg-options', *base, *opts]
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        if proc.returncode:
            print(proc.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f'training failed: {" ".join(opts)}')
        times = []
        for path in glob.glob(osp.join(work, '*', 'vis_data', 'scalars.json')):
            with open(path) as f:
                times += [json.loads(line)['time'] for line in f if '"time"' in line]
    if len(times) <= SKIP:
        raise SystemExit(f'only {len(times)} timed iterations; raise --iters')
    return statistics.median(times[SKIP:])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('config')
    p.add_argument('--variant', action='append', required=True,
                   help='NAME=KEY=VALUE[,KEY=VALUE...] (cfg-options of the variant)')
    p.add_argument('--iters', type=int, default=30)
    p.add_argument('--rounds', type=int, default=3)
    args = p.parse_args(argv)
    variants = {}
    for spec in args.variant:
        name, _, opts = spec.partition('=')
        variants[name] = [o for o in opts.split(',') if o]
    per = {name: [] for name in variants}
    for r in range(args.rounds):
        for name, opts in variants.items():
            per[name].append(run_once(args.config, opts, args.iters))
            print(f'round {r}: {name} {per[name][-1]:.3f} s/iter', flush=True)
    first = statistics.median(per[next(iter(variants))])
    print('| variant | s / iteration (median of rounds) | ratio to the first |')
    print('|---|---|---|')
    for name, values in per.items():
        med = statistics.median(values)
        print(f'| {name} | {med:.3f} | {med / first:.2f} |')
        record_row('step_time', osp.basename(args.config), name, 's / iteration', med,
                   command=this_command('step_time'))


if __name__ == '__main__':
    main()
