"""The mmdetection plug-in on the built-in detection scenes: a plain mmdetection RetinaNet
config wrapped in ``SsvSemiDetector``, fixed 0.9 threshold vs class-aware selection.

    python -m benchmarks.mmdet_plugin [--percents 10] [--methods fixed classaware]
        [--iters 300] [--init-iters 0] [--parallel 1] [--out-dir work_dirs/bench_mmdet]

Needs mmdet 3.x + a full mmcv. Each run is ``tools/train.py`` on
``configs/mmdet/ssv-retinanet_r18_fpn_2k_detscenes-10pc.py`` (mmdetection's datasets,
pipelines, sampler, MeanTeacherHook, TeacherStudentValLoop), same budget; the row holds
mmdetection's CocoMetric teacher / student bbox mAP and the training-time pseudo-box
health (boxes per image, precision against the known boxes of the unlabeled scenes).

``--init-iters N`` first trains the plain mmdetection RetinaNet of that config (no
wrapper) on the labeled split alone for N iterations, the way an mmdetection user starts
from a supervised checkpoint; every method then loads that plain checkpoint into
teacher and student (``load_from``) and trains ``--iters`` more (mmdetection's
MeanTeacherHook then copies the student into the teacher at the start, as it always
does). A finished init run is reused.
"""

from __future__ import annotations

import argparse
import os
import os.path as osp
import subprocess
import sys

from benchmarks.harness import REPO, fmt, record_row, run_jobs, this_command, train_health

CONFIG = 'configs/mmdet/ssv-retinanet_r18_fpn_2k_detscenes-10pc.py'
SELECTORS = {
    'fixed': "type='FixedScoreBoxSelector', threshold=0.9",
    'classaware': "type='ClassAwareBoxSelector', mode='prior', num_classes=10, ratio=0.5, "
                  "floor=0.05, ceil=0.9, min_score=0.01",
}
ROOT = 'data/scenes/det_fashion'


def supervised_config(percent: str):
    """The example config's plain detector on the labeled split alone (no wrapper, no
    unlabeled images, mmdetection's own loops), 4 images per step: the labeled half of
    the semi-supervised batch."""
    from mmengine.config import Config, ConfigDict
    cfg = Config.fromfile(osp.join(REPO, CONFIG))
    labeled = cfg.train_dataloader.dataset.datasets[0]
    labeled.ann_file = f'{ROOT}/splits/annotations.1@{percent}.json'
    # the labeled pipeline without its one-branch wrapper
    labeled.pipeline = cfg.sup_pipeline[:-1] + [dict(type='PackDetInputs')]
    cfg.model = ConfigDict(cfg.detector)
    cfg.train_dataloader = ConfigDict(
        batch_size=cfg.batch_size // 2, num_workers=cfg.train_dataloader.num_workers,
        persistent_workers=True, sampler=dict(type='DefaultSampler', shuffle=True),
        dataset=labeled)
    cfg.val_cfg = ConfigDict(type='ValLoop')
    cfg.custom_hooks = [ConfigDict(type='ssvision.ResumeStateHook')]
    return cfg


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--percents', nargs='+', default=['10'])
    p.add_argument('--methods', nargs='+', default=list(SELECTORS), choices=list(SELECTORS))
    p.add_argument('--iters', type=int, default=300)
    p.add_argument('--init-iters', type=int, default=0,
                   help='supervised plain-mmdet run per split that every method loads')
    p.add_argument('--parallel', type=int, default=1)
    p.add_argument('--out-dir', default='work_dirs/bench_mmdet')
    args = p.parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    if not osp.exists(osp.join(REPO, ROOT, 'splits')):
        subprocess.run([sys.executable, osp.join(REPO, 'tools/prepare_data.py'),
                        '--scenes-only', '--det-scenes'], check=True, cwd=REPO)
    starts = {}
    if args.init_iters:
        init_jobs = []
        for percent in args.percents:
            name = f'mmdet-retinanet_init_{percent}pc_{args.init_iters}it'
            starts[percent] = osp.abspath(osp.join(args.out_dir, name,
                                                   f'iter_{args.init_iters}.pth'))
            if osp.exists(starts[percent]):
                print(f'reusing {starts[percent]}')
                continue
            config = osp.abspath(osp.join(args.out_dir, f'{name}.py'))
            supervised_config(percent).dump(config)
            warm = min(100, max(args.init_iters // 10, 1))
            opts = [f'train_cfg.max_iters={args.init_iters}',
                    f'train_cfg.val_interval={args.init_iters}',
                    f'default_hooks.checkpoint.interval={args.init_iters}',
                    'default_hooks.logger.interval=25', f'param_scheduler.0.end={warm}']
            init_jobs.append((name, config, opts, dict(phase='init', percent=percent,
                                                       iters=args.init_iters)))
        run_jobs(init_jobs, args.out_dir, max(1, min(args.parallel, len(init_jobs))),
                 dict(mAP='coco/bbox_mAP'), 'coco/bbox_mAP')
    jobs = []
    for percent in args.percents:
        for method in args.methods:
            name = f'mmdet-retinanet_{method}_{percent}pc_{args.init_iters}+{args.iters}it'
            warm = 0 if args.init_iters else min(200, max(args.iters // 10, 1))
            # a derived config per selector (cfg-options cannot replace a whole dict)
            config = osp.abspath(osp.join(args.out_dir, f'{name}.py'))
            with open(config, 'w') as f:
                f.write(f"_base_ = ['{osp.join(REPO, CONFIG)}']\n"
                        f"model = dict(semi_train_cfg=dict(selector=dict(_delete_=True, "
                        f"{SELECTORS[method]})))\n")
            opts = [f'train_cfg.max_iters={args.iters}', f'train_cfg.val_interval={args.iters}',
                    f'default_hooks.checkpoint.interval={args.iters}',
                    'default_hooks.logger.interval=25', f'param_scheduler.0.end={max(warm, 1)}',
                    f'train_dataloader.dataset.datasets.0.ann_file='
                    f'{ROOT}/splits/annotations.1@{percent}.json',
                    f'train_dataloader.dataset.datasets.1.ann_file='
                    f'{ROOT}/splits/annotations.1@{percent}-unlabeled.json']
            if args.init_iters:  # the plain checkpoint, into teacher and student
                opts += [f'load_from={starts[percent]}', 'param_scheduler.0.start_factor=1.0']
            jobs.append((name, config, opts, dict(percent=percent, method=method,
                                                  init_iters=args.init_iters,
                                                  iters=args.iters)))
    metrics = dict(teacher_mAP='teacher/coco/bbox_mAP', teacher_AP50='teacher/coco/bbox_mAP_50',
                   student_mAP='student/coco/bbox_mAP')
    rows = run_jobs(jobs, args.out_dir, args.parallel, metrics, 'teacher/coco/bbox_mAP')
    print('\n| labeled | selector | teacher mAP | teacher AP50 | student mAP | pseudo-boxes / '
          'image | pseudo-box precision | s/iter |')
    print('|---|---|---|---|---|---|---|---|')
    for r in rows:
        name = (f"mmdet-retinanet_{r['method']}_{r['percent']}pc_"
                f"{r['init_iters']}+{r['iters']}it")
        health = train_health(osp.join(args.out_dir, name), last=0.5)
        mapv = [r[k] * 100 if r[k] is not None else None
                for k in ('teacher_mAP', 'teacher_AP50', 'student_mAP')]
        cells = ' | '.join(fmt(v) for v in mapv)
        print(f"| {r['percent']} % | {r['method']} | {cells} | "
              f"{fmt(health.get('pb_per_img'), '.2f')} | {fmt(health.get('pb_prec'), '.2f')} | "
              f"{fmt(r['s_per_iter'], '.2f')} |")
        task = f"{r['percent']} % labeled, {r['init_iters']}+{r['iters']} it"
        for metric, value in zip(('teacher mAP', 'teacher AP50', 'student mAP'), mapv):
            record_row('mmdet_plugin', task, r['method'], metric, value,
                       command=this_command('mmdet_plugin'))
        record_row('mmdet_plugin', task, r['method'], 'pseudo-boxes / image',
                   health.get('pb_per_img'), command=this_command('mmdet_plugin'))


if __name__ == '__main__':
    main()
