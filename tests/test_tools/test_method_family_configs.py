"""Three iterations of each method-family config through tools/train.py and the Runner."""

import math
import os.path as osp

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

pytest.importorskip('sklearn')

ITERS = 3
#: config -> a training scalar only that method logs
CONFIGS = {
    'uda/uda_tinycnn_2k_mnist5k-4pc.py': 'train/sup_tsa_frac',
    'shrinkmatch/shrinkmatch_tinycnn_2k_mnist5k-4pc.py': 'train/aux_shrink_loss',
    'fixmatch/fixmatch-lorot_tinycnn_2k_mnist5k-4pc.py': 'train/aux_lorot_loss',
    'fixmatch/fixmatch-fstd_tinycnn_2k_mnist5k-4pc.py': 'train/unsup_loss',
    'fixmatch/fixmatch-fstw_tinycnn_2k_mnist5k-4pc.py': 'train/unsup_loss',
}


def _options(split_file):
    return [
        f'train_cfg.max_iters={ITERS}', f'train_cfg.val_interval={ITERS}',
        f'param_scheduler.0.end={ITERS}', f'param_scheduler.0.T_max={ITERS}',
        'labeled_batch_size=4', 'train_dataloader.batch_size=16',
        'train_dataloader.sampler.labeled_batch_size=4',
        'train_dataloader.sampler.unlabeled_ratio=3',
        'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
        'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
        f'train_dataloader.dataset.labeled.split_file={split_file}',
        f'train_dataloader.dataset.unlabeled.split_file={split_file}',
        f'val_dataloader.dataset.split_file={split_file}',
        f'test_dataloader.dataset.split_file={split_file}',
        f'default_hooks.checkpoint.interval={ITERS}', 'default_hooks.logger.interval=1',
        'model.model.width=8', 'model.selector.threshold=0.5',
    ]


@pytest.mark.parametrize('config', sorted(CONFIGS))
def test_config_trains_three_iterations(config, split_file, tmp_path):
    from mmengine.logging import MessageHub

    from ssvision.tools import train as train_tool
    work_dir = str(tmp_path / 'run')
    train_tool.main([osp.join(REPO, 'configs', config), '--work-dir', work_dir,
                     '--cfg-options', *_options(split_file)])
    assert osp.exists(osp.join(work_dir, f'iter_{ITERS}.pth'))
    scalars = MessageHub.get_current_instance().log_scalars
    for key in ('train/loss', 'train/sup_loss', CONFIGS[config], 'val/teacher/top1'):
        assert key in scalars, f'{config} logged no {key}'
    assert math.isfinite(scalars['train/loss'].current())
