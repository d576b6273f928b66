"""One whole training step, network included: ssvision with USB's pseudo-label source
(``semi_train_cfg.pseudo_label_source='online'``) against USB 0.3.2's ``train_step``.

Both sides get the same network weights (a WideResNet with BatchNorm in training mode),
the same images and the same SGD; USB's algorithm runs its own ``train_step`` with its
own hooks (one concatenated forward of labeled, weak and strong images; pseudo-labels
from the detached weak logits). Over three consecutive steps the losses, the gradients
of every parameter, the BatchNorm buffers and (FlexMatch) the class state must agree.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

pytestmark = [pytest.mark.parity, pytest.mark.usefixtures('one_thread')]

WRN = dict(type='WideResNet', num_classes=6, depth=10, widen_factor=1, in_channels=1,
           drop_rate=0.0, bn_momentum=0.001)
NUM_UNLABELED = 40


class _UsbNet(nn.Module):
    """USB's network interface (``{'logits', 'feat'}``) over an ssvision network."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x):
        logits = self.net(x)
        return {'logits': logits, 'feat': logits}


def _images(step: int, n_lb=4, n_ulb=8, size=16):
    g = torch.Generator().manual_seed(100 + step)
    x_lb = torch.randn(n_lb, 1, size, size, generator=g)
    y_lb = torch.tensor([0, 1, 0, 2])  # classes of unequal size in the labeled batch
    weak = torch.randn(n_ulb, 1, size, size, generator=g)
    strong = weak + 0.5 * torch.randn(n_ulb, 1, size, size, generator=g)
    idx = torch.randperm(NUM_UNLABELED, generator=g)[:n_ulb]
    return x_lb, y_lb, weak, strong, idx


@pytest.mark.parametrize('name,selector,cutoff', [
    ('fixmatch', dict(type='FixedThresholdSelector', threshold=0.9), dict(p_cutoff=0.9)),
    ('flexmatch', dict(type='FlexMatchSelector', num_classes=6, threshold=0.9),
     dict(p_cutoff=0.9)),
])
def test_whole_step_equals_usb(usb, name, selector, cutoff):
    # catches: pseudo-labels from the EMA teacher, the weak view in a forward of its own
    # (other BatchNorm batch statistics), a gradient through the weak view, a loss
    # reduction over the selected samples only, FlexMatch's class state updated in
    # another order; the teacher differs from the student and BN is in training mode
    from ssvision.models.algorithms import FixMatch
    torch.manual_seed(0)
    model = FixMatch(model=WRN, selector=selector,
                     semi_train_cfg=dict(pseudo_label_source='online'))
    with torch.no_grad():
        for p in model.teacher.parameters():
            p.add_(0.3 * torch.randn_like(p))
        model.student.head.weight.mul_(6.0)  # confident enough to cross the threshold
    model.bind_data(type('D', (), {'num_unlabeled': NUM_UNLABELED})())
    model.train()
    alg = usb.algorithm(name, num_classes=6, ulb_dest_len=NUM_UNLABELED, **cutoff)
    alg.model = _UsbNet(copy.deepcopy(model.student)).train()
    opt_ours = torch.optim.SGD(model.student.parameters(), lr=0.05, momentum=0.9)
    opt_usb = torch.optim.SGD(alg.model.parameters(), lr=0.05, momentum=0.9)
    selected = []
    for step in range(3):
        x_lb, y_lb, weak, strong, idx = _images(step)
        alg.it = step
        usb_loss, log = usb.train_step(alg, x_lb, y_lb, weak, strong, idx)
        total, losses, (labels, weight) = usb.ssvision_step(model, step, x_lb, y_lb, weak,
                                                            strong, idx)
        usb.close(total, usb_loss, 'total loss', step)
        usb.close(losses['sup_loss'], log['train/sup_loss'], 'sup_loss', step)
        usb.close(losses['unsup_loss'], log['train/unsup_loss'], 'unsup_loss', step)
        usb.close(weight.mean(), log['train/util_ratio'], 'kept share', step)
        selected.append(float(weight.mean()))
        opt_ours.zero_grad()
        opt_usb.zero_grad()
        total.backward()
        usb_loss.backward()
        for (pname, p), q in zip(model.student.named_parameters(),
                                 alg.model.net.parameters()):
            usb.close(p.grad, q.grad, f'gradient of {pname}', step,
                      dict(rtol=1e-4, atol=1e-6))
        for (bname, b), c in zip(model.student.named_buffers(), alg.model.net.buffers()):
            usb.close(b.float(), c.float(), f'buffer {bname}', step)
        opt_ours.step()
        opt_usb.step()
        if name == 'flexmatch':
            hook = alg.hooks_dict['MaskingHook']
            assert torch.equal(model.selector.selected_label, hook.selected_label.cpu())
    if name == 'fixmatch':
        assert 0 < max(selected) and min(selected) < 1  # the threshold matters in the run
    else:  # FlexMatch's warm-up keeps all early on; its class state must have moved
        assert (model.selector.selected_label >= 0).any()
