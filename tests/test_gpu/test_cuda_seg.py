"""CUDA checks for segmentation (select with -m gpu; skipped without a GPU)."""

import math
import os.path as osp

import pytest
import torch

pytestmark = pytest.mark.gpu

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SEG_NET = dict(type='DeepLabV3Plus', backbone='resnet18', num_classes=3, aspp_channels=16,
               low_level_channels=8, decoder_channels=16, dropout=0.0)


def _batch(n=2, size=32):
    g = torch.Generator().manual_seed(0)
    img = lambda: torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)  # noqa: E731
    seg = torch.randint(0, 3, (n, size, size), generator=g)
    seg[:, :4] = 255
    return {'inputs': {'sup': img(), 'unsup_teacher': img(), 'unsup_student': img(),
                       'unsup_student2': img()},
            'data_samples': {'sup': {'gt_seg': seg},
                             'unsup_teacher': {'true_seg': seg.clone(),
                                               'sample_idx': torch.arange(n)}}}


@pytest.mark.parametrize('amp', [False, True])
def test_dssn_segmentation_step_on_cuda(amp):
    from mmengine.optim import AmpOptimWrapper, OptimWrapper

    from ssvision.models.algorithms import DSSN
    if not torch.cuda.is_available():
        pytest.skip('no CUDA device')
    for threshold, positive in ((0.0, True), (1.01, False)):
        torch.manual_seed(0)
        model = DSSN(model=SEG_NET, task=dict(type='SegmentationTask'),
                     selector=dict(type='FixedThresholdSelector', threshold=threshold),
                     semi_train_cfg=dict(cutmix_prob=1.0)).cuda()
        optim = torch.optim.SGD(model.student.parameters(), lr=0.01)
        wrapper = AmpOptimWrapper(optimizer=optim) if amp else OptimWrapper(optimizer=optim)
        log = model.train_step(_batch(), wrapper)
        assert math.isfinite(float(log['loss']))
        assert math.isfinite(float(log['unsup_loss']))
        assert (float(log['unsup_loss']) > 0) == positive
        if not positive:
            assert float(log['unsup_loss']) == 0.0


def test_segmentation_runner_with_amp_on_cuda(tmp_path):
    """A few real iterations of DSSN through ``tools/train.py --amp`` on CUDA."""
    if not torch.cuda.is_available():
        pytest.skip('no CUDA device')
    from mmengine.logging import MessageHub

    from ssvision.datasets import save_seg_splits, write_voc_scenes
    from ssvision.tools import train as train_tool
    train_root, val_root = str(tmp_path / 'train'), str(tmp_path / 'val')
    ids = write_voc_scenes(train_root, 12, seed=0, items='mnist5k', size=64)
    write_voc_scenes(val_root, 4, seed=1, items='mnist5k', size=64)
    split = next(iter(save_seg_splits(ids, str(tmp_path / 'splits'), fractions=(0.25,),
                                      seed=0).values()))
    cfg = osp.join(REPO, 'configs/dssn/dssn_deeplabv3plus-r18_2k_scenes-1-16.py')
    opts = [
        'train_cfg.max_iters=4', 'train_cfg.val_interval=4', 'param_scheduler.0.end=4',
        'param_scheduler.0.T_max=4', 'default_hooks.logger.interval=1',
        'default_hooks.checkpoint.interval=4', 'labeled_batch_size=2',
        'train_dataloader.batch_size=4', 'train_dataloader.sampler.labeled_batch_size=2',
        'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
        'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
        f'train_dataloader.dataset.labeled.data_root={train_root}',
        f'train_dataloader.dataset.unlabeled.data_root={train_root}',
        f'train_dataloader.dataset.labeled.split_file={split}',
        f'train_dataloader.dataset.unlabeled.split_file={split}',
        f'val_dataloader.dataset.data_root={val_root}', 'model.selector.floor=0.0',
    ]
    train_tool.main([cfg, '--amp', '--work-dir', str(tmp_path / 'work'), '--cfg-options',
                     *opts])
    hub = MessageHub.get_current_instance()
    assert math.isfinite(hub.get_scalar('train/loss').current())
    assert 0 <= hub.get_scalar('val/teacher/mIoU').current() <= 100
