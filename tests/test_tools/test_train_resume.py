"""End to end through mmengine's real Runner on built-in MNIST-5k digits."""

import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs/fixmatch/fixmatch_tinycnn_2k_mnist5k-4pc.py')

pytest.importorskip('sklearn')


def _options(split_file, max_iters, workers=0, interval=None):
    interval = interval or max_iters
    opts = [
        f'train_cfg.max_iters={max_iters}', f'train_cfg.val_interval={interval}',
        f'param_scheduler.0.end={max_iters}', f'param_scheduler.0.T_max={max_iters}',
        'labeled_batch_size=4', 'train_dataloader.batch_size=12',
        'train_dataloader.sampler.labeled_batch_size=4',
        'train_dataloader.sampler.unlabeled_ratio=2',
        f'train_dataloader.num_workers={workers}',
        f'train_dataloader.persistent_workers={workers > 0}',
        'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
        f'train_dataloader.dataset.labeled.split_file={split_file}',
        f'train_dataloader.dataset.unlabeled.split_file={split_file}',
        f'val_dataloader.dataset.split_file={split_file}',
        f'test_dataloader.dataset.split_file={split_file}',
        f'default_hooks.checkpoint.interval={interval}', 'default_hooks.logger.interval=1',
        'default_hooks.checkpoint.max_keep_ckpts=-1',
        'model.model.width=8', 'model.selector.threshold=0.5',
    ]
    return opts


def test_runner_trains_and_checkpoint_is_weights_only(split_file, tmp_path):
    from mmengine.logging import MessageHub

    from ssvision.tools import train as train_tool
    work_dir = str(tmp_path / 'run')
    argv = [CONFIG, '--work-dir', work_dir, '--cfg-options',
            *_options(split_file, max_iters=4, interval=2)]
    train_tool.main(argv)
    ckpt = torch.load(osp.join(work_dir, 'iter_4.pth'), map_location='cpu', weights_only=True)
    keys = ckpt['state_dict'].keys()
    assert any(k.startswith('teacher.') for k in keys) and any(k.startswith('student.')
                                                               for k in keys)
    assert ckpt['meta']['iter'] == 4
    assert ckpt['ssvision']['sampler']['position'] == 4 * 12
    assert 'rng' in ckpt['ssvision']
    hub = MessageHub.get_current_instance()
    assert 'train/sel_frac' in hub.log_scalars and 'train/unsup_loss' in hub.log_scalars
    assert 'train/pl_acc_all' in hub.log_scalars
    assert 'val/teacher/top1' in hub.log_scalars

    from ssvision.tools import test as test_tool
    metrics = test_tool.main([CONFIG, osp.join(work_dir, 'iter_4.pth'), '--model', 'student',
                              '--work-dir', str(tmp_path / 'test'), '--cfg-options',
                              *_options(split_file, 4)])
    assert 'student/top1' in metrics and not any(k.startswith('teacher/') for k in metrics)
    assert 0.0 <= metrics['student/top1'] <= 100.0


def _train_cmd(work_dir, split_file, extra=()):
    return [sys.executable, osp.join(REPO, 'tools/train.py'), CONFIG, '--work-dir', work_dir,
            *extra, '--cfg-options', *_options(split_file, max_iters=8, workers=2, interval=4)]


@pytest.mark.slow
def test_killed_and_resumed_run_equals_uninterrupted_run(split_file, tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO)
    ref_dir, cut_dir = str(tmp_path / 'ref'), str(tmp_path / 'cut')
    subprocess.run(_train_cmd(ref_dir, split_file), check=True, env=env, cwd=str(tmp_path),
                   capture_output=True)

    # Interrupted run: kill -9 the process as soon as the iteration-4 checkpoint exists.
    proc = subprocess.Popen(_train_cmd(cut_dir, split_file), env=env, cwd=str(tmp_path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt4 = osp.join(cut_dir, 'iter_4.pth')
    deadline = time.time() + 300
    while not osp.exists(osp.join(cut_dir, 'last_checkpoint')) and time.time() < deadline:
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert osp.exists(ckpt4)
    assert not osp.exists(osp.join(cut_dir, 'iter_8.pth')), 'run finished before the kill'

    out = subprocess.run(_train_cmd(cut_dir, split_file, ['--resume', ckpt4]), check=True,
                         env=env, cwd=str(tmp_path), capture_output=True, text=True)
    assert 'Resumed the data stream at iteration 4' in out.stdout + out.stderr

    ref = torch.load(osp.join(ref_dir, 'iter_8.pth'), map_location='cpu', weights_only=True)
    cut = torch.load(osp.join(cut_dir, 'iter_8.pth'), map_location='cpu', weights_only=True)
    for key, value in ref['state_dict'].items():
        assert torch.equal(value, cut['state_dict'][key]), key
    ref_hub = ref['message_hub']['log_scalars']
    cut_hub = cut['message_hub']['log_scalars']
    for key in ('train/unsup_loss', 'train/sup_loss', 'train/sel_frac'):
        assert torch.equal(ref_hub[key]['log'][-4:], cut_hub[key]['log'][-4:]), key
    ref_val, cut_val = _final_val(ref_dir), _final_val(cut_dir)
    assert ref_val['teacher/top1'] == cut_val['teacher/top1']
    assert ref_val == cut_val


def _final_val(work_dir):
    import glob
    import json
    records = []
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            records += [json.loads(line) for line in f if 'teacher/top1' in line]
    assert records, f'no validation record under {work_dir}'
    return {k: v for k, v in records[-1].items() if '/' in k}
