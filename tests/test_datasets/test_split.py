"""Split rules, the split json and datasets restricted to a subset."""

from __future__ import annotations

import importlib.util
import json
import os

import numpy as np
import pytest

from ssvision.datasets.digits import Digits8x8
from ssvision.datasets.split import load_split, long_tail_count, make_split, save_split

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope='module')
def digits():
    return Digits8x8()


def _class_counts(ids, labels):
    return np.bincount(labels[np.asarray(ids, dtype=np.int64)], minlength=10).tolist()


def test_counts_and_disjoint(digits):
    labels = digits.labels
    split = make_split(labels, digits.names, num_labels_per_class=4, num_test_per_class=20,
                       seed=0)
    assert split['num_classes'] == 10 and split['seed'] == 0
    assert _class_counts(split['labeled'], labels) == [4] * 10
    assert _class_counts(split['test'], labels) == [20] * 10
    per_class = np.bincount(labels).tolist()
    assert _class_counts(split['unlabeled'], labels) == [n - 24 for n in per_class]
    assert split['counts'] == {'labeled': [4] * 10, 'test': [20] * 10,
                               'unlabeled': [n - 24 for n in per_class]}
    sets = [set(split[k]) for k in ('labeled', 'unlabeled', 'test')]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert set.union(*sets) == set(range(len(labels)))
    assert split['rule']['num_labels_per_class'] == 4


def test_fractions(digits):
    labels = digits.labels
    n = np.bincount(labels)
    split = make_split(labels, label_fraction=0.1, test_fraction=0.2, seed=3)
    assert split['counts']['labeled'] == [max(1, round(0.1 * c)) for c in n]
    assert split['counts']['test'] == [round(0.2 * c) for c in n]
    tiny = make_split(labels, label_fraction=0.0001, seed=3)
    assert tiny['counts']['labeled'] == [1] * 10  # at least one per class


def test_seeded(digits):
    labels = digits.labels
    a = make_split(labels, num_labels_per_class=5, seed=7)
    b = make_split(labels, num_labels_per_class=5, seed=7)
    c = make_split(labels, num_labels_per_class=5, seed=8)
    assert a == b
    assert a['labeled'] != c['labeled']


def test_long_tail(digits):
    labels = digits.labels
    r = 10.0
    split = make_split(labels, num_labels_per_class=2, num_test_per_class=5,
                       imbalance_ratio=r, seed=0)
    n_max = int(np.bincount(labels).min()) - 7
    expected = [round(n_max * r ** (-k / 9)) for k in range(10)]
    assert split['counts']['unlabeled'] == expected
    assert _class_counts(split['unlabeled'], labels) == expected
    assert expected[0] == n_max and expected[-1] == round(n_max / r)
    assert long_tail_count(n_max, r, 9, 10) == expected[-1]
    assert not set(split['unlabeled']) & (set(split['labeled']) | set(split['test']))


def test_errors(digits):
    labels = digits.labels
    with pytest.raises(ValueError, match='class 0 has 178 samples'):
        make_split(labels, num_labels_per_class=179)
    with pytest.raises(ValueError, match='exactly one'):
        make_split(labels, seed=0)
    with pytest.raises(ValueError, match='exactly one'):
        make_split(labels, num_labels_per_class=1, label_fraction=0.1)
    with pytest.raises(ValueError, match='class 3 has 0 samples'):
        make_split(np.array([0, 1, 2, 4]), num_labels_per_class=1)


def test_json_round_trip(tmp_path, digits):
    split = make_split(digits.labels, digits.names, num_labels_per_class=3, seed=1)
    path = str(tmp_path / 'sub' / 'split.json')
    save_split(split, path)
    with open(path) as f:
        assert json.load(f) == split
    assert load_split(path) == split
    bad = dict(split, unlabeled=split['unlabeled'] + [split['labeled'][0]])
    save_split(bad, path)
    with pytest.raises(ValueError, match="in 'labeled' and 'unlabeled'"):
        load_split(path)


def test_dataset_subsets(tmp_path, digits):
    split = make_split(digits.labels, digits.names, num_labels_per_class=4,
                       num_test_per_class=10, seed=0)
    path = str(tmp_path / 'split.json')
    save_split(split, path)
    lab = Digits8x8(split_file=path, subset='labeled')
    unl = Digits8x8(split_file=path, subset='unlabeled')
    test = Digits8x8(split_file=path, subset='test')
    assert (len(lab), len(test)) == (40, 100)
    assert len(unl) == len(digits) - 140
    assert lab.names == split['labeled']
    np.testing.assert_array_equal(lab.labels, digits.labels[split['labeled']])
    assert np.bincount(lab.labels).tolist() == [4] * 10
    out = unl[(0, 9)]
    assert out['gt_label'] == -1
    assert out['true_label'] == int(digits.labels[split['unlabeled'][0]])
    np.testing.assert_array_equal(out['img'], digits[split['unlabeled'][0]]['img'])
    assert lab[0]['gt_label'] == lab.get_label(0) == lab.labels[0]


def test_split_missing_id(tmp_path, digits):
    split = make_split(digits.labels, digits.names, num_labels_per_class=2, seed=0)
    split['labeled'].append(99999)
    path = str(tmp_path / 'split.json')
    save_split(split, path)
    with pytest.raises(ValueError) as e:
        Digits8x8(split_file=path, subset='labeled')
    msg = str(e.value)
    assert path in msg and '99999' in msg and 'load_digits' in msg


def test_split_empty_labeled(tmp_path, digits):
    split = make_split(digits.labels, digits.names, num_labels_per_class=2, seed=0)
    split['labeled'] = []
    path = str(tmp_path / 'split.json')
    save_split(split, path)
    with pytest.raises(ValueError, match="no 'labeled' ids"):
        Digits8x8(split_file=path, subset='labeled')
    with pytest.raises(ValueError, match='without subset'):
        Digits8x8(split_file=path)


def test_label_out_of_range(digits):
    with pytest.raises(ValueError) as e:
        Digits8x8(num_classes=9)
    assert 'label 9' in str(e.value) and 'load_digits' in str(e.value)


def test_string_ids(tmp_path):
    names = [f'c{i % 3}/img{i}.png' for i in range(30)]
    labels = np.arange(30) % 3
    split = make_split(labels, names, num_labels_per_class=2, seed=0)
    assert all(isinstance(x, str) for x in split['labeled'])
    save_split(split, str(tmp_path / 's.json'))
    assert load_split(str(tmp_path / 's.json'))['labeled'] == split['labeled']


def test_cli(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        'make_split_cli', os.path.join(REPO_ROOT, 'tools', 'make_split.py'))
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    out = str(tmp_path / 'digits.json')
    split = cli.main(['--dataset', 'Digits8x8', '--labels-per-class', '3',
                      '--test-per-class', '5', '--imbalance-ratio', '5', '--seed', '2',
                      '--out', out])
    printed = capsys.readouterr().out
    assert 'labeled' in printed and out in printed
    assert load_split(out)['counts'] == split['counts']
    assert split['counts']['labeled'] == [3] * 10
    assert split['dataset'] == {'type': 'Digits8x8'}
