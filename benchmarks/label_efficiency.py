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
import statistics
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


def _records(work_dir: str) -> list[dict]:
    records = []
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            records += [json.loads(line) for line in f]
    return records


def last_val(work_dir: str, key: str = 'teacher/top1') -> dict:
    """The last validation record of a run (the last record holding ``key``)."""
    records = [r for r in _records(work_dir) if key in r]
    return records[-1] if records else {}


def train_stats(work_dir: str) -> dict:
    """Median seconds per iteration and peak memory (MB) from the training log records.

    mmengine logs ``time`` (seconds per iteration, averaged over the logging window) and,
    on CUDA, ``memory`` (``torch.cuda.max_memory_allocated`` in MB).
    """
    train = [r for r in _records(work_dir) if 'time' in r and 'loss' in r]
    times = [r['time'] for r in train[1:]] or [r['time'] for r in train]
    mems = [r['memory'] for r in train if 'memory' in r]
    return dict(s_per_iter=statistics.median(times) if times else None,
                peak_mem_mb=max(mems) if mems else None)


def train_health(work_dir: str, keys=('pb_per_img', 'pb_prec', 'pb_recall'),
                 last: float = 0.25) -> dict:
    """Means of the logged pseudo-label health ``keys`` over the last ``last`` of
    training (keys never logged there are left out)."""
    recs = [r for r in _records(work_dir) if 'loss' in r and 'iter' in r]
    if not recs:
        return {}
    end = max(r['iter'] for r in recs)
    tail = [r for r in recs if r['iter'] > end * (1 - last)]
    return {k: statistics.fmean(r[k] for r in tail if k in r)
            for k in keys if any(k in r for r in tail)}


def schedule_options(iters: int, seed: int, val_every: int, log_every: int,
                     poly: bool = False) -> list[str]:
    """cfg-options giving a run ``iters`` iterations with its cosine schedule (its poly
    schedule with ``poly``: no ``T_max``)."""
    return [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={val_every}',
            f'param_scheduler.0.end={iters}',
            *([] if poly else [f'param_scheduler.0.T_max={iters}']),
            f'randomness.seed={seed}', f'default_hooks.logger.interval={log_every}',
            f'default_hooks.checkpoint.interval={iters}']


def add_run_arguments(p: argparse.ArgumentParser, out_dir: str) -> None:
    """The scene benchmarks' shared options: seed, parallel runs, loader workers, the
    timing phase and the output folder."""
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--parallel', type=int, default=1)
    p.add_argument('--workers', type=int, default=2)
    p.add_argument('--timing-iters', type=int, default=0)
    p.add_argument('--out-dir', default=out_dir)


def train_command(config: str, work_dir: str, opts: list[str]) -> list[str]:
    return [sys.executable, osp.join(REPO, 'tools/train.py'), config, '--work-dir', work_dir,
            '--cfg-options', *opts]


def record(work_dir: str, results_path: str, row: dict, metrics: dict,
           val_key: str = 'teacher/top1') -> dict:
    """Append ``row`` + the final metrics of the finished run in ``work_dir``."""
    rec = last_val(work_dir, val_key)
    row = dict(row)
    for key, src in metrics.items():
        row[key] = ({k: rec.get(v) for k, v in src.items()} if isinstance(src, dict)
                    else rec.get(src))
    with open(results_path, 'a') as f:
        f.write(json.dumps(row) + '\n')
    print(json.dumps(row), flush=True)
    return row


def run_and_record(config: str, work_dir: str, opts: list[str], log_path: str,
                   results_path: str, row: dict, metrics: dict,
                   val_key: str = 'teacher/top1') -> dict:
    """Train ``config`` in a subprocess, then append ``row`` + its final metrics.

    ``metrics`` maps row keys to keys of the last validation record, or to a dict of
    such (a nested entry of the row).
    """
    t0 = time.time()
    with open(log_path, 'w') as log:
        subprocess.run(train_command(config, work_dir, opts), check=True, cwd=REPO,
                       stdout=log, stderr=subprocess.STDOUT)
    return record(work_dir, results_path, dict(row, minutes=(time.time() - t0) / 60),
                  metrics, val_key)


def run_jobs(jobs: list[tuple], out_dir: str, parallel: int, metrics: dict,
             val_key: str) -> list[dict]:
    """Train ``(name, config, opts, row)`` jobs, ``parallel`` at a time, and record them.

    Rows whose ``phase`` is ``'timing'`` run alone (after every earlier job finished) and
    record only their speed; ``'train'`` rows also record ``metrics`` of the last
    validation. A ``train`` / ``init`` job whose work dir already holds its finished run
    (the final checkpoint) is recorded without training again (``reused``: the
    benchmark picks up where an interrupted one stopped). Parallel runs get
    ``OMP_NUM_THREADS = cores // parallel``. Each row
    also gets ``peak_rss_mb``, the run's peak resident memory (the CPU counterpart of
    the CUDA ``peak_mem_mb``).
    """
    results = osp.join(out_dir, 'results.jsonl')
    env = dict(os.environ)
    if parallel > 1:  # keep the runs from fighting over intra-op threads
        env['OMP_NUM_THREADS'] = str(max(1, (os.cpu_count() or 2) // parallel))
    rows: list[dict] = []
    running: list[tuple] = []

    def finish(entry) -> None:
        proc, log, name, row, t0 = entry
        # wait4 gives this run's own resource use: ru_maxrss (KiB) is the peak resident
        # memory of the training process (or of its largest dataloader worker)
        _, status, usage = os.wait4(proc.pid, 0)
        rc = proc.returncode = os.waitstatus_to_exitcode(status)
        log.close()
        if rc != 0:
            raise SystemExit(f'{name} failed (exit {rc}); see {log.name}')
        work_dir = osp.join(out_dir, name)
        row = dict(row, minutes=(time.time() - t0) / 60, **train_stats(work_dir),
                   peak_rss_mb=usage.ru_maxrss / 1024)
        rows.append(record(work_dir, results, row,
                           metrics if row.get('phase') != 'timing' else {}, val_key))

    for name, config, opts, row in jobs:
        work_dir = osp.join(out_dir, name)
        if row.get('phase') in ('train', 'init') and _finished(work_dir, row.get('iters'), val_key):
            print(f'reusing the finished run {work_dir}', flush=True)
            rows.append(record(work_dir, results, dict(row, reused=True, **train_stats(work_dir)),
                               metrics if row['phase'] == 'train' else {}, val_key))
            continue
        timing = row.get('phase') == 'timing'
        while len(running) >= (1 if timing else parallel) or (running and timing):
            finish(running.pop(0))  # the oldest run; timing runs get the machine alone
        log = open(osp.join(out_dir, name + '.log'), 'w')
        proc = subprocess.Popen(train_command(config, osp.join(out_dir, name), opts),
                                cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                env=None if timing else env)
        running.append((proc, log, name, row, time.time()))
    while running:
        finish(running.pop(0))
    return rows


def _finished(work_dir: str, iters: int | None, val_key: str) -> bool:
    """A run of ``iters`` iterations already finished in ``work_dir`` (its last
    checkpoint is the final one and a validation record holds ``val_key``)."""
    path = osp.join(work_dir, 'last_checkpoint')
    if iters is None or not osp.exists(path):
        return False
    with open(path) as f:
        done = f.read().strip().endswith(f'iter_{iters}.pth')
    return done and bool(last_val(work_dir, val_key))


def fmt(value, spec: str = '.1f') -> str:
    """A table cell: ``'-'`` for a missing value."""
    return '-' if value is None else format(value, spec)


def scene_parts(specs: list[str], scenes: dict, parts: list[str],
                prepare_flags: list[str], split_file=None) -> list[tuple[str, str]]:
    """``(scene set, labeled part)`` pairs from ``NAME`` or ``NAME:PART`` specs (``PART``
    limits that set to one part); writes the scenes with ``tools/prepare_data.py
    *prepare_flags`` when a named set has no splits yet, or when ``split_file(set, part)``
    (a path under the repository) is missing (splits of a seed written by an older
    ``prepare_data.py``). A split still missing then is an error that names it."""
    pairs = []
    for spec in specs:
        name, _, only = spec.partition(':')
        if name not in scenes:
            raise SystemExit(f'unknown scenes {name!r}; choose from {list(scenes)}')
        pairs += [(name, part) for part in ([only] if only else parts)]
    def missing():
        if split_file is None:
            return []
        return [p for p in (split_file(*pair) for pair in pairs)
                if not osp.exists(osp.join(REPO, p))]

    if missing() or not all(osp.exists(osp.join(REPO, scenes[name], 'splits'))
                            for name, _ in pairs):
        subprocess.run([sys.executable, osp.join(REPO, 'tools/prepare_data.py'),
                        *prepare_flags], check=True, cwd=REPO)
    if missing():
        raise SystemExit(f'split {missing()[0]} does not exist (tools/prepare_data.py '
                         f'{" ".join(prepare_flags)} writes seeds 0-2 only)')
    return pairs


def print_timing(rows: list[dict]) -> None:
    for r in rows:
        if r.get('phase') == 'timing':
            cuda = r.get('peak_mem_mb') is not None
            mem = r['peak_mem_mb'] if cuda else r.get('peak_rss_mb')
            print(f"timing {r['method']}: {fmt(r['s_per_iter'], '.4f')} s/iter, "
                  f"peak {fmt(mem, '.0f')} MB {'CUDA' if cuda else 'resident'}")


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


if __name__ == '__main__':
    main()
