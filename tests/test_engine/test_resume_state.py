"""ResumeStateHook refuses a resume whose data stream would not continue the saved one."""

from types import SimpleNamespace

import pytest

from ssvision.datasets.samplers import SemiSampler
from ssvision.engine.hooks import ResumeStateHook


class _Semi:
    num_labeled, num_unlabeled = 10, 40

    def __len__(self):
        return 50


def _runner(sampler, it):
    loop = SimpleNamespace(dataloader=SimpleNamespace(sampler=sampler))
    return SimpleNamespace(iter=it, train_loop=loop)


def test_resume_keeps_saved_seed_and_refuses_changed_batch_size():
    hook = ResumeStateHook()
    saved = {'ssvision': {'sampler': {'seed': 7, 'position': 3 * 8}}}
    hook.after_load_checkpoint(SimpleNamespace(), saved)
    sampler = SemiSampler(_Semi(), labeled_batch_size=2, unlabeled_ratio=3, seed=99)
    hook.before_train(_runner(sampler, it=3))  # 3 iterations of 8 items: consistent
    assert sampler.seed == 7

    hook.after_load_checkpoint(SimpleNamespace(), saved)
    changed = SemiSampler(_Semi(), labeled_batch_size=2, unlabeled_ratio=1, seed=99)
    with pytest.raises(ValueError, match='batch size'):
        hook.before_train(_runner(changed, it=3))
