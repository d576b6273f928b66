import pytest
import torch

from ssvision.models.selectors import FixedThresholdSelector, fixed_threshold


def test_fixed_threshold_hand_computed():
    probs = torch.tensor([[0.96, 0.03, 0.01], [0.5, 0.4, 0.1], [0.0, 0.05, 0.95]])
    labels, weight = fixed_threshold(probs, 0.95)
    assert labels.tolist() == [0, 0, 2]
    assert weight.tolist() == [1.0, 0.0, 1.0]


def test_threshold_edges_and_no_mutation():
    probs = torch.softmax(torch.randn(8, 5), dim=1)
    before = probs.clone()
    sel = FixedThresholdSelector(threshold=0.0)
    _, w = sel(probs)
    assert w.sum() == 8
    _, w = FixedThresholdSelector(threshold=1.01)(probs)
    assert w.sum() == 0
    assert torch.equal(probs, before)


def test_dense_inputs():
    probs = torch.softmax(torch.randn(2, 4, 3, 5), dim=1)
    labels, weight = FixedThresholdSelector(0.0)(probs)
    assert labels.shape == (2, 3, 5) and weight.shape == (2, 3, 5)
    assert torch.equal(labels, probs.argmax(1))


def test_bad_threshold():
    with pytest.raises(ValueError):
        FixedThresholdSelector(-0.1)
