"""The drift alarm's signal on recorded runs: does it rise where the teacher got worse?

    python -m benchmarks.drift_signal WORK_DIR [WORK_DIR ...] [--classes 10]

For each finished run (a ``tools/train.py`` work dir whose ``vis_data/scalars.json``
holds the ``pl_n_<c>`` and ``teacher_conf`` health figures) this prints, per logged
iteration: the total variation ``d`` between the teacher's class distribution on the
unlabeled batches (the log's window mean of ``pl_n_<c>``) and the labeled prior (the
balanced split of these benchmarks unless ``--prior`` gives the shares), the teacher's
mean confidence, the hidden-label accuracy of its pseudo-labels (``pl_acc_all``, logged
for built-in data, never used by the alarm), the validation accuracy where one was
taken, and where :class:`~ssvision.engine.hooks.HealthAlarmHook`'s drift rule (its
defaults) would have fired replayed on these windows.
"""

from __future__ import annotations

import argparse
import json
import os.path as osp

import torch

from benchmarks.harness import record_row, this_command
from ssvision.engine.hooks import HealthAlarmHook
from ssvision.visualization.selection_plot import find_scalars_files


def records(work_dir: str) -> list[dict]:
    """Every record of a run's ``scalars.json`` files (training and validation), in
    timestamp order (:func:`~ssvision.visualization.selection_plot.find_scalars_files`:
    a work dir, a run's log dir or the file itself)."""
    rows = []
    for path in find_scalars_files(work_dir):
        with open(path) as f:
            rows += [json.loads(line) for line in f if line.strip()]
    return rows


def replay(rows: list[dict], prior: list[float], interval_rows: int = 2) -> list[dict]:
    """Per training row: d, confidence, pseudo-label accuracy, the validation accuracy
    after it, and whether the drift rule fires on the window that ends there (windows
    of ``interval_rows`` log rows: 2 x 25 iterations = the hook's default 50)."""
    hook = HealthAlarmHook()
    hook._labeled_counts = torch.tensor([round(p * 1000) for p in prior])
    out, window = [], []
    for r in rows:
        if 'teacher/top1' in r and out:
            out[-1]['val'] = r['teacher/top1']
        counts = {int(k[5:]): v for k, v in r.items() if k.startswith('pl_n_')}
        if not counts or 'teacher_conf' not in r:
            continue
        window.append((counts, r['teacher_conf']))
        total = sum(counts.values())
        q = torch.tensor([counts.get(c, 0.0) / total for c in range(len(prior))])
        d = 0.5 * float((q - torch.tensor(prior)).abs().sum())
        row = dict(iter=r.get('iter', r.get('step')), d=d, conf=r['teacher_conf'],
                   pl_acc=r.get('pl_acc_all'), fired=False)
        if len(window) == interval_rows:
            merged = {c: sum(w[0].get(c, 0.0) for w in window) * 25 for c in counts}
            conf = sum(w[1] for w in window) / len(window)
            row['fired'] = hook.check_drift(merged, conf)[0]
            window = []
        out.append(row)
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('work_dirs', nargs='+')
    p.add_argument('--classes', type=int, default=10)
    p.add_argument('--prior', type=float, nargs='+', default=None,
                   help='labeled class shares (default: balanced)')
    args = p.parse_args(argv)
    prior = args.prior or [1.0 / args.classes] * args.classes
    for work_dir in args.work_dirs:
        rows = replay(records(work_dir), prior)
        fired = [r['iter'] for r in rows if r['fired']]
        print(f'\n{work_dir}: drift alarm at {fired or "never"}')
        print('| iter | d | teacher conf | pl acc (hidden) | teacher val |')
        print('|---|---|---|---|---|')
        for r in rows:
            acc = '' if r['pl_acc'] is None else f"{100 * r['pl_acc']:.1f}"
            val = f"{r['val']:.1f}" if 'val' in r else ''
            mark = ' (alarm)' if r['fired'] else ''
            print(f"| {r['iter']}{mark} | {r['d']:.3f} | {r['conf']:.3f} | {acc} | {val} |")
            for metric, value in (('d', r['d']), ('teacher confidence', r['conf'])):
                record_row('drift_signal', osp.basename(osp.normpath(work_dir)),
                           f"iteration {r['iter']}{mark}", metric, value,
                           command=this_command('drift_signal'))


if __name__ == '__main__':
    main()
