"""``dist_session``: the process-group teardown of the train and test tools.

One-process Gloo groups over a file store (no network), so these run in a second.
"""

import pytest
import torch.distributed as dist

from ssvision.tools.train import dist_session

pytestmark = pytest.mark.skipif(not dist.is_available(), reason='torch.distributed missing')


def _init(tmp_path, name='store'):
    dist.init_process_group('gloo', init_method=f'file://{tmp_path / name}', rank=0,
                            world_size=1)


@pytest.fixture(autouse=True)
def _no_group_left():
    yield
    if dist.is_initialized():
        dist.destroy_process_group()


def test_a_group_started_inside_ends_with_the_session(tmp_path):
    # catches: a teardown that is never reached (the group left to interpreter exit,
    # where Gloo's threads can abort a finished rank)
    with dist_session():
        _init(tmp_path)
        assert dist.is_initialized()
    assert not dist.is_initialized()


def test_a_failure_inside_still_ends_the_group_and_propagates(tmp_path):
    # catches: a session that swallows the error, or one that only tears down on success
    # (a runner that fails to build after the group started)
    with pytest.raises(RuntimeError, match='build failed'):
        with dist_session():
            _init(tmp_path)
            raise RuntimeError('build failed')
    assert not dist.is_initialized()


def test_a_failed_barrier_still_destroys_the_group(tmp_path, monkeypatch):
    # catches: destroy_process_group skipped when the final barrier raises (a dead peer)
    def broken_barrier(*args, **kwargs):
        raise RuntimeError('peer gone')

    monkeypatch.setattr(dist, 'barrier', broken_barrier)
    with pytest.raises(RuntimeError, match='peer gone'):
        with dist_session():
            _init(tmp_path)
    assert not dist.is_initialized()


def test_the_callers_group_is_left_alone(tmp_path):
    # catches: a tool called in-process (ssvision.cli.main) ending a group its caller made
    _init(tmp_path)
    with dist_session():
        pass
    assert dist.is_initialized()
    with pytest.raises(ValueError):
        with dist_session():
            raise ValueError('inner')
    assert dist.is_initialized()
