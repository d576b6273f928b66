"""``torchrun`` with two CPU processes (Gloo): trains, checkpoints and resumes exactly.

mmengine 0.10's PyTorch launcher calls ``torch.cuda.set_device`` unconditionally and the
runtime config used to hard-code NCCL, so a launched run on a machine without CUDA died
before its first iteration; ``ssvision.tools.train`` now starts the Gloo group itself.
"""

import os
import os.path as osp
import socket
import subprocess
import sys

import pytest
import torch

pytest.importorskip('sklearn')

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = 'ssvision::fixmatch/fixmatch_tinycnn_2k_mnist5k-4pc.py'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _torchrun(work_dir, split_file, extra=()):
    opts = [
        'train_cfg.max_iters=4', 'train_cfg.val_interval=100', 'param_scheduler.0.end=4',
        'param_scheduler.0.T_max=4', 'labeled_batch_size=4', 'train_dataloader.batch_size=12',
        'train_dataloader.sampler.labeled_batch_size=4',
        'train_dataloader.sampler.unlabeled_ratio=2', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False', 'val_dataloader.num_workers=0',
        'val_dataloader.persistent_workers=False',
        f'train_dataloader.dataset.labeled.split_file={split_file}',
        f'train_dataloader.dataset.unlabeled.split_file={split_file}',
        f'val_dataloader.dataset.split_file={split_file}',
        f'test_dataloader.dataset.split_file={split_file}',
        'default_hooks.checkpoint.interval=2', 'default_hooks.checkpoint.max_keep_ckpts=-1',
        'default_hooks.logger.interval=1', 'model.model.width=8',
        # a low threshold so that the unlabeled loss (and the selector state) is live
        'model.selector.threshold=0.1',
    ]
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
           '--master_addr', '127.0.0.1', '--master_port', str(_free_port()),
           '-m', 'ssvision.cli', 'train', CONFIG, '--launcher', 'pytorch',
           '--work-dir', work_dir, *extra, '--cfg-options', *opts]
    # no CUDA even where a GPU exists: the CPU path is what this test is about
    # SSVISION_VERBOSE: the environment table (distributed settings) on the console too
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='', PYTHONPATH=REPO, OMP_NUM_THREADS='1',
               SSVISION_VERBOSE='1')
    out = subprocess.run(cmd, env=env, cwd=osp.dirname(work_dir), capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout + out.stderr


def test_torchrun_two_cpu_processes_train_and_resume_exactly(split_file, tmp_path):
    # Catches: the CUDA-only launcher path (no iteration runs), a hard-coded NCCL backend,
    # DDP given device ids for a CPU module, and a resume that restarts the data stream or
    # loses the teacher / selector state under DDP (the resumed run would then differ).
    ref, cut = str(tmp_path / 'ref'), str(tmp_path / 'cut')
    log = _torchrun(ref, split_file)
    assert 'Distributed training: True' in log and "'backend': 'gloo'" in log
    assert 'Iter(train) [4/4]' in log
    # the same run, resumed in a fresh work dir from the iteration-2 checkpoint
    log = _torchrun(cut, split_file, ['--resume', osp.join(ref, 'iter_2.pth')])
    assert 'Resumed the data stream at iteration 2' in log

    a = torch.load(osp.join(ref, 'iter_4.pth'), map_location='cpu', weights_only=True)
    b = torch.load(osp.join(cut, 'iter_4.pth'), map_location='cpu', weights_only=True)
    assert a['meta']['iter'] == b['meta']['iter'] == 4
    keys = [k for k in a['state_dict'] if k.startswith(('teacher.', 'student.', 'selector.'))]
    assert any(k.startswith('teacher.') for k in keys)
    for k in keys:
        assert torch.equal(a['state_dict'][k], b['state_dict'][k]), k
