"""Cost of one semi-supervised step relative to one supervised step.

    python -m benchmarks.step_cost [--algorithm FixMatch] [--net TinyCNN] [--b 32] [--mu 7]
                                   [--steps 30] [--device cpu|cuda] [--amp]

Both steps see the same number of images, ``B * (1 + mu)``: the supervised step
trains on that many labeled images; the SSL step trains on ``B`` labeled images plus
``mu * B`` strong views and runs the teacher on ``mu * B`` weak views. Each step is
``model.train_step`` (preprocessing, forward, backward, optimizer step) plus the EMA
teacher update; data loading is excluded (batches are prepared in memory, real
MNIST-5k digits). The two kinds of step alternate and the ratio of medians is
reported, so machine noise hits both alike. The floor is about
``1 + (1/3) * mu / (1 + mu)``: one extra no-grad forward on the weak views.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from mmengine.optim import OptimWrapper

from benchmarks.harness import record_row, this_command
from ssvision.datasets import MNIST5k
from ssvision.engine.hooks import ema_update
from ssvision.registry import MODELS


def _images(n: int, offset: int = 0, size: int = 28, channels: int = 1):
    ds = MNIST5k()
    imgs = torch.stack([torch.from_numpy(ds[i + offset]['img']).permute(2, 0, 1)
                        for i in range(n)])
    if size != 28:
        imgs = torch.nn.functional.interpolate(imgs.float(), size=(size, size)).byte()
    if channels == 3:
        imgs = imgs.expand(-1, 3, -1, -1).contiguous()
    labels = torch.tensor([int(ds[i + offset]['gt_label']) for i in range(n)])
    return imgs, labels


def build(algorithm: str, net: dict, device: str, amp: bool, look_ahead: bool = False):
    cfg = dict(type=algorithm, model=net,
               selector=dict(type='FixedThresholdSelector', threshold=0.0))
    if look_ahead:
        cfg['semi_train_cfg'] = dict(look_ahead=True)
    model = MODELS.build(cfg)
    model.to(device)
    optim = torch.optim.SGD(model.student.parameters(), lr=0.01, momentum=0.9)
    if amp:
        from mmengine.optim import AmpOptimWrapper
        wrapper = AmpOptimWrapper(optimizer=optim)
    else:
        wrapper = OptimWrapper(optimizer=optim)
    return model, wrapper


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--algorithm', default='FixMatch')
    p.add_argument('--net', default='TinyCNN', choices=['TinyCNN', 'WideResNet'])
    p.add_argument('--b', type=int, default=32)
    p.add_argument('--mu', type=int, default=7)
    p.add_argument('--steps', type=int, default=30)
    p.add_argument('--warmup', type=int, default=5)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--amp', action='store_true')
    p.add_argument('--look-ahead', action='store_true',
                   help='also time the SSL step with learning-from-the-future look-ahead')
    p.add_argument('--out', help='write the result as json')
    args = p.parse_args(argv)

    if args.net == 'TinyCNN':
        net, size, ch = dict(type='TinyCNN', num_classes=10, in_channels=1), 28, 1
    else:
        net, size, ch = dict(type='WideResNet', num_classes=10, in_channels=3), 32, 3
    b, mu = args.b, args.mu
    n_all = b * (1 + mu)
    sup_all, y_all = _images(n_all, size=size, channels=ch)
    unl, _ = _images(mu * b, offset=n_all, size=size, channels=ch)
    strong = torch.flip(unl, dims=[3])
    sup_batch = {'inputs': {'sup': sup_all}, 'data_samples': {'sup': {'gt_label': y_all}}}
    ssl_batch = {'inputs': {'sup': sup_all[:b], 'unsup_teacher': unl, 'unsup_student': strong},
                 'data_samples': {'sup': {'gt_label': y_all[:b]},
                                  'unsup_teacher': {'gt_label': torch.full((mu * b,), -1)}}}

    sup_model, sup_opt = build('SupervisedOnly', net, args.device, args.amp)
    ssl_model, ssl_opt = build(args.algorithm, net, args.device, args.amp)
    if args.look_ahead:
        la_model, la_opt = build(args.algorithm, net, args.device, args.amp, look_ahead=True)
        la_model.next_ema_momentum = 0.999

    def step(model, opt, batch):
        if args.device == 'cuda':
            torch.cuda.synchronize()
        t = time.perf_counter()
        model.train_step(batch, opt)
        ema_update(model.teacher, model.student, 0.999)
        if args.device == 'cuda':
            torch.cuda.synchronize()
        return time.perf_counter() - t

    times = {'sup': [], 'ssl': [], 'look_ahead': []}
    for i in range(args.warmup + args.steps):
        ts = step(sup_model, sup_opt, sup_batch)
        tl = step(ssl_model, ssl_opt, ssl_batch)
        ta = step(la_model, la_opt, ssl_batch) if args.look_ahead else None
        if i >= args.warmup:
            times['sup'].append(ts)
            times['ssl'].append(tl)
            if ta is not None:
                times['look_ahead'].append(ta)
    med_sup, med_ssl = statistics.median(times['sup']), statistics.median(times['ssl'])
    result = {
        'algorithm': args.algorithm, 'net': args.net, 'B': b, 'mu': mu,
        'device': args.device, 'amp': args.amp, 'steps': args.steps,
        'threads': torch.get_num_threads(),
        'sup_step_s': med_sup, 'ssl_step_s': med_ssl, 'ratio': med_ssl / med_sup,
        'floor': 1 + (1 / 3) * mu / (1 + mu),
    }
    if args.look_ahead:
        med_la = statistics.median(times['look_ahead'])
        result.update(look_ahead_step_s=med_la, look_ahead_ratio=med_la / med_sup,
                      look_ahead_vs_ssl=med_la / med_ssl)
    print(json.dumps(result, indent=2))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=2)
    task = (f"{args.net}, B = {b}, mu = {mu}, {args.device}"
            f"{' AMP' if args.amp else ''}")
    for metric in ('sup_step_s', 'ssl_step_s', 'ratio', 'look_ahead_step_s', 'look_ahead_vs_ssl'):
        record_row('step_cost', task, args.algorithm, metric, result.get(metric),
                   command=this_command('step_cost'))
    return result


if __name__ == '__main__':
    main()
