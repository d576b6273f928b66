"""Evaluate a checkpoint on a config's test set.

    ssvision test CONFIG CKPT [--model teacher|student|both] [--work-dir D]
                              [--cfg-options k=v ...] [--out results.json]
"""

from __future__ import annotations

import argparse
import json

from mmengine.config import DictAction
from mmengine.runner import Runner


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a semi-supervised model')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--model', choices=['teacher', 'student', 'both'], default='teacher',
                        help='which network to evaluate (default: teacher)')
    parser.add_argument('--work-dir', help='where the test log goes')
    parser.add_argument('--out', help='write the metrics to this json file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    from ssvision.tools.train import dist_session, register_run_hooks, run_config, setup_dist
    with dist_session():  # the group starts inside, so a failed build still ends it
        cfg = run_config(args.config, args.launcher, args.cfg_options, args.work_dir)
        setup_dist(cfg)
        predict_on = ('teacher', 'student') if args.model == 'both' else (args.model,)
        if not cfg.model.get('semi_test_cfg'):
            cfg.model.semi_test_cfg = {}
        cfg.model.semi_test_cfg['predict_on'] = predict_on
        cfg.load_from = args.checkpoint
        cfg.resume = False
        runner = Runner.from_cfg(cfg)
        register_run_hooks(runner, cfg)  # class names; re-estimated BatchNorm buffers
        metrics = runner.test()
    metrics = {k: float(v) for k, v in metrics.items()}
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(metrics, f, indent=2)
    return metrics


if __name__ == '__main__':
    main()
