"""CUDA checks (select with -m gpu; skipped without a GPU)."""

import math

import pytest
import torch

pytestmark = pytest.mark.gpu

NET = dict(type='TinyCNN', num_classes=10, in_channels=1, width=8)


def _batch(device='cpu'):
    g = torch.Generator().manual_seed(0)
    img = lambda n: torch.randint(0, 256, (n, 1, 16, 16), generator=g, dtype=torch.uint8)  # noqa: E731
    lab = torch.randint(0, 10, (4,), generator=g)
    return {'inputs': {'sup': img(4), 'unsup_teacher': img(8), 'unsup_student': img(8),
                       'unsup_student2': img(8)},
            'data_samples': {'sup': {'gt_label': lab},
                             'unsup_teacher': {'gt_label': torch.full((8,), -1),
                                               'true_label': torch.randint(0, 10, (8,)),
                                               'sample_idx': torch.arange(8)}}}


@pytest.mark.parametrize('selector', [
    dict(type='FixedThresholdSelector', threshold=0.0),
    dict(type='ClassAwareTopKSelector', ratio=1.0, floor=0.0),
    dict(type='FreeMatchSelector', num_classes=10),
    dict(type='SoftMatchSelector', num_classes=10),
    dict(type='FlexMatchSelector', num_classes=10, num_unlabeled=8, threshold=0.0),
])
@pytest.mark.parametrize('amp', [False, True])
def test_train_step_on_cuda(selector, amp):
    from mmengine.optim import AmpOptimWrapper, OptimWrapper

    import ssvision.models  # noqa: F401
    from ssvision.registry import MODELS
    model = MODELS.build(dict(type='DSSN', model=NET, selector=selector)).cuda()
    optim = torch.optim.SGD(model.student.parameters(), lr=0.01)
    wrapper = AmpOptimWrapper(optimizer=optim) if amp else OptimWrapper(optimizer=optim)
    log = model.train_step(_batch(), wrapper)
    assert math.isfinite(float(log['loss']))
    buffers = list(model.selector.buffers())
    # stateful selectors keep their statistics in buffers, which must follow .cuda()
    stateless = selector['type'] in ('FixedThresholdSelector', 'ClassAwareTopKSelector')
    assert stateless or buffers, f"{selector['type']} has no buffers to check"
    assert all(b.is_cuda for b in buffers)
    assert math.isfinite(float(log['unsup_loss'])) and 'sel_frac' in log
