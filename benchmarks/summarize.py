"""Print markdown tables from the benchmark scripts' results.jsonl files.

    python benchmarks/summarize.py [--label-eff work_dirs/bench_label_eff]
                                   [--long-tail work_dirs/bench_long_tail]
                                   [--look-ahead work_dirs/bench_look_ahead]
                                   [--seg-binary work_dirs/bench_seg_binary2]
                                   [--wrn-usb work_dirs/bench_wrn_usb]

Tables over seeds give mean +- sample standard deviation and the number of seeds.
"""

from __future__ import annotations

import argparse
import json
import os.path as osp
import statistics
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))


def _read(path: str) -> list[dict]:
    path = osp.join(path, 'results.jsonl')
    if not osp.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def label_efficiency_table(rows: list[dict]) -> str:
    out = ['| dataset | labels / class | iterations | supervised-only | Mean Teacher | FixMatch |'
           ' FixMatch - supervised |', '|---|---|---|---|---|---|---|']
    keys = sorted({(r['dataset'], r['labels_per_class'], r['iters']) for r in rows})
    for ds, n, it in keys:
        got = {r['algorithm']: r for r in rows
               if (r['dataset'], r['labels_per_class'], r['iters']) == (ds, n, it)}

        cells = {a: (f"{got[a]['teacher_top1']:.1f}" if a in got else 'n/a')
                 for a in ('supervised', 'mean_teacher', 'fixmatch')}
        gap = (f"{got['fixmatch']['teacher_top1'] - got['supervised']['teacher_top1']:+.1f}"
               if 'fixmatch' in got and 'supervised' in got else 'n/a')
        out.append(f"| {ds} | {n} | {it} | {cells['supervised']} | {cells['mean_teacher']} | "
                   f"{cells['fixmatch']} | {gap} |")
    return '\n'.join(out)


def long_tail_table(rows: list[dict]) -> str:
    out = ['| dataset | imbalance | method | teacher top-1 | mean recall | recall of the 3 '
           'rarest classes | their mean |', '|---|---|---|---|---|---|---|']
    for r in rows:
        tail = [v for v in r['tail_recall'].values() if v is not None]
        names = ', '.join(f'{k}: {v:.0f}' for k, v in r['tail_recall'].items() if v is not None)
        mean_tail = sum(tail) / len(tail) if tail else float('nan')
        out.append(f"| {r.get('dataset', 'mnist5k')} | {r['imbalance']} | {r['method']} | "
                   f"{r['teacher_top1']:.1f} | {r['teacher_mean_recall']:.1f} | {names} | "
                   f'{mean_tail:.1f} |')
    return '\n'.join(out)


def mean_std(values: list) -> str:
    """``mean +- std (n)`` of the non-missing values (std over seeds, n - 1)."""
    v = [x for x in values if x is not None]
    if not v:
        return '-'
    if len(v) == 1:
        return f'{v[0]:.1f} (1)'
    return f'{statistics.fmean(v):.1f} +- {statistics.stdev(v):.1f} ({len(v)})'


def _latest(rows: list[dict], key) -> dict:
    """The last row of each key (a rerun replaces an earlier row)."""
    out = {}
    for r in rows:
        out[key(r)] = r
    return out


def look_ahead_table(rows: list[dict]) -> str:
    """Mean +- std over seeds per (dataset, pool, method, iterations); the method-family
    tables use it too."""
    rows = _latest(rows, lambda r: (r.get('dataset', 'mnist5k'), r['imbalance'], r['method'],
                                    r['iters'], r['seed']))
    out = ['| dataset | pool | method | iterations | teacher top-1 | mean recall | '
           'recall of the 3 rarest (mean) | seeds |', '|---|---|---|---|---|---|---|---|']
    for ds, imb, method, iters in sorted({k[:4] for k in rows}):
        got = [r for k, r in rows.items() if k[:4] == (ds, imb, method, iters)]
        tail = [statistics.fmean(r['tail_recall'].values()) for r in got]
        pool = 'balanced' if imb == 1 else f'long-tailed {imb}:1'
        out.append(f"| {ds} | {pool} | {method} | {iters} | "
                   f"{mean_std([r['teacher_top1'] for r in got])} | "
                   f"{mean_std([r['teacher_mean_recall'] for r in got])} | {mean_std(tail)} | "
                   f"{sorted(r['seed'] for r in got)} |")
    return '\n'.join(out)


def seg_binary_table(rows: list[dict]) -> str:
    rows = [r for r in rows if r.get('phase') == 'train']
    rows = _latest(rows, lambda r: (r['fraction'], r['method'], r['seed']))
    out = ['| labeled | method | teacher mIoU | teacher foreground IoU | student mIoU | seeds |',
           '|---|---|---|---|---|---|']
    order = {'supervised': 0, 'fixmatch': 1, 'dssn': 2}
    for frac, method in sorted({k[:2] for k in rows}, key=lambda k: (k[0], order.get(k[1], 9))):
        got = [r for k, r in rows.items() if k[:2] == (frac, method)]
        out.append(f"| {frac.lstrip('n')} | {method} | "
                   f"{mean_std([r['teacher_mIoU'] for r in got])} | "
                   f"{mean_std([r['object_IoU'] for r in got])} | "
                   f"{mean_std([r['student_mIoU'] for r in got])} | "
                   f"{sorted(r['seed'] for r in got)} |")
    return '\n'.join(out)


def wrn_usb_table(path: str) -> str:
    """ssvision's rows are re-read from their logs (validation iterations included)."""
    from wrn_vs_usb import ssvision_result
    out = ['| seed | library | evaluated model | @200 | @400 | @600 | s / iteration |',
           '|---|---|---|---|---|---|---|']
    for r in _read(path):
        if r['lib'] == 'ssvision':
            name = f"ssvision_{r['teacher_bn']}_seed{r['seed']}_{r['iters']}it"
            if r.get('dataset', 'mnist5k') != 'mnist5k':
                name = name.replace('ssvision_', f"ssvision_{r['dataset']}_")
            res = ssvision_result(osp.join(path, name))
            for who in ('teacher', 'student'):
                acc = {e['iter']: e[who] for e in res['evals']}
                cells = ' | '.join(f'{acc[i]:.1f}' if i in acc else '-' for i in (200, 400, 600))
                out.append(f"| {r['seed']} | ssvision | {who} (BN re-estimated) | {cells} | "
                           f"{res['s_per_iter'] or 0:.2f} |")
        else:
            evals = {e['iter']: e for e in r['evals']}
            for who, key in (('EMA 0.999', 'acc'), ('raw', 'raw_acc')):
                cells = ' | '.join(f"{100 * evals[i][key]:.1f}" if i in evals else '-'
                                   for i in (200, 400, 600))
                out.append(f"| {r['seed']} | USB | {who} | {cells} | {r['s_per_iter'] or 0:.2f} |")
            out.append(f"| {r['seed']} | USB | EMA, BN re-estimated (end) | - | - | "
                       f"{100 * (r['final_ema_bn_recal_acc'] or 0):.1f} | |")
    return '\n'.join(out)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--label-eff', default='work_dirs/bench_label_eff')
    p.add_argument('--long-tail', default='work_dirs/bench_long_tail')
    p.add_argument('--look-ahead', default='work_dirs/bench_look_ahead')
    p.add_argument('--seg-binary', default='work_dirs/bench_seg_binary2')
    p.add_argument('--wrn-usb', default='work_dirs/bench_wrn_usb')
    p.add_argument('--family', nargs='*', default=[],
                   help='method-family result folders (benchmarks/long_tail.py --out-dir)')
    args = p.parse_args(argv)
    print(label_efficiency_table(_read(args.label_eff)))
    print()
    print(long_tail_table(_read(args.long_tail)))
    for title, path, table in (('look-ahead', args.look_ahead, look_ahead_table),
                               ('binary scenes', args.seg_binary, seg_binary_table)):
        rows = _read(path)
        if rows:
            print(f'\n{title}:\n' + table(rows))
    family = [r for d in args.family for r in _read(d)]
    if family:
        print('\nmethod family:\n' + look_ahead_table(family))
    if _read(args.wrn_usb):
        print('\nWRN-28-2 beside USB:\n' + wrn_usb_table(args.wrn_usb))


if __name__ == '__main__':
    main()
