"""Semi-supervised detection end to end through the real Runner on built-in scenes."""

import os.path as osp
import sys

import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(REPO, 'tools'))


def test_class_aware_one_stage_detector_trains_validates_and_resumes(tmp_path):
    import train as train_tool
    from mmengine.logging import MessageHub

    from ssvision.datasets import write_coco_scenes, write_coco_split
    ann = write_coco_scenes(str(tmp_path / 'train'), 8, seed=0, items='mnist5k', size=64)
    val_ann = write_coco_scenes(str(tmp_path / 'val'), 3, seed=1, items='mnist5k', size=64)
    lab, unl = write_coco_split(ann, str(tmp_path / 'splits'), percents=(25,), seeds=(1,))
    cfg = osp.join(REPO, 'configs/semi_det/classaware_retinanet-r18_2k_detscenes-10pc.py')
    work_dir = str(tmp_path / 'work')
    opts = [
        'train_cfg.max_iters=3', 'train_cfg.val_interval=3', 'default_hooks.logger.interval=1',
        'default_hooks.checkpoint.interval=3', 'labeled_batch_size=2',
        'train_dataloader.batch_size=4', 'train_dataloader.sampler.labeled_batch_size=2',
        'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
        'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
        f'train_dataloader.dataset.labeled.ann_file={lab}',
        f'train_dataloader.dataset.unlabeled.ann_file={unl}',
        f'train_dataloader.dataset.labeled.img_dir={tmp_path}/train/images',
        f'train_dataloader.dataset.unlabeled.img_dir={tmp_path}/train/images',
        f'val_dataloader.dataset.ann_file={val_ann}', f'val_evaluator.ann_file={val_ann}',
        'model.detector.min_size=64', 'model.detector.max_size=64',
        'model.semi_train_cfg.burn_in_iters=1',
        'model.selector.floor=0.0', 'model.selector.min_score=0.0',
        'model.detector.score_thresh=0.0',
    ]
    train_tool.main([cfg, '--work-dir', work_dir, '--cfg-options', *opts])
    hub = MessageHub.get_current_instance()
    assert 'train/unsup_loss' in hub.log_scalars and 'train/pb_per_img' in hub.log_scalars
    assert hub.get_scalar('train/pb_per_img').current() > 0  # the one-stage teacher yields boxes
    assert 'val/teacher/mAP' in hub.log_scalars and 'val/student/AP50' in hub.log_scalars
    ckpt = torch.load(osp.join(work_dir, 'iter_3.pth'), map_location='cpu', weights_only=True)
    assert 'selector.tau' in ckpt['state_dict'] and any(
        k.startswith('teacher.') for k in ckpt['state_dict'])


def test_show_det_views_draws_pseudo_boxes(tmp_path):
    import show_det_views

    from ssvision.datasets import write_coco_scenes, write_coco_split
    ann = write_coco_scenes(str(tmp_path / 'train'), 6, seed=0, items='mnist5k', size=64)
    lab, unl = write_coco_split(ann, str(tmp_path / 'splits'), percents=(50,), seeds=(1,))
    cfg = osp.join(REPO, 'configs/semi_det/classaware_fasterrcnn-r18_2k_detscenes-10pc.py')
    out = show_det_views.main([
        cfg, '--out', str(tmp_path / 'views.png'), '--num', '2', '--cfg-options',
        'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
        f'train_dataloader.dataset.labeled.ann_file={lab}',
        f'train_dataloader.dataset.unlabeled.ann_file={unl}',
        f'train_dataloader.dataset.labeled.img_dir={tmp_path}/train/images',
        f'train_dataloader.dataset.unlabeled.img_dir={tmp_path}/train/images',
        'model.detector.min_size=64', 'model.detector.max_size=64'])
    from PIL import Image
    img = Image.open(out)
    assert img.size[0] > 600 and img.size[1] > 300  # 4 columns, 2 rows
