"""SoftMatch: ssvision's ``SoftMatchSelector`` at its defaults (with FixMatch's loss)
against USB 0.3.2's ``DistAlignEMAHook`` + ``SoftMatchWeightingHook`` /
``SoftMatch.train_step``."""

import pytest
import torch

pytestmark = pytest.mark.parity

STEPS = 60
C = 6


def test_softmatch_matches_usb_train_step(usb):
    # Catches pseudo-labels taken from the aligned probabilities (USB aligns only the
    # confidence behind the weight), alignment off by default, p_model started as an
    # EMA from uniform instead of the first batch's mean, and a biased variance.
    ours = usb.ssvision_model('FixMatch', C, selector=dict(type='SoftMatchSelector',
                                                           num_classes=C))
    ref = usb.algorithm('softmatch', num_classes=C)
    seen = usb.record(ref)
    align, weigh = ref.hooks_dict['DistAlignHook'], ref.hooks_dict['MaskingHook']
    relabelled = 0
    for s in usb.lockstep(ours, ref, STEPS, C):
        t = s.t
        assert torch.equal(s.labels, seen['gen_ulb_targets']), f'labels differ at step {t}'
        relabelled += int((seen['dist_align'].argmax(dim=1) != s.labels).sum())
        sel = ours.selector
        usb.close(sel.p_model, align.p_model, 'p_model', t, usb.STATE_TOL)
        usb.close(sel.mu, weigh.prob_max_mu_t, 'mu', t, usb.STATE_TOL)
        usb.close(sel.var, weigh.prob_max_var_t, 'var', t, usb.STATE_TOL)
        usb.close(s.weight, seen['masking'], 'weight', t)
        usb.close(s.losses['unsup_loss'], s.log['train/unsup_loss'], 'unsup_loss', t)
        usb.same_total_and_gradients(s)
    # alignment moved some top classes: labels from aligned probabilities would differ
    assert relabelled > 0
