"""Train a semi-supervised model from a config.

    ssvision train CONFIG [--work-dir D] [--amp] [--resume [CKPT]]
                          [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]

(``python tools/train.py ...`` in a checkout runs the same code.) CONFIG is a file or a
packaged config, ``ssvision::GROUP/NAME.py``.

Distributed: ``torchrun --nproc_per_node N -m ssvision.cli train CONFIG --launcher
pytorch``. The process-group backend follows the device (NCCL with CUDA, Gloo on CPUs)
unless the config sets ``env_cfg.dist_cfg.backend``. On a machine without CUDA the Gloo
group is started here, before the Runner: mmengine 0.10's PyTorch launcher calls
``torch.cuda.set_device`` unconditionally, and skips its launcher when a group exists.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import os.path as osp

import torch
from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from ssvision.utils.config import config_path


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a semi-supervised model')
    parser.add_argument('config', help='config file, or ssvision::GROUP/NAME.py')
    parser.add_argument('--work-dir', help='where logs and checkpoints go '
                        '(default: work_dirs/<config name>)')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision (needs CUDA)')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from CKPT, or from the latest checkpoint in the '
                        'work dir when no CKPT is given')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. train_cfg.max_iters=100')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def run_config(config: str, launcher: str = 'none', cfg_options: dict | None = None,
               work_dir: str | None = None) -> Config:
    """A run's config (train or test): the file or packaged name, the launcher, the
    ``--cfg-options`` and the work dir (default ``work_dirs/<config name>``)."""
    import ssvision  # noqa: F401  (ssvision:: _base_ entries, checkpoint schemes)
    from ssvision.utils.knobs import check_consumed, resolve_knobs
    path = config_path(config)
    cfg = Config.fromfile(path)
    check_consumed(path, cfg, cfg_options)  # settings that could not take effect
    cfg.launcher = launcher
    if cfg_options is not None:
        cfg.merge_from_dict(cfg_options)
    resolve_knobs(cfg)  # '${img_size}' placeholders read the final top-level values
    no_worker_persistence(cfg)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        name = osp.splitext(osp.basename(config_path(config)))[0]
        cfg.work_dir = osp.join('work_dirs', name)
    return cfg


def no_worker_persistence(cfg: Config) -> None:
    """``persistent_workers`` needs loader workers: with ``num_workers=0`` it is turned
    off (torch refuses the pair) instead of failing the run."""
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(key)
        if isinstance(loader, dict) and not loader.get('num_workers', 0):
            if loader.get('persistent_workers'):
                loader['persistent_workers'] = False


def build_config(args: argparse.Namespace) -> Config:
    cfg = run_config(args.config, args.launcher, args.cfg_options, args.work_dir)
    if args.amp:
        import torch
        if not torch.cuda.is_available():
            raise SystemExit('--amp needs a CUDA device; none is available here')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    setup_dist(cfg)
    return cfg


def setup_dist(cfg: Config) -> None:
    """Pick the process-group backend for the device and, on a machine without CUDA,
    start the Gloo group before the Runner does (see the module docstring).

    A config that sets ``env_cfg.dist_cfg.backend`` keeps it; NCCL on a machine without
    CUDA is refused with a message instead of mmengine's driver error.
    """
    if cfg.get('launcher', 'none') == 'none':
        return
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.get('dist_cfg') or {}
    cuda = torch.cuda.is_available()
    if not dist_cfg.get('backend'):
        dist_cfg['backend'] = 'nccl' if cuda else 'gloo'
    env_cfg['dist_cfg'] = dist_cfg
    if cuda or cfg.launcher != 'pytorch':
        return
    if dist_cfg['backend'] == 'nccl':
        raise SystemExit('env_cfg.dist_cfg.backend is nccl but this machine has no CUDA '
                         'device; use gloo (or leave the backend unset)')
    import torch.distributed as dist
    if not dist.is_initialized():
        kwargs = {k: v for k, v in dist_cfg.items() if k != 'backend'}
        dist.init_process_group(backend=dist_cfg['backend'], **kwargs)
    # DDP over CPU modules takes no device ids (mmengine's default is [LOCAL_RANK])
    wrapper = cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel')
    wrapper.setdefault('device_ids', None)
    cfg.model_wrapper_cfg = wrapper


def teardown_dist(barrier: bool = True) -> None:
    """End the process group at the end of a distributed run.

    Left to interpreter exit, Gloo's background threads can outlive the group's
    destructor, and a rank then aborts with "terminate called without an active
    exception" after a run that finished (seen as a SIGABRT under torchrun). The
    barrier (skipped when the run failed, where another rank may never reach it) lets
    every rank finish its last collective before the group goes; the group goes even
    when the barrier fails (a peer died).
    """
    import torch.distributed as dist
    if _dist_initialized():
        try:
            if barrier:
                dist.barrier()
        finally:
            dist.destroy_process_group()


def _dist_initialized() -> bool:
    import torch.distributed as dist
    return dist.is_available() and dist.is_initialized()


@contextlib.contextmanager
def dist_session():
    """Run a run's body (config, runner, training), then :func:`teardown_dist`
    (without the barrier when the body raised). A process group that existed before
    the body started belongs to the caller and is left alone."""
    owned = not _dist_initialized()
    try:
        yield
    except BaseException:
        if owned:
            teardown_dist(barrier=False)
        raise
    if owned:
        teardown_dist()


def register_run_hooks(runner, cfg: Config) -> None:
    """Hooks every run gets without listing them: the class-name check and, unless the
    config lists its own ``BNRecalibrationHook``, BatchNorm statistics re-estimated for
    validation, checkpoints and inference while the running ones are untrustworthy."""
    runner.register_hook(dict(type='ClassNamesHook'))
    listed = {h.get('type') for h in cfg.get('custom_hooks') or [] if isinstance(h, dict)}
    if not listed & {'BNRecalibrationHook', 'ssvision.BNRecalibrationHook'}:
        runner.register_hook(dict(type='BNRecalibrationHook', when='untrusted'))


def main(argv=None) -> None:
    args = parse_args(argv)
    # the process group starts inside (setup_dist on CPU, the Runner on CUDA), so a
    # failure while building the runner still ends it
    with dist_session():
        cfg = build_config(args)
        runner = Runner.from_cfg(cfg)
        register_run_hooks(runner, cfg)
        runner.train()


if __name__ == '__main__':
    main()
