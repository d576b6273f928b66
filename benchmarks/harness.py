"""The benchmarks' shared harness: runs, seeds and records.

A benchmark script trains configs with ``tools/train.py`` in subprocesses
(:func:`run_jobs`, :func:`run_and_record`), reads each run's last validation and
training health from its ``scalars.json`` (:func:`last_val`, :func:`train_stats`,
:func:`train_health`), and, when it summarises, appends one row per measured figure to
``benchmarks/results/<benchmark>.jsonl`` with :func:`record_row` (commit, machine and
date filled in). ``python -m benchmarks.report`` writes ``BENCHMARKS.md`` from those rows.

Scripts run from the repository root as modules: ``python -m benchmarks.<name> ...``.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import os.path as osp
import platform
import shlex
import statistics
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: where :func:`record_row` writes (``$SSVISION_BENCH_RESULTS`` overrides it)
RESULTS = osp.join(REPO, 'benchmarks', 'results')
FASHION_ROOT = '/usr/share/datasets/fashion-mnist'
#: the environment variable naming USB's benchmark harness (``usb_bench.py``)
USB_HARNESS_ENV = 'SSVISION_USB_HARNESS'
#: the fields every result row has (:func:`record_row`)
ROW_FIELDS = ('benchmark', 'table', 'task', 'method', 'metric', 'value', 'seed', 'command',
              'commit', 'machine', 'date')


def git_commit() -> str:
    """The checkout's short commit (``'unknown'`` outside a git checkout)."""
    try:
        out = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=REPO,
                             capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return 'unknown'


def _proc_field(path: str, key: str) -> str:
    """The value of ``key:`` in a ``/proc`` file (Linux), '' elsewhere."""
    try:
        with open(path) as f:
            return next((line.split(':', 1)[1].strip() for line in f
                         if line.startswith(key)), '')
    except OSError:
        return ''


def machine() -> str:
    """This machine in a few words: CPU cores and model, memory, the CUDA device if any."""
    cpu = (_proc_field('/proc/cpuinfo', 'model name') or platform.processor()
           or platform.machine())
    text = f'{os.cpu_count()} cores, {cpu}'
    mem_kb = _proc_field('/proc/meminfo', 'MemTotal').split(' ')[0]
    if mem_kb.isdigit():
        text += f', {round(int(mem_kb) / 2**20)} GiB'
    try:
        import torch
        if torch.cuda.is_available():
            text += f', {torch.cuda.get_device_name(0)}'
    except ImportError:
        pass
    return text


def this_command(script: str) -> str:
    """The command line that is running ``benchmarks/<script>.py``, in its module form."""
    return ' '.join(['python -m', f'benchmarks.{script}', *map(shlex.quote, sys.argv[1:])])


def record_row(benchmark: str, task: str, method: str, metric: str, value, seed=None, *,
               command: str, table: str = '', **extra) -> dict | None:
    """Append one measured figure to ``benchmarks/results/<benchmark>.jsonl``.

    ``seed`` is the run's seed, or a list of seeds when ``value`` is their mean (then
    pass ``std``); ``command`` is the command that produced it (:func:`this_command`);
    ``table`` groups rows into one table of the benchmark's section. ``commit``,
    ``machine`` and ``date`` are filled in. A ``None`` value (a figure the run did not
    log) is not written.
    """
    if value is None:
        return None
    row = dict(benchmark=benchmark, table=table, task=task, method=method, metric=metric,
               value=round(float(value), 4), seed=seed, command=command,
               commit=git_commit(), machine=machine(),
               date=datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d'),
               **extra)
    folder = os.environ.get('SSVISION_BENCH_RESULTS', RESULTS)
    os.makedirs(folder, exist_ok=True)
    with open(osp.join(folder, f'{benchmark}.jsonl'), 'a') as f:
        f.write(json.dumps(row) + '\n')
    return row


def usb_harness(path: str | None) -> str:
    """The path of USB's benchmark harness (``usb_bench.py``): ``path``, else
    ``$SSVISION_USB_HARNESS``; a clear error when neither names an existing file."""
    path = path or os.environ.get(USB_HARNESS_ENV, '')
    if not path:
        raise SystemExit(f'USB\'s harness is not part of this repository: pass '
                         f'--usb-harness PATH/usb_bench.py or set {USB_HARNESS_ENV}')
    if not osp.isfile(path):
        raise SystemExit(f'USB\'s harness {path!r} does not exist (--usb-harness or '
                         f'{USB_HARNESS_ENV})')
    return osp.abspath(path)


def records(work_dir: str) -> list[dict]:
    """Every logged record of a run (its ``scalars.json`` files, oldest first)."""
    out = []
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            out += [json.loads(line) for line in f]
    return out


def last_val(work_dir: str, key: str = 'teacher/top1') -> dict:
    """The last validation record of a run (the last record holding ``key``)."""
    found = [r for r in records(work_dir) if key in r]
    return found[-1] if found else {}


def train_stats(work_dir: str) -> dict:
    """Median seconds per iteration and peak memory (MB) from the training log records.

    mmengine logs ``time`` (seconds per iteration, averaged over the logging window) and,
    on CUDA, ``memory`` (``torch.cuda.max_memory_allocated`` in MB).
    """
    train = [r for r in records(work_dir) if 'time' in r and 'loss' in r]
    times = [r['time'] for r in train[1:]] or [r['time'] for r in train]
    mems = [r['memory'] for r in train if 'memory' in r]
    return dict(s_per_iter=statistics.median(times) if times else None,
                peak_mem_mb=max(mems) if mems else None)


def train_health(work_dir: str, keys=('pb_per_img', 'pb_prec', 'pb_recall'),
                 last: float = 0.25) -> dict:
    """Means of the logged pseudo-label health ``keys`` over the last ``last`` of
    training (keys never logged there are left out)."""
    recs = [r for r in records(work_dir) if 'loss' in r and 'iter' in r]
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


def add_variant_argument(p: argparse.ArgumentParser, example: str) -> None:
    """The scene benchmarks' ``--variant NAME KEY=VALUE ...`` (``example``: one such
    change); :func:`parse_variant` reads it."""
    p.add_argument('--variant', nargs='+', default=None, metavar=('NAME', 'KEY=VALUE'),
                   help='a named change of every run\'s config (mmengine --cfg-options '
                        f'syntax after the name), e.g. --variant {example}; the rows and '
                        'work dirs carry the name')


def parse_variant(p: argparse.ArgumentParser, args) -> tuple[str | None, list[str]]:
    """``(name, options)`` of ``--variant`` (``(None, [])`` without one); a name that is
    not letters, digits and '-' is refused."""
    variant, opts = (args.variant[0], args.variant[1:]) if args.variant else (None, [])
    if variant is not None and not variant.replace('-', '').isalnum():
        p.error(f'--variant: the first word is the name (letters, digits, -), got {variant!r}')
    return variant, opts


def check_variant(parser, work_dir: str, options: list[str]) -> None:
    """Record a variant's options in its work dir, and refuse to reuse a work dir of the
    same variant name made with other options (finished runs are reused by name)."""
    path = osp.join(work_dir, 'variant_options.json')
    if osp.exists(path):
        with open(path) as f:
            before = json.load(f)
        if before != list(options):
            parser.error(f'{work_dir} holds variant options {before}, not {list(options)}: '
                         'give this variant another name (or remove the old run)')
        return
    os.makedirs(work_dir, exist_ok=True)
    with open(path, 'w') as f:
        json.dump(list(options), f)


def fashion_options() -> list[str]:
    """Point an MNIST-5k config at Fashion-MNIST (train for the pools, t10k to test)."""
    opts = []
    for part in ('labeled', 'unlabeled'):
        key = f'train_dataloader.dataset.{part}'
        opts += [f'{key}.type=FashionMNIST', f'{key}.root={FASHION_ROOT}', f'{key}.train=True']
    opts += ['val_dataloader.dataset.type=FashionMNIST',
             f'val_dataloader.dataset.root={FASHION_ROOT}', 'val_dataloader.dataset.train=False',
             'val_dataloader.dataset.split_file=None', 'val_dataloader.dataset.subset=None',
             'val_dataloader.batch_size=500']
    return opts


def record_summary(benchmark: str, rows: list[dict], metrics: dict, *, command: str,
                   task, method, table: str = '') -> list[dict]:
    """:func:`record_row` for every figure of a script's result rows: ``metrics`` maps a
    metric's name to the row key holding it; ``task`` and ``method`` map a row to its
    task and method names (the row's ``seed`` is the seed)."""
    out = []
    for r in rows:
        for name, key in metrics.items():
            row = record_row(benchmark, task(r), method(r), name, r.get(key), r.get('seed'),
                             command=command, table=table)
            if row:
                out.append(row)
    return out
