"""FreeMatch: ssvision's default ``FreeMatch`` (``FreeMatchSelector`` + fairness term)
against USB 0.3.2's ``FreeMatchThresholdingHook`` / ``entropy_loss`` /
``FreeMatch.train_step``."""

import pytest
import torch

pytestmark = pytest.mark.parity

STEPS = 60
C = 6


def test_freematch_matches_usb_train_step(usb):
    # Catches the fairness loss dividing by max(h, 1e-12) (absent classes get 1e12
    # instead of dropping out), a fairness term on an empty selection, and state
    # updated after the mask.
    from semilearn.algorithms.freematch.freematch import entropy_loss
    ours = usb.ssvision_model('FreeMatch', C)
    ref = usb.algorithm('freematch', num_classes=C)
    seen = usb.record(ref)
    hook = ref.hooks_dict['MaskingHook']
    absent = empty = 0
    for s in usb.lockstep(ours, ref, STEPS, C):
        t = s.t
        mask = seen['masking']
        assert torch.equal(s.weight, mask), f'mask differs at step {t}'
        assert torch.equal(s.labels, seen['gen_ulb_targets']), f'labels differ at step {t}'
        sel = ours.selector
        usb.close(sel.tau, hook.time_p, 'tau', t, usb.STATE_TOL)
        usb.close(sel.p_tilde, hook.p_model, 'p_tilde', t, usb.STATE_TOL)
        usb.close(sel.label_hist, hook.label_hist, 'label_hist', t, usb.STATE_TOL)
        usb.close(s.losses['unsup_loss'], s.log['train/unsup_loss'], 'unsup_loss', t)
        if mask.sum() > 0:
            strong = s.b['x_ulb_s'].detach()
            ent, _ = entropy_loss(mask, strong, ref.p_model, ref.label_hist)
            absent += int(torch.bincount(strong[mask.bool()].argmax(dim=1),
                                         minlength=C).eq(0).any())
        else:
            ent, empty = 0.0, empty + 1
        usb.close(s.losses['unsup_fair_loss'], ref.lambda_e * ent, 'fairness loss', t)
        usb.same_total_and_gradients(s)
    # the sequence exercised classes absent from the selection and an empty selection
    assert absent > STEPS // 2 and empty >= 1


def test_fairness_loss_of_a_five_class_batch_matches_usb(usb):
    # Catches 1e12 weights for classes that no selected sample predicts or the teacher's
    # histogram lacks (clamping the divisors at 1e-12 gives -25.96 here, USB -12.71).
    from semilearn.algorithms.freematch.freematch import entropy_loss

    from ssvision.models.selectors import FreeMatchSelector
    sel = FreeMatchSelector(num_classes=5)
    g = torch.Generator().manual_seed(0)
    sel.p_tilde.copy_(torch.softmax(torch.randn(5, generator=g), 0))
    sel.label_hist.copy_(torch.tensor([0.4, 0.3, 0.2, 0.1, 0.0]))
    logits = (3 * torch.randn(12, 5, generator=g)).requires_grad_(True)
    ref_logits = logits.detach().clone().requires_grad_(True)
    mask = (torch.rand(12, generator=g) > 0.3).float()
    loss = sel.fairness_loss(logits.softmax(dim=1), mask)
    ref, _ = entropy_loss(mask, ref_logits, sel.p_tilde, sel.label_hist)
    assert torch.bincount(logits[mask.bool()].argmax(1), minlength=5).eq(0).any()
    usb.close(loss, ref, 'fairness loss', 0)
    loss.backward()
    ref.backward()
    usb.close(logits.grad, ref_logits.grad, 'fairness gradient', 0)


@pytest.mark.parametrize('momentum', [0.999, 0.5])
def test_freematch_selector_matches_usb_hook(usb, momentum):
    # Catches thresholds read before this batch's update (USB updates tau, p_model and
    # label_hist first); a fast momentum makes the order visible at every step.
    from ssvision.models.selectors import FreeMatchSelector
    sel = FreeMatchSelector(num_classes=C, ema_momentum=momentum)
    sel.train()
    alg = usb.algorithm('freematch', num_classes=C, ema_p=momentum)
    hook = alg.hooks_dict['MaskingHook']
    g = torch.Generator().manual_seed(11)
    freq = 2.0 ** -torch.arange(C, dtype=torch.float64)
    rejected = 0
    for step in range(STEPS):
        y = torch.multinomial(freq, 32, replacement=True, generator=g)
        logits = torch.randn(32, C, generator=g) + (0.5 + step / 20) * torch.nn.functional.one_hot(
            y, C)
        _, weight = sel(logits.softmax(dim=1))
        mask = hook.masking(alg, logits_x_ulb=logits)  # USB applies the softmax itself
        assert torch.equal(weight, mask), f'mask differs at step {step}'
        usb.close(sel.tau, hook.time_p, 'tau', step, usb.STATE_TOL)
        usb.close(sel.p_tilde, hook.p_model, 'p_tilde', step, usb.STATE_TOL)
        usb.close(sel.label_hist, hook.label_hist, 'label_hist', step, usb.STATE_TOL)
        rejected += int((weight == 0).sum())
    if momentum < 0.9:
        assert rejected > 0  # thresholds that follow the batch reject samples
