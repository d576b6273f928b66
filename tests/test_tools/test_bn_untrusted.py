"""A network with the field's BatchNorm momentum (0.001), no BNRecalibrationHook in its
config: validation, the checkpoint and tools/test.py use re-estimated statistics, and
training is the same as without them."""

import os.path as osp

import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs/fixmatch/fixmatch_wrn28-2_2k_mnist5k-4pc.py')
ITERS = 30


def _opts(split_file):
    return [f'max_iters={ITERS}', f'train_cfg.val_interval={ITERS}',
            'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
            f'train_dataloader.dataset.labeled.split_file={split_file}',
            f'train_dataloader.dataset.unlabeled.split_file={split_file}',
            f'val_dataloader.dataset.split_file={split_file}',
            f'default_hooks.checkpoint.interval={ITERS}', 'default_hooks.logger.interval=10',
            'model.model.depth=10', 'model.model.widen_factor=1',
            'optim_wrapper.optimizer.lr=0.1']


def test_untrusted_batchnorm_is_re_estimated_without_a_hook(tmp_path, split_file,
                                                            one_thread):
    # catches: validation, the saved checkpoint and tools/test.py on running statistics
    # that still hold most of their start (the teacher scored at chance where it had
    # learnt), and a re-estimation that leaks into training (buffers not put back)
    from mmengine.logging import MessageHub

    from ssvision.tools import test as test_tool
    from ssvision.tools import train as train_tool
    child = tmp_path / 'mine.py'
    # the user's config lists its hooks without BNRecalibrationHook
    child.write_text(f"_base_ = ['{CONFIG}']\n"
                     "custom_hooks = [dict(type='EMATeacherHook', momentum=0.99),\n"
                     "                dict(type='ResumeStateHook')]\n")
    train_tool.main([str(child), '--work-dir', str(tmp_path / 'run'),
                     '--cfg-options', *_opts(split_file)])
    hub = MessageHub.get_current_instance()
    val_teacher = hub.get_scalar('val/teacher/top1').current()
    ckpt = torch.load(tmp_path / 'run' / f'iter_{ITERS}.pth', map_location='cpu',
                      weights_only=True)
    buffers = ckpt['meta']['bn_recalibrated']
    assert any(k.startswith('teacher.') for k in buffers)
    assert any(k.startswith('student.') for k in buffers)
    state = ckpt['state_dict']
    key = next(k for k in buffers if k.endswith('running_mean'))
    # the state dict keeps the training buffers (resume continues the same run)
    assert not torch.allclose(state[key], buffers[key])

    metrics = test_tool.main([str(child), str(tmp_path / 'run' / f'iter_{ITERS}.pth'),
                              '--model', 'teacher', '--work-dir', str(tmp_path / 'test'),
                              '--cfg-options', *_opts(split_file)])
    assert abs(metrics['teacher/top1'] - val_teacher) < 1e-6
    # the same checkpoint on its raw running statistics scores far lower
    raw = tmp_path / 'raw.pth'
    ckpt['meta'].pop('bn_recalibrated')
    torch.save(ckpt, raw)
    raw_metrics = test_tool.main([str(child), str(raw), '--model', 'teacher',
                                  '--work-dir', str(tmp_path / 'test_raw'),
                                  '--cfg-options', *_opts(split_file)])
    assert val_teacher > raw_metrics['teacher/top1'] + 10, (val_teacher, raw_metrics)
