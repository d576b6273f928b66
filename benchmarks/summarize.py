"""Print markdown tables from the benchmark scripts' results.jsonl files.

    python -m benchmarks.summarize [--label-eff work_dirs/bench_label_eff]
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


def _part_size(part) -> float:
    """Sort key of a labeled part: ``'5'`` (percent), ``'1-16'`` (fraction), ``'n4'``."""
    text = str(part).lstrip('n')
    try:
        num, _, den = text.partition('-')
        return float(num) / float(den or 1)
    except ValueError:
        return 0.0


def _budget(r: dict) -> tuple:
    """A row's recipe and budget: detector, its RoI budget (``det_scenes.py --rois``,
    read from the run-name tag, which rows written before the option lack), the shared
    burn-in and the iterations. Rows of another recipe never share a group."""
    tag = r.get('tag', '')
    rois = tag.rsplit('_rois-', 1)[1] if '_rois-' in tag else ''
    return r.get('detector', ''), rois, r.get('init_iters', 0), r['iters']


def _budget_name(budget: tuple) -> str:
    det_name, rois, init_iters, iters = budget
    rois = f' ({rois} RoIs)' if rois else ''
    return f"{det_name}{rois} {f'{init_iters}+' if init_iters else ''}{iters} it".strip()


def scenes_table(path: str) -> str:
    """Scene benchmarks (``seg_scenes.py`` / ``det_scenes.py`` results in ``path``): mean
    +- std over seeds per (start, scene set, labeled part, method), the seeds' own teacher
    values, and the pseudo-label health of the last quarter of training (kept share and
    precision of pseudo-pixels; pseudo-boxes per image and their precision)."""
    from benchmarks.det_scenes import run_name as det_run_name
    from benchmarks.harness import train_health
    from benchmarks.seg_scenes import method_label
    from benchmarks.seg_scenes import run_name as seg_run_name
    rows = [r for r in _read(path) if r.get('phase') == 'train']
    if not rows:
        return ''
    det = 'teacher_mAP' in rows[0]
    part = 'percent' if det else 'fraction'
    # a row is one (start, scene set, labeled part, method, budget) and seed
    rows = _latest(rows, lambda r: (r.get('init', 'random'), r['scenes'], r[part], method_label(r),
                                    _budget(r), r['seed']))
    main, second = ('teacher_mAP', 'teacher_AP50') if det else ('teacher_mIoU', None)
    hkeys = ('pb_per_img', 'pb_prec') if det else ('sel_frac', 'pl_acc')
    out = [f"| start | scenes | labeled | method | budget | teacher {'mAP' if det else 'mIoU'} | "
           "per seed | "
           f"{'teacher AP50' if det else 'teacher foreground or tail IoU'} | student "
           f"{'mAP' if det else 'mIoU'} | {'pseudo-boxes / img' if det else 'pseudo-pixels kept %'}"
           " | their precision % | s/iter |", '|---|---|---|---|---|---|---|---|---|---|---|---|']
    order = {'supervised': 0, 'fixed': 1, 'fixmatch': 1, 'fixmatch-classaware': 1.5,
             'classaware': 2, 'dssn': 2}
    groups = sorted({k[:5] for k in rows}, key=lambda k: (
        k[0], k[1], k[4], _part_size(k[2]), order.get(k[3].split(' ')[0], 9), k[3]))
    for key in groups:
        got = sorted((r for k, r in rows.items() if k[:5] == key), key=lambda r: r['seed'])
        if det:
            run = [det_run_name(r) for r in got]
            side = [r[second] for r in got]
        else:
            run = [seg_run_name(r) for r in got]
            side = [r['object_IoU'] if r['scenes'] == 'binary'
                    else None if None in r['tail_IoU'].values()
                    else statistics.fmean(r['tail_IoU'].values()) for r in got]
        health = [train_health(osp.join(path, n), keys=hkeys) for n in run]
        h0 = [h.get(hkeys[0]) for h in health]
        h1 = [None if h.get(hkeys[1]) is None else 100 * h[hkeys[1]] for h in health]
        if not det:
            h0 = [None if v is None else 100 * v for v in h0]
        per_seed = ' / '.join(f'{r[main]:.1f}' for r in got)
        speed = [r.get('s_per_iter') for r in got if r.get('s_per_iter')]
        init = key[0].split('://')[-1]
        budget = _budget_name(key[4])
        out.append(f"| {init} | {key[1]} | {key[2]} | {key[3]} | {budget} | "
                   f"{mean_std([r[main] for r in got])}"
                   f" | {per_seed} | {mean_std(side)} | "
                   f"{mean_std([r.get('student_mAP' if det else 'student_mIoU') for r in got])}"
                   f" | {mean_std(h0)} | {mean_std(h1)} | "
                   f"{statistics.median(speed) if speed else 0:.3f} |")
    return '\n'.join(out)


def gains_table(paths: list[str]) -> str:
    """Each semi-supervised method's gain over supervised training, paired by seed: for
    every (start, scene set, labeled part, method, budget) with a supervised row of the
    same start, set, part and budget (in any of ``paths``), the per-seed differences of
    the main teacher metric, their mean +- std, and the seed spread (std) of supervised
    alone. The issue's bar, a gain above twice the seed spread, is shown for both
    spreads: supervised's (how much a split moves the level) and the paired gains' own
    (how much a split moves the gain)."""
    every = [r for d in paths for r in _read(d) if r.get('phase') == 'train']
    tables = [_gains([r for r in every if ('teacher_mAP' in r) == det], det)
              for det in (False, True)]
    return '\n\n'.join(t for t in tables if t)


def _gains(rows: list[dict], det: bool) -> str:
    from benchmarks.harness import fmt
    from benchmarks.seg_scenes import method_label
    if not rows:
        return ''
    part, main = ('percent', 'teacher_mAP') if det else ('fraction', 'teacher_mIoU')

    rows = _latest(rows, lambda r: (r.get('init', 'random'), r['scenes'], r[part],
                                    method_label(r), _budget(r), r['seed']))
    sup = {(k[0], k[1], k[2], k[4], k[5]): r for k, r in rows.items() if k[3] == 'supervised'}
    out = [f"| start | scenes | labeled | method | budget | {main} gain per seed | "
           'gain mean +- std | '
           'supervised seed std | gain > 2 x supervised std | gain > 2 x gain std |',
           '|---|---|---|---|---|---|---|---|---|---|']
    groups = sorted({k[:5] for k in rows if k[3] != 'supervised'}, key=str)
    for key in groups:
        pairs = sorted((r['seed'], r[main] - sup[(*key[:3], key[4], r['seed'])][main])
                       for k, r in rows.items()
                       if k[:5] == key and (*key[:3], key[4], k[5]) in sup)
        if not pairs:
            continue
        gains = [g for _, g in pairs]
        base = [r[main] for k, r in sup.items() if k[:4] == (*key[:3], key[4])]
        mean = statistics.fmean(gains)
        g_std = statistics.stdev(gains) if len(gains) > 1 else None
        s_std = statistics.stdev(base) if len(base) > 1 else None
        name = _budget_name(key[4])
        verdict = [('-' if v is None else 'yes' if mean > 2 * v else 'no') for v in (s_std, g_std)]
        out.append(f"| {key[0].split('://')[-1]} | {key[1]} | {key[2]} | {key[3]} | {name} | "
                   + ' / '.join(f'{s}: {g:+.1f}' for s, g in pairs)
                   + f' | {mean_std(gains)} | {fmt(s_std)} | {verdict[0]} | {verdict[1]} |')
    return '\n'.join(out) if len(out) > 2 else ''


def wrn_usb_table(path: str) -> str:
    """ssvision's rows are re-read from their logs (validation iterations included)."""
    from benchmarks.wrn_vs_usb import ssvision_result
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
    p.add_argument('--scenes', nargs='*', default=[],
                   help='scene benchmark folders (seg_scenes.py / det_scenes.py --out-dir); '
                        'only their tables are printed')
    args = p.parse_args(argv)
    if args.scenes:
        for d in args.scenes:
            print(f'\n{d}:\n' + scenes_table(d))
        gains = gains_table(args.scenes)
        if gains:
            print('\ngain over supervised, paired by seed (all folders):\n' + gains)
        return
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
