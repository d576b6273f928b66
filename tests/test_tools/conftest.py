"""Shared data of the end-to-end tool tests."""

import pytest


@pytest.fixture(scope='module')
def split_file(tmp_path_factory):
    from ssvision.datasets import MNIST5k, make_split, save_split
    ds = MNIST5k()
    split = make_split(ds.labels, list(range(len(ds))), num_labels_per_class=4,
                       num_test_per_class=20, seed=0)
    # A small (random) unlabeled pool keeps the test fast.
    split['unlabeled'] = split['unlabeled'][::12]
    path = str(tmp_path_factory.mktemp('splits') / 'mnist5k_4pc.json')
    save_split(split, path)
    return path
