"""Semi-supervised segmentation end to end through the real Runner on built-in scenes."""

import json
import os.path as osp

import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


import pytest  # noqa: E402

#: config -> (its own options, losses the run must log). The variant's selector keeps
#: pixels above a floor (0 here); the authors' keeps pixels near each class's peak once
#: the peak exceeds `high` (0 here, so a random-init teacher's pixels count).
_DSSN_RUNS = {
    'configs/dssn/dssn-topk_deeplabv3plus-r18_2k_scenes-1-16.py': (
        ['param_scheduler.0.T_max=2', 'model.selector.floor=0.0'],
        ('train/unsup_loss', 'train/aux_siamese_feat_loss')),
    'configs/dssn/dssn_deeplabv3plus-r18_2k_scenes-1-16.py': (
        ['model.selector.high=0.0'],
        ('train/unsup_strong_loss', 'train/unsup_feat_loss', 'train/unsup_siamese_img_loss')),
}


@pytest.mark.parametrize('config', list(_DSSN_RUNS))
def test_dssn_segmentation_runs_and_checkpoints(tmp_path, config):
    from ssvision.datasets import save_seg_splits, write_voc_scenes
    from ssvision.tools import train as train_tool
    train_root, val_root = str(tmp_path / 'train'), str(tmp_path / 'val')
    ids = write_voc_scenes(train_root, 12, seed=0, items='mnist5k', size=64)
    write_voc_scenes(val_root, 4, seed=1, items='mnist5k', size=64)
    split = save_seg_splits(ids, str(tmp_path / 'splits'), fractions=(0.25,), seed=0)
    split = next(iter(split.values()))
    with open(split) as f:
        assert len(json.load(f)['labeled']) == 3
    cfg = osp.join(REPO, config)
    own_opts, logged = _DSSN_RUNS[config]
    work_dir = str(tmp_path / 'work')
    opts = [
        'train_cfg.max_iters=2', 'train_cfg.val_interval=2', 'param_scheduler.0.end=2',
        'default_hooks.logger.interval=1',
        'default_hooks.checkpoint.interval=2', 'labeled_batch_size=2',
        'train_dataloader.batch_size=4', 'train_dataloader.sampler.labeled_batch_size=2',
        'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
        'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
        'val_dataloader.batch_size=2',
        f'train_dataloader.dataset.labeled.data_root={train_root}',
        f'train_dataloader.dataset.unlabeled.data_root={train_root}',
        f'train_dataloader.dataset.labeled.split_file={split}',
        f'train_dataloader.dataset.unlabeled.split_file={split}',
        f'val_dataloader.dataset.data_root={val_root}',
        'model.model.aspp_channels=16', 'model.model.decoder_channels=16', *own_opts,
    ]
    train_tool.main([cfg, '--work-dir', work_dir, '--cfg-options', *opts])
    ckpt = torch.load(osp.join(work_dir, 'iter_2.pth'), map_location='cpu', weights_only=True)
    assert any(k.startswith('teacher.') for k in ckpt['state_dict'])
    from mmengine.logging import MessageHub
    hub = MessageHub.get_current_instance()
    for key in logged:
        assert key in hub.log_scalars, key
    assert 'val/teacher/mIoU' in hub.log_scalars
    assert osp.exists(osp.join(work_dir, 'selection_stats.png'))
