"""Atomic writes: whole files under their names, with the permissions a plain open gives."""

import os
import stat

import pytest
import torch

from ssvision.tools import zoo as zoo_tool
from ssvision.utils.atomic import AtomicFile, atomic_write


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield 0o644
    os.umask(old)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, umask_022):
    path = tmp_path / 'a.txt'
    path.write_text('old')
    with pytest.raises(RuntimeError), atomic_write(path) as tmp:
        open(tmp, 'w').write('half')
        raise RuntimeError('disk full')
    with pytest.raises(RuntimeError), AtomicFile(path, 'w') as f:
        f.write('half')
        raise RuntimeError('disk full')
    assert path.read_text() == 'old' and os.listdir(tmp_path) == ['a.txt']
    with AtomicFile(path, 'w') as f:
        f.write('new')
    assert path.read_text() == 'new' and _mode(path) == umask_022


def test_published_files_are_readable_by_others(tmp_path, umask_022):
    # catches: publish's weights and team index written through mkstemp, which leaves
    # them 0600, so a team's web server or colleague cannot read what was published
    ckpt = tmp_path / 'iter_1.pth'
    torch.save({'state_dict': {'teacher.w': torch.ones(2), 'student.w': torch.zeros(2)}},
               ckpt)
    index = tmp_path / 'team.json'
    assert zoo_tool.main(['publish', str(ckpt), '--name', 'mine', '--out-dir',
                          str(tmp_path / 'out'), '--url-base', 'https://example.org/w',
                          '--index', str(index)]) == 0
    [weights] = os.listdir(tmp_path / 'out')
    assert weights.startswith('mine-') and weights.endswith('.pth')
    assert _mode(tmp_path / 'out' / weights) == umask_022
    assert _mode(index) == umask_022
