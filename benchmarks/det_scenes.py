"""Semi-supervised detection on the built-in scenes: supervised-only vs fixed-threshold
mean teacher vs class-aware mean teacher.

    python benchmarks/det_scenes.py [--scenes balanced lt10[:10]] [--percents 5 10]
        [--methods supervised fixed classaware] [--iters 2000] [--parallel 1]
        [--workers 2] [--timing-iters 0] [--out-dir work_dirs/bench_det]

Scenes (``tools/prepare_data.py --scenes-only --det-scenes``, run here if missing):
Fashion-MNIST items on real photos, 128x128, 10 classes, exact boxes, COCO json;
``balanced`` or long-tailed ``lt10`` training scenes, one balanced validation set of 150
scenes. Each run is ``tools/train.py`` on the Faster R-CNN (torchvision ResNet-18 FPN,
random init) config of the method with the split of the given percent, same budget.
The row holds the last validation's teacher / student COCO mAP and AP50 and the
teacher's AP of the three tail classes (Sneaker, Bag, Ankle boot: the rarest in
``lt10``). ``--parallel`` / ``--timing-iters`` as in ``seg_scenes.py``.
"""

from __future__ import annotations

import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from label_efficiency import fmt, print_timing, run_jobs, scene_parts, schedule_options  # noqa: E402

METHODS = {
    'supervised': 'configs/semi_det/supervised_fasterrcnn-r18_2k_detscenes-10pc.py',
    'fixed': 'configs/semi_det/fixed_fasterrcnn-r18_2k_detscenes-10pc.py',
    'classaware': 'configs/semi_det/classaware_fasterrcnn-r18_2k_detscenes-10pc.py',
    'classaware_retinanet': 'configs/semi_det/classaware_retinanet-r18_2k_detscenes-10pc.py',
}
SCENES = {'balanced': 'data/scenes/det_fashion', 'lt10': 'data/scenes/det_fashion_lt10'}
VAL_ANN = 'data/scenes/det_fashion/val/annotations.json'
TAIL_CLASSES = ('Sneaker', 'Bag', 'Ankle_boot')


def data_options(scenes: str, percent: str, workers: int) -> list[str]:
    root = SCENES[scenes]
    opts = [f'train_dataloader.num_workers={workers}']
    for part, suffix in (('labeled', ''), ('unlabeled', '-unlabeled')):
        key = f'train_dataloader.dataset.{part}'
        opts += [f'{key}.ann_file={root}/splits/annotations.1@{percent}{suffix}.json',
                 f'{key}.img_dir={root}/train/images']
    return opts + [f'val_dataloader.dataset.ann_file={VAL_ANN}',
                   f'val_evaluator.ann_file={VAL_ANN}']


def det_schedule(iters: int, seed: int, val_every: int, log_every: int) -> list[str]:
    """The detection schedule (warm-up then cosine) stretched to ``iters``."""
    warm = min(200, max(iters // 10, 1))
    opts = [o for o in schedule_options(iters, seed, val_every, log_every)
            if not o.startswith('param_scheduler')]
    return opts + [f'param_scheduler.0.end={warm}', f'param_scheduler.1.begin={warm}',
                   f'param_scheduler.1.end={iters}', f'param_scheduler.1.T_max={iters - warm}',
                   f'model.semi_train_cfg.burn_in_iters={warm}']


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--scenes', nargs='+', default=['balanced'],
                   help=f'of {list(SCENES)}; NAME:PERCENT limits one to one percent')
    p.add_argument('--percents', nargs='+', default=['5', '10'])
    p.add_argument('--methods', nargs='+', default=['supervised', 'fixed', 'classaware'],
                   choices=list(METHODS))
    p.add_argument('--iters', type=int, default=2000)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--parallel', type=int, default=1)
    p.add_argument('--workers', type=int, default=2)
    p.add_argument('--timing-iters', type=int, default=0)
    p.add_argument('--out-dir', default='work_dirs/bench_det')
    args = p.parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    metrics = dict(teacher_mAP='teacher/mAP', teacher_AP50='teacher/AP50',
                   student_mAP='student/mAP',
                   tail_AP={c: f'teacher/AP_{c}' for c in TAIL_CLASSES})
    jobs = []
    for scenes, percent in scene_parts(args.scenes, SCENES, args.percents,
                                       ['--scenes-only', '--det-scenes']):
        for method in args.methods:
            name = f'{method}_{scenes}_{percent}pc_seed{args.seed}_{args.iters}it'
            opts = data_options(scenes, percent, args.workers) + det_schedule(
                args.iters, args.seed, val_every=args.iters, log_every=50)
            if method == 'supervised':
                opts = [o for o in opts if not o.startswith('model.semi_train_cfg')]
            jobs.append((name, METHODS[method], opts,
                         dict(phase='train', scenes=scenes, percent=percent, method=method,
                              iters=args.iters, seed=args.seed, parallel=args.parallel)))
    if args.timing_iters:
        for method in args.methods:
            opts = data_options('balanced', args.percents[-1], args.workers) + det_schedule(
                args.timing_iters, args.seed, val_every=args.timing_iters + 1,
                log_every=min(10, args.timing_iters))
            opts = [o for o in opts if 'burn_in' not in o] + (
                [] if method == 'supervised' else ['model.semi_train_cfg.burn_in_iters=0'])
            jobs.append((f'timing_{method}_{args.timing_iters}it', METHODS[method], opts,
                         dict(phase='timing', method=method, iters=args.timing_iters)))
    rows = run_jobs(jobs, args.out_dir, args.parallel, metrics, 'teacher/mAP')

    print('\n| scenes | labeled | method | teacher mAP | teacher AP50 | student mAP | tail AP '
          f'({" / ".join(TAIL_CLASSES)}) | s/iter | peak MB |')
    print('|---|---|---|---|---|---|---|---|---|')
    for r in rows:
        if r['phase'] != 'train':
            continue
        tail = ' / '.join(fmt(v) for v in r['tail_AP'].values())
        print(f"| {r['scenes']} | {r['percent']} % | {r['method']} | {fmt(r['teacher_mAP'])} | "
              f"{fmt(r['teacher_AP50'])} | {fmt(r['student_mAP'])} | {tail} | "
              f"{fmt(r['s_per_iter'], '.3f')} | {fmt(r['peak_mem_mb'], '.0f')} |")
    print_timing(rows)


if __name__ == '__main__':
    main()
