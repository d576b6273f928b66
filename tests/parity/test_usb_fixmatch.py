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
    for s in usb.lockstep(ours, ref, STEPS, C):
        assert torch.equal(s.weight, seen['masking']), f'mask differs at step {s.t}'
        assert torch.equal(s.labels, seen['gen_ulb_targets']), f'labels differ at step {s.t}'
        usb.close(s.losses['sup_loss'], s.log['train/sup_loss'], 'sup_loss', s.t)
        usb.close(s.losses['unsup_loss'], s.log['train/unsup_loss'], 'unsup_loss', s.t)
        usb.same_total_and_gradients(s, labeled=True)


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
