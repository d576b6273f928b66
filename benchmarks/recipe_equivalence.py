"""Same seed, same losses: record short training runs, or compare two records.

A refactoring of the recipe must not change what it computes. This trains a few
iterations of each listed config with a fixed seed, one loader worker and a log line
every iteration, and writes the per-iteration total loss and supervised loss
(and, where logged, the selection figures) to a JSON file. Run it before and after a
change and compare:

    python benchmarks/recipe_equivalence.py record --out before.json [--iters 12]
    python benchmarks/recipe_equivalence.py record --out after.json
    python benchmarks/recipe_equivalence.py compare before.json after.json

The comparison prints, per run, the largest relative difference of ``loss`` over all
iterations. Runs on CPU with one thread are bit-reproducible, so an unchanged
computation shows 0.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import tempfile

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

#: name -> (config, extra cfg-options). Burn-in is 0 and the detection selectors keep
#: boxes from the first step, so the unlabeled branch runs from iteration 1.
RUNS = {
    'fixmatch_tinycnn': ('configs/fixmatch/fixmatch_tinycnn_2k_mnist5k-4pc.py', []),
    'flexmatch_tinycnn': ('configs/flexmatch/flexmatch_tinycnn_2k_mnist5k-4pc.py', []),
    # ssvision's DSSN variant (DSSNTopK; these run names predate the authors' recipe)
    'dssn_aux_tinycnn': ('configs/dssn/dssn-topk-aux_tinycnn_2k_mnist5k-4pc.py', []),
    'dssn_binscenes': ('configs/dssn/dssn-topk_deeplabv3plus-r18_300_binscenes-n4.py', []),
    # the Siamese head's feature term from its own encoder pass (before 2026-12-01)
    'dssn_binscenes_own_features': (
        'configs/dssn/dssn-topk_deeplabv3plus-r18_300_binscenes-n4.py',
        ['model.aux_heads.0.shared_features=False']),
    # DSSN as its authors run it
    'dssn_published_binscenes': ('configs/dssn/dssn_deeplabv3plus-r18_300_binscenes-n4.py', []),
    'fixmatch_binscenes_lookahead': (
        'configs/fixmatch/fixmatch_deeplabv3plus-r18_300_binscenes-n4.py',
        ['model.semi_train_cfg.look_ahead=True']),
    'det_retinanet_classaware': (
        'configs/semi_det/classaware_retinanet-r18_2k_detscenes-10pc.py',
        ['model.semi_train_cfg.burn_in_iters=0', 'model.selector.floor=0.0',
         'model.selector.min_score=0.0']),
    'det_fasterrcnn_classaware': (
        'configs/semi_det/classaware_fasterrcnn-r18_2k_detscenes-10pc.py',
        ['model.semi_train_cfg.burn_in_iters=0', 'model.selector.floor=0.0',
         'model.selector.min_score=0.0']),
    # added before the recipe restructuring (issue 28): every algorithm, every student
    # forward mode, the online pseudo-label source, aux heads, FST-W, supervised baselines
    'freematch_tinycnn': ('configs/freematch/freematch_tinycnn_2k_mnist5k-4pc.py', []),
    'uda_tinycnn': ('configs/uda/uda_tinycnn_2k_mnist5k-4pc.py', []),
    'meanteacher_tinycnn': ('configs/mean_teacher/meanteacher_tinycnn_2k_mnist5k-4pc.py', []),
    'shrinkmatch_tinycnn': ('configs/shrinkmatch/shrinkmatch_tinycnn_2k_mnist5k-4pc.py', []),
    'supervised_tinycnn': ('configs/supervised/supervised_tinycnn_2k_mnist5k-4pc.py', []),
    'fixmatch_online': ('configs/fixmatch/fixmatch_tinycnn_2k_mnist5k-4pc.py',
                        ['model.semi_train_cfg.pseudo_label_source=online']),
    'fixmatch_separate': ('configs/fixmatch/fixmatch_tinycnn_2k_mnist5k-4pc.py',
                          ['model.semi_train_cfg.student_forward=separate']),
    'fixmatch_clean_stats': ('configs/fixmatch/fixmatch_tinycnn_2k_mnist5k-4pc.py',
                             ['model.semi_train_cfg.student_forward=clean_stats']),
    'fixmatch_rotnet': ('configs/fixmatch/fixmatch-rotnet_tinycnn_2k_mnist5k-4pc.py', []),
    'fixmatch_lorot': ('configs/fixmatch/fixmatch-lorot_tinycnn_2k_mnist5k-4pc.py', []),
    'fixmatch_fstw': ('configs/fixmatch/fixmatch-fstw_tinycnn_2k_mnist5k-4pc.py', []),
    'fixmatch_classaware_binscenes': (
        'configs/fixmatch/fixmatch-classaware_deeplabv3plus-r18_300_binscenes-n4.py', []),
    'supervised_binscenes': (
        'configs/supervised/supervised_deeplabv3plus-r18_300_binscenes-n4.py', []),
    'det_retinanet_fixed': (
        'configs/semi_det/fixed_retinanet-r18_2k_detscenes-10pc.py',
        ['model.semi_train_cfg.burn_in_iters=0']),
    'det_retinanet_supervised': (
        'configs/semi_det/supervised_retinanet-r18_2k_detscenes-10pc.py', []),
}
KEYS = ('loss', 'sup_loss', 'sel_frac', 'pb_per_img', 'pb_reg_frac')


def record(args) -> None:
    out = {}
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    for name in args.runs:
        config, extra = RUNS[name]
        with tempfile.TemporaryDirectory() as work:
            opts = [f'train_cfg.max_iters={args.iters}', f'train_cfg.val_interval={10**6}',
                    'randomness.seed=0', 'default_hooks.logger.interval=1',
                    f'default_hooks.checkpoint.interval={10**6}',
                    'default_hooks.checkpoint.save_last=False',
                    'train_dataloader.num_workers=0',
                    'train_dataloader.persistent_workers=False',
                    'log_processor.window_size=1', *extra]
            cmd = [sys.executable, osp.join(REPO, 'tools/train.py'), config,
                   '--work-dir', work, '--cfg-options', *opts]
            proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
            if proc.returncode:
                print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f'{name}: training failed')
            rows = []
            for path in sorted(glob.glob(osp.join(work, '*', 'vis_data', 'scalars.json'))):
                with open(path) as f:
                    rows += [json.loads(line) for line in f]
            out[name] = [{k: r[k] for k in ('step', *KEYS) if k in r}
                         for r in rows if 'loss' in r]
            print(f'{name}: {len(out[name])} iterations, last loss '
                  f"{out[name][-1]['loss'] if out[name] else None}", flush=True)
    with open(args.out, 'w') as f:
        json.dump(out, f, indent=1)


def compare(args) -> None:
    with open(args.before) as f:
        before = json.load(f)
    with open(args.after) as f:
        after = json.load(f)
    worst, per_run = 0.0, {}
    for name in before:
        if name not in after:
            print(f'{name}: missing after')
            continue
        diffs = {}
        for key in KEYS:
            a = [r[key] for r in before[name] if key in r]
            b = [r[key] for r in after[name] if key in r]
            if not a and not b:
                continue
            if len(a) != len(b):
                diffs[key] = float('inf')
                continue
            diffs[key] = max((abs(x - y) / max(abs(x), 1e-12) for x, y in zip(a, b)),
                             default=0.0)
        worst = max(worst, diffs.get('loss', 0.0))
        print(f'{name}: ' + ', '.join(f'{k} max rel diff {v:.2e}' for k, v in diffs.items()))
        per_run[name] = diffs
    print(f'worst loss difference: {worst:.2e}')
    if args.table:
        _record(args, per_run)


#: how a compared figure is named in BENCHMARKS.md's rows
_METRICS = {'total loss': ('loss',), 'sup_loss': ('sup_loss',),
            'selection figure': ('sel_frac', 'pb_per_img', 'pb_reg_frac')}


def _record(args, per_run: dict[str, dict]) -> None:
    """The largest relative difference of each figure over all compared runs, as rows of
    ``recipe_equivalence.jsonl`` (the runs are named in the row)."""
    from benchmarks.harness import record_row, this_command
    command = ('python -m benchmarks.recipe_equivalence record --out before.json '
               f'(at {args.before_rev}); ... record --out after.json; '
               + this_command('recipe_equivalence'))
    method = f'{len(per_run)} runs: ' + ', '.join(per_run)
    for metric, keys in _METRICS.items():
        values = [d[k] for d in per_run.values() for k in keys if k in d]
        if values:
            record_row('recipe_equivalence', f'{args.iters} iterations, seed 0', method,
                       f'{metric}, largest relative difference', max(values), 0,
                       command=command, table=args.table)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = p.add_subparsers(dest='cmd', required=True)
    r = sub.add_parser('record')
    r.add_argument('--out', required=True)
    r.add_argument('--iters', type=int, default=12)
    r.add_argument('--runs', nargs='+', default=list(RUNS), choices=list(RUNS))
    c = sub.add_parser('compare')
    c.add_argument('before')
    c.add_argument('after')
    c.add_argument('--table', default='', help='also write the differences as result rows '
                   'of this table (run as python -m benchmarks.recipe_equivalence)')
    c.add_argument('--iters', type=int, default=12, help='iterations the records ran')
    c.add_argument('--before-rev', default='the parent commit',
                   help='the revision the before record ran at (for the rows)')
    args = p.parse_args(argv)
    record(args) if args.cmd == 'record' else compare(args)


if __name__ == '__main__':
    main()
