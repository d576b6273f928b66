"""The mmdetection plug-in on the built-in detection scenes: a plain mmdetection RetinaNet
config wrapped in ``SsvSemiDetector``, fixed 0.9 threshold vs class-aware selection.

    python benchmarks/mmdet_plugin.py [--percents 10] [--methods fixed classaware]
        [--iters 300] [--parallel 1] [--out-dir work_dirs/bench_mmdet]

Needs mmdet 3.x + a full mmcv. Each run is ``tools/train.py`` on
``configs/mmdet/ssv-retinanet_r18_fpn_2k_detscenes-10pc.py`` (mmdetection's datasets,
pipelines, sampler, MeanTeacherHook, TeacherStudentValLoop), same budget; the row holds
mmdetection's CocoMetric teacher / student bbox mAP and the training-time pseudo-box
health (boxes per image, precision against the known boxes of the unlabeled scenes).
"""

from __future__ import annotations

import argparse
import os
import os.path as osp
import subprocess
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from label_efficiency import REPO, _records, fmt, run_jobs  # noqa: E402

CONFIG = 'configs/mmdet/ssv-retinanet_r18_fpn_2k_detscenes-10pc.py'
SELECTORS = {
    'fixed': "type='FixedScoreBoxSelector', threshold=0.9",
    'classaware': "type='ClassAwareBoxSelector', num_classes=10, ratio=0.3, floor=0.05, "
                  "ceil=0.9, min_score=0.01",
}
ROOT = 'data/scenes/det_fashion'


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--percents', nargs='+', default=['10'])
    p.add_argument('--methods', nargs='+', default=list(SELECTORS), choices=list(SELECTORS))
    p.add_argument('--iters', type=int, default=300)
    p.add_argument('--parallel', type=int, default=1)
    p.add_argument('--out-dir', default='work_dirs/bench_mmdet')
    args = p.parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    if not osp.exists(osp.join(REPO, ROOT, 'splits')):
        subprocess.run([sys.executable, osp.join(REPO, 'tools/prepare_data.py'),
                        '--scenes-only', '--det-scenes'], check=True, cwd=REPO)
    jobs = []
    for percent in args.percents:
        for method in args.methods:
            name = f'mmdet-retinanet_{method}_{percent}pc_{args.iters}it'
            warm = min(200, max(args.iters // 10, 1))
            # a derived config per selector (cfg-options cannot replace a whole dict)
            config = osp.abspath(osp.join(args.out_dir, f'{name}.py'))
            with open(config, 'w') as f:
                f.write(f"_base_ = ['{osp.join(REPO, CONFIG)}']\n"
                        f"model = dict(semi_train_cfg=dict(selector=dict(_delete_=True, "
                        f"{SELECTORS[method]})))\n")
            opts = [f'train_cfg.max_iters={args.iters}', f'train_cfg.val_interval={args.iters}',
                    f'default_hooks.checkpoint.interval={args.iters}',
                    'default_hooks.logger.interval=25', f'param_scheduler.0.end={warm}',
                    f'train_dataloader.dataset.datasets.0.ann_file='
                    f'{ROOT}/splits/annotations.1@{percent}.json',
                    f'train_dataloader.dataset.datasets.1.ann_file='
                    f'{ROOT}/splits/annotations.1@{percent}-unlabeled.json']
            jobs.append((name, config, opts, dict(percent=percent, method=method,
                                                  iters=args.iters)))
    metrics = dict(teacher_mAP='teacher/coco/bbox_mAP', teacher_AP50='teacher/coco/bbox_mAP_50',
                   student_mAP='student/coco/bbox_mAP')
    rows = run_jobs(jobs, args.out_dir, args.parallel, metrics, 'teacher/coco/bbox_mAP')
    print('\n| labeled | selector | teacher mAP | teacher AP50 | student mAP | pseudo-boxes / '
          'image | pseudo-box precision | s/iter |')
    print('|---|---|---|---|---|---|---|---|')
    for r in rows:
        name = f"mmdet-retinanet_{r['method']}_{r['percent']}pc_{r['iters']}it"
        recs = [x for x in _records(osp.join(args.out_dir, name)) if 'pb_per_img' in x]
        late = recs[len(recs) // 2:]
        pb = sum(x['pb_per_img'] for x in late) / max(len(late), 1)
        prec = [x['pb_prec'] for x in late if 'pb_prec' in x]
        prec_txt = f'{sum(prec) / len(prec):.2f}' if prec else '-'
        mapv = [r[k] * 100 if r[k] is not None else None
                for k in ('teacher_mAP', 'teacher_AP50', 'student_mAP')]
        cells = ' | '.join(fmt(v) for v in mapv)
        print(f"| {r['percent']} % | {r['method']} | {cells} | {pb:.2f} | {prec_txt} | "
              f"{fmt(r['s_per_iter'], '.2f')} |")


if __name__ == '__main__':
    main()
