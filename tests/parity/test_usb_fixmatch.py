"""FixMatch: ssvision's default (``FixedThresholdSelector(0.95)`` + ``hard_loss``) against
USB 0.3.2's ``FixMatch.train_step`` on the same logits, step by step."""

import pytest
import torch

pytestmark = pytest.mark.parity

STEPS = 60
C = 6


def test_fixmatch_matches_usb_train_step(usb):
    # Catches a loss averaged over the selected samples instead of the batch, a mask
    # or labels taken from another view, and a threshold other than USB's 0.95.
    ours = usb.ssvision_model('FixMatch', C)
    ref = usb.algorithm('fixmatch', num_classes=C)
    seen = usb.record(ref)
    for batch in usb.logit_batches(STEPS, C):
        t = batch['it']
        a, b = usb.leaves(batch)
        total, losses, (labels, weight) = usb.ssvision_step(ours, t, a['x_lb'], a['y_lb'],
                                                            a['x_ulb_w'], a['x_ulb_s'])
        ref.it = t
        ref_total, log = usb.train_step(ref, b['x_lb'], b['y_lb'], b['x_ulb_w'], b['x_ulb_s'])
        assert torch.equal(weight, seen['masking']), f'mask differs at step {t}'
        assert torch.equal(labels, seen['gen_ulb_targets']), f'labels differ at step {t}'
        usb.close(losses['sup_loss'], log['train/sup_loss'], 'sup_loss', t)
        usb.close(losses['unsup_loss'], log['train/unsup_loss'], 'unsup_loss', t)
        usb.close(total, ref_total, 'total loss', t)
        total.backward()
        ref_total.backward()
        usb.close(a['x_ulb_s'].grad, b['x_ulb_s'].grad, 'strong-view gradient', t)
        usb.close(a['x_lb'].grad, b['x_lb'].grad, 'labeled gradient', t)


def test_fixed_threshold_keeps_a_confidence_equal_to_the_threshold_like_usb(usb):
    # Catches `>` instead of USB's `>=` (a confidence exactly at the threshold is kept).
    from ssvision.models.selectors import FixedThresholdSelector
    ours = FixedThresholdSelector()
    ref_alg = usb.algorithm('fixmatch', num_classes=C)
    hook = ref_alg.hooks_dict['MaskingHook']
    g = torch.Generator().manual_seed(3)
    for step in range(50):
        probs = torch.softmax(3 * torch.randn(16, C, generator=g), dim=1)
        tie = torch.full((4, C), 0.05 / (C - 1))
        tie[:, step % C] = ref_alg.p_cutoff  # top probability exactly at the threshold
        probs = torch.cat([probs, tie])
        labels, weight = ours(probs)
        mask = hook.masking(ref_alg, logits_x_ulb=probs, softmax_x_ulb=False)
        assert torch.equal(weight, mask), f'mask differs at step {step}'
        assert weight[-4:].eq(1).all()
        ref_labels = ref_alg.hooks_dict['PseudoLabelingHook'].gen_ulb_targets(
            ref_alg, logits=probs, use_hard_label=True, softmax=False)
        assert torch.equal(labels, ref_labels)
