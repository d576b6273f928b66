"""Checkpoints are written atomically by every ssvision run (mmengine_compat).

A real mmengine Runner trains a tiny model in a child process that imports ssvision
(nothing else switches the behaviour on) and saves a checkpoint every iteration; before
the second save a file-size limit (``RLIMIT_FSIZE``) is set below the checkpoint's size,
so the kernel refuses the write half-way, as a full disk does.
"""

import builtins
import errno
import os
import subprocess
import sys
import textwrap

import pytest
import torch

resource = pytest.importorskip('resource')  # POSIX only

_CHILD = textwrap.dedent("""
    import os, resource, signal, sys
    import torch
    from torch import nn
    from mmengine.hooks import Hook
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    import ssvision  # noqa: F401  (all it takes: checkpoints become atomic)

    work = sys.argv[1]


    class Toy(BaseModel):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(256, 256)  # about 260 kB per checkpoint

        def forward(self, inputs, data_samples=None, mode='tensor'):
            out = self.fc(inputs)
            return {'loss': out.pow(2).mean()} if mode == 'loss' else out


    class FileSizeLimit(Hook):
        # before the second save: a limit of half the weights' size (the checkpoint
        # holds more than the weights)
        saves = 0

        def before_save_checkpoint(self, runner, checkpoint):
            self.saves += 1
            expected = os.path.join(work, 'expected.pt')
            if self.saves == 1:
                torch.save(runner.model.state_dict(), expected)
            elif self.saves == 2:
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
                limit = os.path.getsize(expected) // 2
                resource.setrlimit(resource.RLIMIT_FSIZE,
                                   (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))


    torch.manual_seed(0)
    data = [dict(inputs=torch.randn(256)) for _ in range(8)]
    runner = Runner(
        model=Toy(), work_dir=work, experiment_name='toy',
        train_dataloader=dict(dataset=data, batch_size=2, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=3),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1,
                                           max_keep_ckpts=1, save_last=True)),
        custom_hooks=[FileSizeLimit()], default_scope='mmengine')
    runner.train()
""")


def test_failed_checkpoint_write_leaves_no_partial_file_and_keeps_the_previous(tmp_path):
    """Catches (1) checkpoints written straight into their final name (a truncated
    iter_2.pth is left) and (2) max_keep_ckpts deleting iter_1.pth before iter_2.pth is
    safely written (no checkpoint left at all)."""
    work = tmp_path / 'work'
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    proc = subprocess.run([sys.executable, '-c', _CHILD, str(work)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0, 'the second checkpoint should not have been written'
    names = sorted(os.listdir(work))
    assert 'iter_2.pth' not in names, 'a partial checkpoint under its final name'
    assert not [n for n in names if '.tmp-' in n], names
    assert 'iter_1.pth' in names, 'the previous checkpoint was deleted'
    assert 'could not write the checkpoint' in proc.stderr, proc.stderr[-3000:]
    # the previous checkpoint is whole and loads, and last_checkpoint still names it
    ckpt = torch.load(work / 'iter_1.pth', map_location='cpu', weights_only=False)
    expected = torch.load(work / 'expected.pt', weights_only=True)
    for key, value in expected.items():
        torch.testing.assert_close(ckpt['state_dict'][key], value, rtol=0, atol=0)
    assert ckpt['meta']['iter'] == 1
    from mmengine.runner.checkpoint import find_latest_checkpoint
    assert find_latest_checkpoint(str(work)) == str(work / 'iter_1.pth')


def test_last_checkpoint_file_is_replaced_only_by_a_complete_write(tmp_path):
    """CheckpointHook's ``open`` (the one it writes last_checkpoint with): a write that
    fails half-way leaves the previous content. Catches last_checkpoint written in
    place (a failure leaves it empty or cut, and --resume finds no checkpoint)."""
    from mmengine.hooks import checkpoint_hook

    import ssvision  # noqa: F401  (installs the atomic open)
    hook_open = getattr(checkpoint_hook, 'open', builtins.open)  # what the hook calls
    path = tmp_path / 'last_checkpoint'
    path.write_text('work/iter_1.pth')
    with pytest.raises(OSError):
        with hook_open(str(path), 'w') as f:
            f.write('work/iter_')
            raise OSError(errno.ENOSPC, 'No space left on device')
    assert path.read_text() == 'work/iter_1.pth'
    assert os.listdir(tmp_path) == ['last_checkpoint']
    with hook_open(str(path), 'w') as f:  # a complete write replaces it
        f.write('work/iter_2.pth')
    assert path.read_text() == 'work/iter_2.pth'
    with hook_open(str(path)) as f:  # reads are the builtin's
        assert f.read() == 'work/iter_2.pth'
