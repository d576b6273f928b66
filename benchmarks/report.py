"""Write ``BENCHMARKS.md`` from the result rows in ``benchmarks/results/*.jsonl``.

    python -m benchmarks.report            # writes BENCHMARKS.md
    python -m benchmarks.report --check    # exit 1 when BENCHMARKS.md is not its output

The file opens with the headline table (:data:`HEADLINE`: method x task, mean +- std over
seeds, the gain over supervised paired by seed, the USB peer beside it), then one section
per benchmark (:data:`SECTIONS`) with a table per ``table`` of its rows, the commands,
machines and dates the rows record, and each row's commits. Rows are data: a benchmark
script appends them with :func:`benchmarks.harness.record_row`; this file only renders.
"""

from __future__ import annotations

import argparse
import glob
import json
import os.path as osp
import statistics
import sys

from benchmarks.harness import REPO, RESULTS

OUT = osp.join(REPO, 'BENCHMARKS.md')

#: benchmark -> (section title, a line or two of fixed prose); the order of the sections
SECTIONS = {
    'seg_binary': ('Binary scenes: foreground / background segmentation',
                   'DeepLabV3+ r18 on 128x128 photo scenes with Fashion-MNIST items, 96x96 '
                   'crops, 4 + 4 images per step, 300 iterations; teacher metrics at the end.'),
    'seg_scenes': ('Segmentation on the 11-class scenes',
                   'DeepLabV3+ r18, 38 (1/16) or 75 (1/8) labeled scenes of 600; the '
                   'photo-trained start is the zoo entry `resnet18_items-on-photos`.'),
    'det_scenes': ('Detection on the built-in scenes',
                   'Torchvision RetinaNet / Faster R-CNN r18 FPN, 10 classes, 30 (5 %) or 60 '
                   '(10 %) labeled scenes of 600; pseudo-box health over the last quarter.'),
    'wrn_vs_usb': ('WRN-28-2 FixMatch beside USB 0.3.2 on the identical split',
                   'B = 16, mu = 7, 40 labels; ssvision teacher and student with BatchNorm '
                   're-estimated; USB as shipped (its harness: `--usb-harness` or '
                   '`$SSVISION_USB_HARNESS`, not part of this repository).'),
    'label_efficiency': ('Label efficiency (classification)',
                         'TinyCNN, B = 32 + 224 unlabeled, SGD 0.03 cosine, EMA 0.99; teacher '
                         'top-1 after the same iterations for every method.'),
    'long_tail': ('Class-aware selection on long-tailed unlabeled pools',
                  'TinyCNN, 4 labels per class, class k keeps n_max r^(-k/9) unlabeled images; '
                  'balanced test set (mean recall = top-1).'),
    'method_family': ('The rest of the method family',
                      'TinyCNN, 40 labels, 500 iterations (the CPU budget); large seed spread.'),
    'look_ahead': ('Learning from the future (look-ahead)',
                   'TinyCNN FixMatch with `look_ahead=True`, 500 iterations, EMA 0.99.'),
    'drift_signal': ('The drift alarm replayed on a drifting run',
                     "`HealthAlarmHook`'s drift alarm: total variation d between the teacher's "
                     'class distribution and the labeled prior.'),
    'source_free': ('Source-free domain adaptive detection (one seed)',
                    'RetinaNet r18 trained on the source photo, adapted 500 iterations on '
                    'unlabeled target scenes.'),
    'mmdet_plugin': ('Through the mmdetection plug-in',
                     '`SsvSemiDetector` on a plain mmdetection 3.3 RetinaNet config; no '
                     'pseudo-box was kept, so each pair is the same supervised run.'),
    'step_cost': ('Step cost', 'Seconds per training step (median), data in memory.'),
    'throughput': ('Throughput, the data pipeline included, beside USB',
                   'FixMatch end to end: DataLoader workers, `train_step`, EMA.'),
    'recipe_equivalence': ('Recipe equivalence',
                           'Per-iteration losses before and after a refactoring, 12 iterations, '
                           'one thread; 0 means the same computation.'),
    'zoo_builds': ('Zoo builds reproduce the measured runs',
                   '`ssvision zoo build NAME` retrains an entry from its recorded options.'),
}

#: the headline table: (benchmark, table, task, metric) groups, in order
HEADLINE = [
    ('seg_binary', 'binary scenes, blur-only strong views, random init',
     'binary scenes, 4 labeled, 300 it', 'teacher mIoU'),
    ('seg_binary', 'binary scenes, blur-only strong views, random init',
     'binary scenes, 8 labeled, 300 it', 'teacher mIoU'),
    ('seg_scenes', '11 classes, 1/16 labeled, photo-trained start',
     'balanced scenes, 1/16 labeled, 1500 it, photo-trained start', 'teacher mIoU'),
    ('det_scenes', 'Faster R-CNN, RoI budget for 128-px scenes',
     'Faster R-CNN (scenes RoI budget), 5 % labeled, 500 it, photo-trained start',
     'teacher mAP'),
    ('wrn_vs_usb', 'WRN-28-2 FixMatch, ssvision beside USB 0.3.2', 'mnist5k, 40 labels, 600 it',
     'top-1 @600'),
    ('wrn_vs_usb', 'WRN-28-2 FixMatch, ssvision beside USB 0.3.2', 'fmnist, 40 labels, 600 it',
     'top-1 @600'),
    ('method_family', 'TinyCNN, MNIST-5k', 'mnist5k, 4 labels/class, balanced pool, 500 it',
     'teacher top-1'),
    ('label_efficiency', 'TinyCNN, teacher top-1', 'MNIST-5k, 4 labels/class, 2000 it',
     'teacher top-1'),
]

NOTES = """\
**Read the rows with their notes.** Rows for FlexMatch, FreeMatch, SoftMatch, UDA and Mean
Teacher dated before 2026-12-06 predate the alignment of their defaults with the reference
code (`tests/parity/`); "DSSN" rows dated before 2026-12-06 are ssvision's variant, now
`DSSNTopK` (the authors' DSSN is named so). Most rows come from the project's shared 2-core
CPU: compare figures of one table, and seconds only within one run. One seed unless a
cell gives mean +- std (n); a difference of a point or two is within seed noise."""


def load(folder: str = RESULTS) -> list[dict]:
    """Every row of ``folder/*.jsonl``, benchmark by benchmark."""
    rows = []
    for path in sorted(glob.glob(osp.join(folder, '*.jsonl'))):
        with open(path) as f:
            rows += [json.loads(line) for line in f if line.strip()]
    return rows


def _decimals(value: float) -> int:
    text = repr(float(value))
    return 0 if 'e' in text else len(text.split('.')[1].rstrip('0'))


def fmt(value: float, decimals: int | None = None) -> str:
    if value != 0 and abs(value) < 1e-3:
        return f'{value:.0e}'
    if decimals is None:  # 85.0 stays 85.0; counts (1,584) keep no decimals
        decimals = max(_decimals(value), 0 if abs(value) >= 1000 else 1)
    return f'{value:.{decimals}f}'


def summary(rows: list[dict]) -> tuple[float, float | None, int, str]:
    """``(mean, std, n, text)`` of one cell's rows: per-seed rows are averaged (sample
    std); a row that is already a mean over seeds carries its own ``std``."""
    if len(rows) == 1:
        r = rows[0]
        n = len(r['seed']) if isinstance(r['seed'], list) else 1
        text = fmt(r['value'])
        if r.get('std') is not None:
            text += f" +- {fmt(r['std'], max(1, _decimals(r['value'])))} ({n})"
        return r['value'], r.get('std'), n, text
    values = [r['value'] for r in rows]
    d = max(1, max(_decimals(v) for v in values))
    mean, std = statistics.fmean(values), statistics.stdev(values)
    return mean, std, len(values), f'{mean:.{d}f} +- {std:.{d}f} ({len(values)})'


def _group(rows: list[dict], key) -> dict:
    out: dict = {}
    for r in rows:
        out.setdefault(key(r), []).append(r)
    return out


def headline(rows: list[dict]) -> list[str]:
    out = ['| task | method | metric | mean +- std (seeds) | paired gain over supervised | '
           'USB peer (its best evaluation) |', '|---|---|---|---|---|---|']
    for bench, table, task, metric in HEADLINE:
        got = [r for r in rows if (r['benchmark'], r['table'], r['task'], r['metric'])
               == (bench, table, task, metric)]
        methods = _group([r for r in got if not r.get('peer')], lambda r: r['method'])
        peers = _group([r for r in got if r.get('peer')], lambda r: r['method'])
        peer = max((summary(v) + (m,) for m, v in peers.items()), default=None,
                   key=lambda s: s[0])
        peer_text = f'{peer[3]}: {peer[4]}' if peer else '-'
        sup = {r['seed']: r['value'] for r in methods.get('supervised', [])
               if not isinstance(r['seed'], list)}
        for method, mrows in methods.items():
            gains = [r['value'] - sup[r['seed']] for r in mrows
                     if method != 'supervised' and not isinstance(r['seed'], list)
                     and r['seed'] in sup]
            gain = '-'
            if len(gains) > 1:
                gain = (f'{statistics.fmean(gains):+.1f} +- {statistics.stdev(gains):.1f} '
                        f'({len(gains)})')
            elif gains:
                gain = f'{gains[0]:+.1f} (1)'
            mark = ' *' if any(r.get('note') for r in mrows) else ''
            out.append(f'| {task} | {method}{mark} | {metric} | {summary(mrows)[3]} | {gain} | '
                       f'{peer_text} |')
            peer_text = '"'
    return out


def section(bench: str, rows: list[dict]) -> list[str]:
    title, prose = SECTIONS.get(bench, (bench, ''))
    out = [f'## {title}', *([prose] if prose else []), '']
    notes: list[str] = []
    for table, trows in _group(rows, lambda r: r['table']).items():
        metrics = list(dict.fromkeys(r['metric'] for r in trows))
        machines = ', '.join(dict.fromkeys(r['machine'] for r in trows))
        dates = ', '.join(sorted(set(r['date'] for r in trows)))
        commands = '; '.join(f'`{c}`' for c in dict.fromkeys(r['command'] for r in trows))
        out += [f'**{table}** ({machines}; {dates}): {commands}', '',
                '| task | method | ' + ' | '.join(metrics) + ' | commit |',
                '|---|---|' + '---|' * len(metrics) + '---|']
        for (task, method), cell_rows in _group(trows, lambda r: (r['task'],
                                                                  r['method'])).items():
            cells = _group(cell_rows, lambda r: r['metric'])
            marks = ''
            for r in cell_rows:
                if r.get('note'):
                    if r['note'] not in notes:
                        notes.append(r['note'])
                    mark = f"[{notes.index(r['note']) + 1}]"
                    marks += '' if mark in marks else ' ' + mark
            commits = ', '.join(dict.fromkeys(r['commit'] for r in cell_rows))
            out.append(f'| {task} | {method}{marks} | '
                       + ' | '.join(summary(cells[m])[3] if m in cells else '-'
                                    for m in metrics)
                       + f' | {commits} |')
        out.append('')
    if notes:
        out += [' '.join(f'[{i + 1}] {n}.' for i, n in enumerate(notes)), '']
    return out


def render(rows: list[dict]) -> str:
    out = ['# Benchmarks', '',
           '<!-- generated by `python -m benchmarks.report` from benchmarks/results/*.jsonl; '
           'edit the rows or the generator, not this file -->', '',
           'Each row below is a line of `benchmarks/results/<benchmark>.jsonl` with the '
           'command that produced it and the commit that recorded it; a benchmark run '
           '(`python -m benchmarks.<name> ...` from the repository root) appends its rows. '
           'Earlier passes are in git history.', '', NOTES, '',
           '## Headline', '', *headline(rows), '',
           '\\* a row with a note in its section (predates the alignment, or DSSNTopK).', '']
    by_bench = _group(rows, lambda r: r['benchmark'])
    for bench in [*SECTIONS, *sorted(set(by_bench) - set(SECTIONS))]:
        if bench in by_bench:
            out += section(bench, by_bench[bench])
    return '\n'.join(out).rstrip() + '\n'


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--check', action='store_true',
                   help='compare BENCHMARKS.md with the output instead of writing it')
    args = p.parse_args(argv)
    text = render(load())
    if args.check:
        with open(OUT) as f:
            same = f.read() == text
        if not same:
            print('BENCHMARKS.md differs from the rows: run python -m benchmarks.report')
        return 0 if same else 1
    with open(OUT, 'w') as f:
        f.write(text)
    print(f'wrote {OUT} ({text.count(chr(10))} lines)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
