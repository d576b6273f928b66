import itertools

import pytest
import torch

from ssvision.datasets.collate import semi_collate
from ssvision.datasets.samplers import SemiSampler


class _Part:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n


class _Semi:
    def __init__(self, nl, nu):
        self.num_labeled, self.num_unlabeled = nl, nu

    def __len__(self):
        return self.num_labeled + self.num_unlabeled


def _take(sampler, n):
    return list(itertools.islice(iter(sampler), n))


def test_batches_are_b_labeled_then_mu_b_unlabeled():
    ds = _Semi(10, 50)
    s = SemiSampler(ds, labeled_batch_size=4, unlabeled_ratio=3, seed=1)
    items = _take(s, s.batch_size * 5)
    for b in range(5):
        batch = [i for i, _ in items[b * 16:(b + 1) * 16]]
        assert all(i < 10 for i in batch[:4])
        assert all(10 <= i < 60 for i in batch[4:])


def test_labeled_epochs_are_permutations():
    s = SemiSampler(_Semi(8, 8), labeled_batch_size=4, unlabeled_ratio=1, seed=0)
    items = _take(s, 8 * 4)  # 4 batches = 16 labeled = 2 epochs of 8
    labeled = [i for k, (i, _) in enumerate(items) if k % 8 < 4]
    assert sorted(labeled[:8]) == list(range(8))
    assert sorted(labeled[8:]) == list(range(8))
    assert labeled[:8] != labeled[8:]  # reshuffled


def test_seeded_and_resumable_mid_epoch():
    ds = _Semi(7, 30)
    a = _take(SemiSampler(ds, 2, 3, seed=5), 200)
    assert a == _take(SemiSampler(ds, 2, 3, seed=5), 200)
    assert a != _take(SemiSampler(ds, 2, 3, seed=6), 200)
    s = SemiSampler(ds, 2, 3, seed=5)
    s.set_position(88)
    assert _take(s, 112) == a[88:]
    seeds = [seed for _, seed in a]
    assert len(set(seeds)) == len(seeds)


def test_sampler_errors():
    with pytest.raises(ValueError):
        SemiSampler(_Semi(5, 0), 2, 1, seed=0)
    with pytest.raises(TypeError):
        SemiSampler(_Part(5), 2, 1, seed=0)
    with pytest.raises(ValueError):
        SemiSampler(_Semi(5, 5), 0, 1, seed=0)


def test_collate_groups_branches():
    img = torch.zeros(1, 4, 4, dtype=torch.uint8)
    lab = {'inputs': {'sup': img}, 'data_samples': {'sup': {'gt_label': 3, 'true_label': 3}}}
    unl = {'inputs': {'unsup_teacher': img, 'unsup_student': img + 1},
           'data_samples': {'unsup_teacher': {'gt_label': -1, 'true_label': 7},
                            'unsup_student': {'gt_label': -1, 'true_label': 7}}}
    batch = semi_collate([lab, lab, unl, unl, unl])
    assert batch['inputs']['sup'].shape == (2, 1, 4, 4)
    assert batch['inputs']['unsup_student'].shape == (3, 1, 4, 4)
    assert batch['data_samples']['sup']['gt_label'].tolist() == [3, 3]
    assert batch['data_samples']['unsup_teacher']['true_label'].dtype == torch.long
    with pytest.raises(ValueError):
        semi_collate([])


def test_set_seed_switches_stream():
    ds = _Semi(7, 30)
    a = _take(SemiSampler(ds, 2, 3, seed=5), 50)
    s = SemiSampler(ds, 2, 3, seed=9)
    _take(s, 50)  # fill the permutation cache with seed 9
    s.set_seed(5)
    assert _take(s, 50) == a
