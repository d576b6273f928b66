"""Semi-supervised detection on the built-in scenes: supervised-only vs fixed-threshold
mean teacher vs class-aware mean teacher.

    python -m benchmarks.det_scenes [--detector fasterrcnn|retinanet]
        [--scenes balanced lt10[:10]] [--percents 5 10]
        [--methods supervised fixed classaware] [--iters 2000] [--init-iters 0]
        [--parallel 1] [--workers 2] [--timing-iters 0] [--out-dir work_dirs/bench_det]
        [--init zoo://resnet18_items-on-photos]      # a pretrained backbone start
        [--rois scenes]                               # Faster R-CNN: RoI budget for 128 px
        [--seed 0]                                    # split annotations.<seed + 1>@P
        [--variant NAME KEY=VALUE ...]                # a recipe change, named in the rows

Scenes (``tools/prepare_data.py --scenes-only --det-scenes``, run here if missing):
Fashion-MNIST items on real photos, 128x128, 10 classes, exact boxes, COCO json;
``balanced`` or long-tailed ``lt10`` training scenes, one balanced validation set of 150
scenes. Each run is ``tools/train.py`` on the config of the method for ``--detector``
(torchvision ResNet-18 FPN, random init, or the backbone of ``--init``) with the split of
the given percent (mmdetection's ``annotations.<fold>@<percent>`` files; fold = seed + 1),
same budget.

``--init-iters N`` adds the usual burn-in stage of semi-supervised detection as one
shared run per split: N supervised iterations (warm-up, then a constant learning rate),
whose checkpoint every method then starts from (``load_from``) for ``--iters`` more
iterations with a cosine decay and no further burn-in (the EMA teacher's momentum ramps
up from 0 again, so the teacher restarts from the loaded student and follows it closely
over the first ~100 iterations). Every method thus gets the same
N + iters budget from the same start, and the costly burn-in is paid once per split, not
once per method. A finished init run (its last checkpoint exists) is reused.

The row holds the last validation's teacher / student COCO mAP and AP50 (%), the
teacher's AP of the three tail classes (Sneaker, Bag, Ankle boot: the rarest in
``lt10``), the pseudo-box health averaged over the last quarter of training (boxes kept
per unlabeled image and their precision against the hidden true boxes), seconds per
iteration (median of the logged windows, under the parallel load) and peak memory (CUDA
when run there, else the process's peak resident memory). ``--parallel`` /
``--timing-iters`` as in ``seg_scenes.py``.

``--rois scenes`` (Faster R-CNN only) sizes the RoI budget for 128-px scenes with about
four objects instead of torchvision's COCO defaults (2,000 RPN proposals and 512 sampled
RoIs per training image, 1,000 proposals per test image): 300 proposals kept after the
RPN's NMS in training and test, 128 sampled RoIs per image (a quarter positive, as
before: about 32 for four objects). The box head then sees a quarter of the RoIs, which
is what makes the detector trainable on a CPU; the run names carry ``_rois-scenes``.

``--variant NAME KEY=VALUE ...`` (as in ``seg_scenes.py``) adds the options to every
method's run (not to the shared burn-in run of ``--init-iters``) and names them: run
names end in ``_v-NAME``, rows carry ``variant`` and the tables show the method as
``classaware (NAME)``, paired with the plain supervised run of the same start, budget
and seed (run the variant with the semi-supervised methods only), e.g.
``--methods classaware --variant ignore02 model.semi_train_cfg.ignore_score=0.2``.
"""

from __future__ import annotations

import argparse
import os
import os.path as osp

from benchmarks.harness import (
    add_run_arguments,
    add_variant_argument,
    check_variant,
    fmt,
    parse_variant,
    print_timing,
    record_row,
    run_jobs,
    scene_parts,
    schedule_options,
    this_command,
    train_health,
)

DETECTORS = ('fasterrcnn', 'retinanet')
METHOD_NAMES = ('supervised', 'fixed', 'classaware', 'classaware-quantile')
SCENES = {'balanced': 'data/scenes/det_fashion', 'lt10': 'data/scenes/det_fashion_lt10'}
VAL_ANN = 'data/scenes/det_fashion/val/annotations.json'
TAIL_CLASSES = ('Sneaker', 'Bag', 'Ankle_boot')
# Faster R-CNN's RoI budget (torchvision keyword arguments) per --rois choice
ROI_BUDGETS = {
    'torchvision': {},
    'scenes': dict(rpn_pre_nms_top_n_train=1000, rpn_post_nms_top_n_train=300,
                   rpn_pre_nms_top_n_test=1000, rpn_post_nms_top_n_test=300,
                   box_batch_size_per_image=128),
}


def config(method: str, detector: str) -> str:
    return f'configs/semi_det/{method}_{detector}-r18_2k_detscenes-10pc.py'


def run_name(row: dict) -> str:
    """The work-dir name of a ``train`` row."""
    return (f"{row['method']}_{row.get('detector', 'fasterrcnn')}_{row['scenes']}_"
            f"{row['percent']}pc_seed{row['seed']}_{row.get('init_iters', 0)}+{row['iters']}it"
            f"{row.get('tag', '')}" + (f"_v-{row['variant']}" if row.get('variant') else ''))


def data_options(scenes: str, percent: str, workers: int, seed: int = 0) -> list[str]:
    root = SCENES[scenes]
    opts = [f'train_dataloader.num_workers={workers}']
    for part, suffix in (('labeled', ''), ('unlabeled', '-unlabeled')):
        key = f'train_dataloader.dataset.{part}'
        fold = seed + 1
        opts += [f'{key}.ann_file={root}/splits/annotations.{fold}@{percent}{suffix}.json',
                 f'{key}.img_dir={root}/train/images']
    return opts + [f'val_dataloader.dataset.ann_file={VAL_ANN}',
                   f'val_evaluator.ann_file={VAL_ANN}']


def det_schedule(iters: int, seed: int, val_every: int, log_every: int,
                 warm: int | None = None, constant: bool = False) -> list[str]:
    """The detection schedule stretched to ``iters``: ``warm`` iterations of linear
    warm-up (and of supervised burn-in), then a cosine decay to 0.1 of the lr, or a
    constant lr (``constant``). ``warm=0``: neither warm-up nor burn-in."""
    warm = min(200, max(iters // 10, 1)) if warm is None else warm
    opts = [o for o in schedule_options(iters, seed, val_every, log_every)
            if not o.startswith('param_scheduler')]
    opts += [f'param_scheduler.0.end={max(warm, 1)}', f'param_scheduler.1.begin={max(warm, 1)}',
             f'param_scheduler.1.end={iters}', f'param_scheduler.1.T_max={iters - max(warm, 1)}',
             f'model.semi_train_cfg.burn_in_iters={warm}']
    if warm == 0:
        opts.append('param_scheduler.0.start_factor=1.0')
    if constant:
        opts.append('param_scheduler.1.eta_min_ratio=1.0')
    return opts


def init_options(init: str | None) -> list[str]:
    """The backbone checkpoint option of ``--init`` (none from random init)."""
    return [f'model.detector.backbone_checkpoint={init}'] if init else []


def roi_options(rois: str) -> list[str]:
    """The detector options of the ``--rois`` budget (none for torchvision's)."""
    return [f'model.detector.{k}={v}' for k, v in ROI_BUDGETS[rois].items()]


def train_options(method: str, scenes: str, percent: str, seed: int, iters: int,
                  workers: int, init: str | None = None, rois: str = 'torchvision',
                  start: str | None = None) -> list[str]:
    """The cfg-options of one method's run (``config(method, detector)``): the split of
    ``seed``, the schedule of ``iters``, the backbone of ``init`` or the checkpoint
    ``start`` of a shared burn-in run, and the RoI budget ``rois``. The zoo's detection
    entries record these options; a test keeps the two equal."""
    opts = data_options(scenes, percent, workers, seed) + det_schedule(
        iters, seed, val_every=iters, log_every=50, warm=0 if start else None)
    opts += [f'load_from={start}'] if start else init_options(init)
    opts += roi_options(rois)
    if method == 'supervised':
        opts = [o for o in opts if not o.startswith('model.semi_train_cfg')]
    return opts


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--detector', default='fasterrcnn', choices=DETECTORS)
    p.add_argument('--scenes', nargs='+', default=['balanced'],
                   help=f'of {list(SCENES)}; NAME:PERCENT limits one to one percent')
    p.add_argument('--percents', nargs='+', default=['5', '10'])
    p.add_argument('--methods', nargs='+', default=list(METHOD_NAMES[:3]), choices=METHOD_NAMES,
                   help='classaware-quantile: the quantile rule (RetinaNet only)')
    p.add_argument('--iters', type=int, default=2000)
    p.add_argument('--init-iters', type=int, default=0,
                   help='shared supervised burn-in run per split that every method starts from')
    p.add_argument('--init', default=None,
                   help='backbone checkpoint source (model.detector.backbone_checkpoint), '
                        'e.g. zoo://resnet18_items-on-photos; default: random init')
    p.add_argument('--rois', default='torchvision', choices=list(ROI_BUDGETS),
                   help="Faster R-CNN's RoI budget: torchvision's defaults, or one sized "
                        'for 128-px scenes')
    add_variant_argument(p, 'ignore02 model.semi_train_cfg.ignore_score=0.2')
    add_run_arguments(p, 'work_dirs/bench_det')
    return p


def main(argv=None) -> None:
    p = parser()
    args = p.parse_args(argv)
    if args.rois != 'torchvision' and args.detector != 'fasterrcnn':
        p.error('--rois applies to --detector fasterrcnn only')
    variant, variant_opts = parse_variant(p, args)
    if variant is not None and args.timing_iters:
        p.error('--variant with --timing-iters: time the variant in its own training runs')
    init_opts, roi_opts = init_options(args.init), roi_options(args.rois)
    tag = '_' + args.init.split('://')[-1].replace('/', '_') if args.init else ''
    if args.rois != 'torchvision':
        tag += f'_rois-{args.rois}'
    os.makedirs(args.out_dir, exist_ok=True)
    metrics = dict(teacher_mAP='teacher/mAP', teacher_AP50='teacher/AP50',
                   student_mAP='student/mAP',
                   tail_AP={c: f'teacher/AP_{c}' for c in TAIL_CLASSES})
    parts = scene_parts(args.scenes, SCENES, args.percents, ['--scenes-only', '--det-scenes'],
                        split_file=lambda s, p: f'{SCENES[s]}/splits/annotations.'
                                                f'{args.seed + 1}@{p}.json')
    det = args.detector
    starts = {}
    if args.init_iters:
        init_jobs = []
        for scenes, percent in parts:
            name = f'init_{det}_{scenes}_{percent}pc_seed{args.seed}_{args.init_iters}it{tag}'
            ckpt = osp.abspath(osp.join(args.out_dir, name, f'iter_{args.init_iters}.pth'))
            starts[scenes, percent] = ckpt
            if osp.exists(ckpt):
                print(f'reusing {ckpt}')
                continue
            opts = data_options(scenes, percent, args.workers, args.seed) + det_schedule(
                args.init_iters, args.seed, val_every=args.init_iters, log_every=50,
                constant=True) + init_opts + roi_opts
            init_jobs.append((name, config('supervised', det),
                              [o for o in opts if not o.startswith('model.semi_train_cfg')],
                              dict(phase='init', scenes=scenes, percent=percent,
                                   iters=args.init_iters, seed=args.seed)))
        run_jobs(init_jobs, args.out_dir, max(1, min(args.parallel, len(init_jobs))), metrics,
                 'teacher/mAP')
    jobs = []
    for scenes, percent in parts:
        for method in args.methods:
            row = dict(phase='train', detector=det, scenes=scenes, percent=percent,
                       method=method, init_iters=args.init_iters, iters=args.iters,
                       seed=args.seed, parallel=args.parallel, init=args.init or 'random',
                       tag=tag, fold=args.seed + 1)
            if variant:
                row.update(variant=variant, variant_options=variant_opts)
            name = run_name(row)
            if variant:
                check_variant(p, osp.join(args.out_dir, name), variant_opts)
            opts = train_options(method, scenes, percent, args.seed, args.iters, args.workers,
                                 args.init, args.rois, starts.get((scenes, percent)))
            opts += variant_opts
            jobs.append((name, config(method, det), opts, row))
    if args.timing_iters:
        for method in args.methods:
            opts = data_options('balanced', args.percents[-1], args.workers,
                                args.seed) + init_opts + roi_opts + det_schedule(
                args.timing_iters, args.seed, val_every=args.timing_iters + 1,
                log_every=min(10, args.timing_iters))
            opts = [o for o in opts if 'burn_in' not in o] + (
                [] if method == 'supervised' else ['model.semi_train_cfg.burn_in_iters=0'])
            jobs.append((f'timing_{method}_{det}_{args.timing_iters}it{tag}', config(method, det),
                         opts, dict(phase='timing', method=method, iters=args.timing_iters)))
    rows = run_jobs(jobs, args.out_dir, args.parallel, metrics, 'teacher/mAP')
    print(f'\n{det}, {args.init_iters} shared supervised + {args.iters} iterations per method')
    print_table(rows, args.out_dir)
    print_timing(rows)


def print_table(rows: list[dict], out_dir: str) -> None:
    """The markdown table of the ``train`` rows (COCO figures are in % already)."""
    print('| scenes | labeled | method | teacher mAP | teacher AP50 | student mAP | tail AP '
          f'({" / ".join(TAIL_CLASSES)}) | pseudo-boxes / img | pseudo-box precision % | '
          's/iter | peak MB |')
    print('|---|---|---|---|---|---|---|---|---|---|---|')
    for r in rows:
        if r['phase'] != 'train':
            continue
        r = dict(r, **train_health(osp.join(out_dir, run_name(r))))
        tail = ' / '.join(fmt(v) for v in r['tail_AP'].values())
        mem = r['peak_mem_mb'] if r.get('peak_mem_mb') is not None else r.get('peak_rss_mb')
        prec = None if r.get('pb_prec') is None else 100 * r['pb_prec']
        print(f"| {r['scenes']} | {r['percent']} % | {r['method']} | {fmt(r['teacher_mAP'])} | "
              f"{fmt(r['teacher_AP50'])} | {fmt(r['student_mAP'])} | {tail} | "
              f"{fmt(r.get('pb_per_img'), '.2f')} | {fmt(prec)} | "
              f"{fmt(r['s_per_iter'], '.3f')} | {fmt(mem, '.0f')} |")
        task = (f"{r['detector']}, {r['scenes']} scenes, {r['percent']} % labeled, "
                f"{r['init_iters']}+{r['iters']} it, {r['init'].split('://')[-1]} start")
        method = r['method'] + (f" ({r['variant']})" if r.get('variant') else '')
        for metric, value in (('teacher mAP', r['teacher_mAP']),
                              ('teacher AP50', r['teacher_AP50']),
                              ('student mAP', r['student_mAP']),
                              ('pseudo-boxes / image', r.get('pb_per_img')),
                              ('their precision %', prec)):
            record_row('det_scenes', task, method, metric, value, r['seed'],
                       command=this_command('det_scenes'))


if __name__ == '__main__':
    main()
