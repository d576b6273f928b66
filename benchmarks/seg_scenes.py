"""Semi-supervised segmentation on the built-in scenes: supervised-only vs FixMatch vs DSSN.

    python -m benchmarks.seg_scenes [--scenes balanced lt10[:1-16]] [--fractions 1-16 1-8]
    python -m benchmarks.seg_scenes --scenes binary --fractions n4 n8 --iters 300
        [--methods supervised fixmatch dssn] [--iters 2000] [--seed 0]
        [--parallel 1] [--workers 2] [--timing-iters 0] [--out-dir work_dirs/bench_seg]
        [--init zoo://resnet18_items-on-photos]     # a pretrained backbone start
        [--variant NAME KEY=VALUE ...]              # a recipe change, named in the rows

Scenes (``tools/prepare_data.py --scenes``, run here if missing): Fashion-MNIST items on
real photos, 128x128, 11 classes; ``balanced`` draws the items uniformly, ``lt10`` draws
them with imbalance ratio 10 (Sneaker, Bag and Ankle boot rarest); both are validated on
the same balanced 150 validation scenes. Each run is ``tools/train.py`` on the DeepLabV3+
(timm resnet18, random init or the backbone of ``--init``) config of the method with the
fraction's split, at the same budget; the row holds the last validation's teacher /
student mIoU, the teacher's IoU of the three tail classes, and the kept share and
precision of the pseudo-pixels over the last quarter of training.

``--parallel N`` trains N runs at a time (a many-core GPU host); the seconds per
iteration of such runs share the machine, so ``--timing-iters K`` then trains each
method alone for K iterations (first fraction, balanced scenes, no validation) and
records its median seconds per iteration and, on CUDA, its peak memory
(``torch.cuda.max_memory_allocated``) as ``phase: timing`` rows.
"""

from __future__ import annotations

import argparse
import os
import os.path as osp

from benchmarks.harness import (  # noqa: F401  (the variant helpers are used through here)
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

METHODS = {
    'supervised': 'configs/supervised/supervised_deeplabv3plus-r18_2k_scenes-1-16.py',
    'fixmatch': 'configs/fixmatch/fixmatch_deeplabv3plus-r18_2k_scenes-1-16.py',
    # DSSN as its authors run it (poly schedule), and ssvision's variant
    'dssn': 'configs/dssn/dssn_deeplabv3plus-r18_2k_scenes-1-16.py',
    'dssn-topk': 'configs/dssn/dssn-topk_deeplabv3plus-r18_2k_scenes-1-16.py',
    # FixMatch with DSSN's class-aware selector (prior cap)
    'fixmatch-classaware':
        'configs/fixmatch/fixmatch-classaware_deeplabv3plus-r18_2k_scenes-1-16.py',
}
BINARY_METHODS = {
    'supervised': 'configs/supervised/supervised_deeplabv3plus-r18_300_binscenes-n4.py',
    'fixmatch': 'configs/fixmatch/fixmatch_deeplabv3plus-r18_300_binscenes-n4.py',
    'dssn': 'configs/dssn/dssn_deeplabv3plus-r18_300_binscenes-n4.py',
    'dssn-topk': 'configs/dssn/dssn-topk_deeplabv3plus-r18_300_binscenes-n4.py',
    # FixMatch with DSSN's class-aware selector (binary scenes only)
    'fixmatch-classaware':
        'configs/fixmatch/fixmatch-classaware_deeplabv3plus-r18_300_binscenes-n4.py',
}
#: Methods whose configs decay the learning rate polynomially (no ``T_max`` to set).
POLY_METHODS = ('dssn',)
SCENES = {'balanced': 'data/scenes/seg_fashion', 'lt10': 'data/scenes/seg_fashion_lt10',
          'binary': 'data/scenes/seg_binary'}
TAIL_CLASSES = ('Sneaker', 'Bag', 'Ankle_boot')


def run_name(row: dict) -> str:
    """The work-dir name of a ``train`` row (rows written before ``run`` was recorded
    are named the same way)."""
    return (f"{row['method']}_{row['scenes']}_{row['fraction']}_seed{row['seed']}_"
            f"{row['iters']}it{run_tag(row)}")


def run_tag(row: dict) -> str:
    """The work-dir suffix naming a row's start (``--init``) and ``--variant``."""
    init = row.get('init', 'random')
    tag = '' if init == 'random' else '_' + init.split('://')[-1].replace('/', '_')
    if row.get('variant'):
        tag += f"_v-{row['variant']}"
    return tag


def method_label(row: dict) -> str:
    """A row's method as tables show it, with its ``--variant`` name when it has one."""
    return row['method'] + (f" ({row['variant']})" if row.get('variant') else '')


def data_options(scenes: str, fraction: str, seed: int, workers: int) -> list[str]:
    root = SCENES[scenes]
    split = f'{root}/splits/split_{fraction}_seed{seed}.json'
    opts = [f'train_dataloader.num_workers={workers}']
    for part in ('labeled', 'unlabeled'):
        key = f'train_dataloader.dataset.{part}'
        opts += [f'{key}.data_root={root}/train', f'{key}.split_file={split}']
    return opts


def init_options(init: str | None) -> list[str]:
    """The backbone checkpoint option of ``--init`` (none from random init)."""
    return [f'model.model.checkpoint={init}'] if init else []


def train_options(scenes: str, fraction: str, seed: int, iters: int, workers: int,
                  init: str | None = None, variant_opts: list[str] = (),
                  method: str | None = None) -> list[str]:
    """The cfg-options of one training run: the split of ``fraction`` and ``seed``, the
    schedule of ``iters`` (validation halfway and at the end), the backbone of ``init``
    and a ``--variant``'s options. The zoo's segmentation-scene entries record these
    options; a test keeps the two equal."""
    return data_options(scenes, fraction, seed, workers) + \
        schedule_options(iters, seed, val_every=max(iters // 2, 1), log_every=50,
                         poly=method in POLY_METHODS) + \
        init_options(init) + list(variant_opts)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--scenes', nargs='+', default=['balanced'],
                   help=f'scene sets, of {list(SCENES)}; NAME:FRACTION limits one to one '
                        'fraction (e.g. lt10:1-16)')
    p.add_argument('--fractions', nargs='+', default=['1-16', '1-8'])
    p.add_argument('--methods', nargs='+', default=['supervised', 'fixmatch', 'dssn'],
                   choices=list(BINARY_METHODS),
                   help='dssn: the authors\' recipe; dssn-topk: ssvision\'s variant; '
                        'fixmatch-classaware: FixMatch with DSSN\'s class-aware selector')
    p.add_argument('--iters', type=int, default=2000)
    p.add_argument('--init', default=None,
                   help="backbone checkpoint source (model.model.checkpoint), e.g. "
                        "zoo://resnet18_fashionmnist-gray; default: random init")
    add_variant_argument(p, 'nocutmix model.semi_train_cfg.cutmix_prob=0')
    add_run_arguments(p, 'work_dirs/bench_seg')
    return p


def main(argv=None) -> None:
    p = parser()
    args = p.parse_args(argv)
    variant, variant_opts = parse_variant(p, args)
    for scenes in {s.split(':')[0] for s in args.scenes}:  # before preparing any data
        configs = BINARY_METHODS if scenes == 'binary' else METHODS
        wrong = [m for m in args.methods if m not in configs]
        if wrong:
            p.error(f'methods {wrong} have no config for the {scenes} scenes')
    os.makedirs(args.out_dir, exist_ok=True)
    metrics = dict(teacher_mIoU='teacher/mIoU', student_mIoU='student/mIoU',
                   tail_IoU={c: f'teacher/IoU_{c}' for c in TAIL_CLASSES},
                   object_IoU='teacher/IoU_object', student_object_IoU='student/IoU_object')
    jobs = []
    flags = ['--scenes-only'] + (['--binary-scenes'] if any(
        s.startswith('binary') for s in args.scenes) else [])
    parts = scene_parts(args.scenes, SCENES, args.fractions, flags, split_file=lambda s, f:
                        f'{SCENES[s]}/splits/split_{f}_seed{args.seed}.json')
    for scenes, fraction in parts:
        for method in args.methods:
            config = (BINARY_METHODS if scenes == 'binary' else METHODS)[method]
            opts = train_options(scenes, fraction, args.seed, args.iters, args.workers,
                                 args.init, variant_opts, method)
            row = dict(phase='train', scenes=scenes, fraction=fraction, method=method,
                       iters=args.iters, seed=args.seed, parallel=args.parallel,
                       init=args.init or 'random')
            if variant:
                row.update(variant=variant, variant_options=variant_opts)
            row['run'] = name = run_name(row)
            if variant:
                check_variant(p, osp.join(args.out_dir, name), variant_opts)
            jobs.append((name, config, opts, row))
    if args.timing_iters:
        for method in (m for m in args.methods if m in METHODS):
            # timed with the same start and variant as the training rows
            row = dict(phase='timing', scenes='balanced', fraction=args.fractions[0],
                       method=method, iters=args.timing_iters, seed=args.seed, parallel=1,
                       init=args.init or 'random')
            if variant:
                row.update(variant=variant, variant_options=variant_opts)
            name = f'timing_{method}_{args.timing_iters}it{run_tag(row)}'
            if variant:
                check_variant(p, osp.join(args.out_dir, name), variant_opts)
            opts = data_options('balanced', args.fractions[0], args.seed, args.workers) + \
                schedule_options(args.timing_iters, args.seed,
                                 val_every=args.timing_iters + 1,
                                 log_every=min(10, args.timing_iters),
                                 poly=method in POLY_METHODS)
            jobs.append((name, METHODS[method], opts + init_options(args.init) + variant_opts,
                         row))

    rows = run_jobs(jobs, args.out_dir, args.parallel, metrics, 'teacher/mIoU')

    print('\n| scenes | labeled | method | teacher mIoU | student mIoU | tail IoU '
          f'({" / ".join(TAIL_CLASSES)}) or foreground IoU | pseudo-pixels kept % | '
          'their precision % | s/iter | peak MB |')
    print('|---|---|---|---|---|---|---|---|---|---|')
    for r in rows:
        if r['phase'] != 'train':
            continue
        tail = (fmt(r['object_IoU']) if r['scenes'] == 'binary'
                else ' / '.join(fmt(v) for v in r['tail_IoU'].values()))
        # pseudo-pixel health over the last quarter of training (absent for supervised)
        health = train_health(osp.join(args.out_dir, run_name(r)), keys=('sel_frac', 'pl_acc'))
        kept, prec = (None if health.get(k) is None else 100 * health[k]
                      for k in ('sel_frac', 'pl_acc'))
        mem = r['peak_mem_mb'] if r.get('peak_mem_mb') is not None else r.get('peak_rss_mb')
        print(f"| {r['scenes']} | {r['fraction'].replace('-', '/')} | {method_label(r)} | "
              f"{fmt(r['teacher_mIoU'])} | {fmt(r['student_mIoU'])} | {tail} | "
              f"{fmt(kept)} | {fmt(prec)} | "
              f"{fmt(r['s_per_iter'], '.3f')} | {fmt(mem, '.0f')} |")
        task = (f"{r['scenes']} scenes, {r['fraction']} labeled, {r['iters']} it, "
                f"{r['init'].split('://')[-1]} start")
        for metric, value in (('teacher mIoU', r['teacher_mIoU']),
                              ('student mIoU', r['student_mIoU']),
                              ('pseudo-pixels kept %', kept), ('their precision %', prec)):
            record_row('seg_scenes', task, method_label(r), metric, value, r['seed'],
                       command=this_command('seg_scenes'))
    print_timing(rows)


if __name__ == '__main__':
    main()
