"""Print markdown tables from the benchmark scripts' results.jsonl files.

    python benchmarks/summarize.py [--label-eff work_dirs/bench_label_eff]
                                   [--long-tail work_dirs/bench_long_tail]
"""

from __future__ import annotations

import argparse
import json
import os.path as osp


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


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--label-eff', default='work_dirs/bench_label_eff')
    p.add_argument('--long-tail', default='work_dirs/bench_long_tail')
    args = p.parse_args(argv)
    print(label_efficiency_table(_read(args.label_eff)))
    print()
    print(long_tail_table(_read(args.long_tail)))


if __name__ == '__main__':
    main()
