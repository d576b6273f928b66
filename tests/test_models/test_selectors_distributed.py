"""Selector statistics stay identical across processes (2 CPU processes, gloo)."""

import os
import socket

import pytest
import torch
import torch.distributed as tdist
import torch.multiprocessing as mp

SELECTORS = [
    dict(type='FreeMatchSelector', num_classes=4, ema_momentum=0.5),
    dict(type='SoftMatchSelector', num_classes=4, ema_momentum=0.5),
    dict(type='FlexMatchSelector', num_classes=4, num_unlabeled=20, threshold=0.5),
    dict(type='ClassAwareTopKSelector', scope='window', num_classes=4, window=16, floor=0.1),
    # the class prior counts every process's labeled targets
    dict(type='ClassAwareTopKSelector', num_classes=4, ratio=0.5, floor=0.0, prior=True),
    dict(type='ClassAwareBoxSelector', num_classes=4, floor=0.0, min_score=0.0),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _worker(rank, world, port, out_dir):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    tdist.init_process_group('gloo', rank=rank, world_size=world)
    import ssvision.models  # noqa: F401
    from ssvision.registry import MODELS
    states = []
    for cfg in SELECTORS:
        sel = MODELS.build(cfg)
        sel.train()
        gen = torch.Generator().manual_seed(100 + rank)  # different data on each rank
        n = 6 + 3 * rank  # and different batch sizes
        if cfg['type'] == 'ClassAwareBoxSelector':
            from ssvision.structures import DetInstances
            dets = [DetInstances(torch.rand(n, 4) * 10, torch.randint(0, 4, (n,), generator=gen),
                                 torch.rand(n, generator=gen)) for _ in range(2)]
            sel.observe([torch.full((2 + rank,), rank)])
            sel(dets)
        else:
            sel.observe(torch.full((3 + rank,), rank))  # labeled classes differ by rank
            probs = torch.softmax(3 * torch.randn(n, 4, generator=gen), dim=1)
            idx = torch.arange(n) + 10 * rank
            sel(probs, sample_idx=idx)
        states.append({k: v.clone() for k, v in sel.state_dict().items()})
    torch.save(states, os.path.join(out_dir, f'rank{rank}.pt'))
    tdist.destroy_process_group()


@pytest.mark.skipif(not tdist.is_available(), reason='torch.distributed unavailable')
def test_selector_state_identical_on_every_rank(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / 'rank0.pt', weights_only=True)
    r1 = torch.load(tmp_path / 'rank1.pt', weights_only=True)
    for cfg, s0, s1 in zip(SELECTORS, r0, r1):
        assert s0.keys() == s1.keys()
        for key in s0:
            assert torch.equal(s0[key], s1[key]), (cfg['type'], key)
        if cfg.get('prior'):
            # catches: labeled counts left local to each process (not all-reduced): each
            # rank would hold only its own class (3 x class 0 or 4 x class 1)
            assert s0['labeled_counts'].tolist() == [3, 4, 0, 0]
    # the statistics did move away from their initial values
    assert not torch.allclose(r0[0]['tau'], torch.tensor(0.25))
    assert not torch.allclose(r0[-1]['tau'], torch.tensor(0.9))
    assert r0[-1]['labeled_boxes'].tolist() == [2.0, 3.0, 0.0, 0.0]  # both ranks' boxes
