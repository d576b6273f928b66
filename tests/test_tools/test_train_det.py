"""Semi-supervised detection end to end through the real Runner on built-in scenes."""

import importlib.util
import os.path as osp

import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _tool_script(name):
    """``tools/<name>.py`` as a module (a script of the checkout, not of the package)."""
    spec = importlib.util.spec_from_file_location(name, osp.join(REPO, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _scenes(tmp_path):
    from ssvision.datasets import write_coco_scenes, write_coco_split
    ann = write_coco_scenes(str(tmp_path / 'train'), 8, seed=0, items='mnist5k', size=64)
    val_ann = write_coco_scenes(str(tmp_path / 'val'), 3, seed=1, items='mnist5k', size=64)
    lab, unl = write_coco_split(ann, str(tmp_path / 'splits'), percents=(25,), seeds=(1,))
    return lab, unl, val_ann


def _options(tmp_path, lab, unl, val_ann, max_iters=3, interval=3):
    return [
        f'train_cfg.max_iters={max_iters}', f'train_cfg.val_interval={interval}',
        'default_hooks.logger.interval=1', f'default_hooks.checkpoint.interval={interval}',
        'default_hooks.checkpoint.max_keep_ckpts=-1', 'labeled_batch_size=2',
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


CA_RETINANET = osp.join(REPO, 'configs/semi_det/classaware_retinanet-r18_2k_detscenes-10pc.py')


def test_class_aware_one_stage_detector_trains_and_validates(tmp_path):
    from mmengine.logging import MessageHub

    from ssvision.tools import train as train_tool

    lab, unl, val_ann = _scenes(tmp_path)
    work_dir = str(tmp_path / 'work')
    train_tool.main([CA_RETINANET, '--work-dir', work_dir, '--cfg-options',
                     *_options(tmp_path, lab, unl, val_ann)])
    hub = MessageHub.get_current_instance()
    assert 'train/unsup_loss_cls' in hub.log_scalars and 'train/pb_per_img' in hub.log_scalars
    assert hub.get_scalar('train/pb_per_img').current() > 0  # the one-stage teacher yields boxes
    assert 'val/teacher/mAP' in hub.log_scalars and 'val/student/AP50' in hub.log_scalars
    ckpt = torch.load(osp.join(work_dir, 'iter_3.pth'), map_location='cpu', weights_only=True)
    assert 'selector.tau' in ckpt['state_dict'] and any(
        k.startswith('teacher.') for k in ckpt['state_dict'])


def test_resumed_detection_run_equals_uninterrupted_run(tmp_path, one_thread, capfd):
    """Resuming at iteration 2 of 4 reproduces the straight run's student, EMA teacher,
    class-aware thresholds and pseudo-box log exactly (sampler position and RNG included)."""
    from ssvision.tools import train as train_tool

    lab, unl, val_ann = _scenes(tmp_path)
    opts = _options(tmp_path, lab, unl, val_ann, max_iters=4, interval=2)
    ref_dir, cut_dir = str(tmp_path / 'ref'), str(tmp_path / 'cut')
    train_tool.main([CA_RETINANET, '--work-dir', ref_dir, '--cfg-options', *opts])
    train_tool.main([CA_RETINANET, '--work-dir', cut_dir,
                     '--resume', osp.join(ref_dir, 'iter_2.pth'), '--cfg-options', *opts])
    ref = torch.load(osp.join(ref_dir, 'iter_4.pth'), map_location='cpu', weights_only=True)
    cut = torch.load(osp.join(cut_dir, 'iter_4.pth'), map_location='cpu', weights_only=True)
    assert cut['meta']['iter'] == 4
    assert not osp.exists(osp.join(cut_dir, 'iter_2.pth'))  # iterations 1-2 were not rerun
    assert 'Resumed the data stream at iteration 2' in capfd.readouterr().out
    assert ref['state_dict'].keys() == cut['state_dict'].keys()
    assert bool(ref['state_dict']['selector.seen'].any())  # thresholds were learned
    for key, value in ref['state_dict'].items():
        assert torch.equal(value, cut['state_dict'][key]), key
    ref_hub, cut_hub = ref['message_hub']['log_scalars'], cut['message_hub']['log_scalars']
    for key in ('train/unsup_loss_cls', 'train/pb_per_img', 'train/sup_loss'):
        assert torch.equal(torch.as_tensor(ref_hub[key]['log'][-2:]),
                           torch.as_tensor(cut_hub[key]['log'][-2:])), key


def test_show_det_views_draws_pseudo_boxes(tmp_path):
    show_det_views = _tool_script('show_det_views')

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
