"""UDA: ssvision's ``UDA(variant='usb')`` against USB 0.3.2's ``UDA.train_step`` (every
TSA schedule), and its default (``variant='original'``) against the authors' formulas
(google-research/uda ``image/main.py``), written out here."""

import math

import pytest
import torch
import torch.nn.functional as F

pytestmark = pytest.mark.parity

STEPS = 60
C = 6
SCHEDULES = ('none', 'linear', 'log', 'exp')


@pytest.mark.parametrize('schedule', SCHEDULES)
def test_uda_usb_variant_matches_usb_train_step(usb, schedule):
    # Catches, in variant='usb': TSA on the true class's probability instead of the top
    # one, the TSA loss divided by the number kept instead of N, a sharpened target
    # (USB never applies T) and KL instead of the soft-target cross entropy.
    ours = usb.ssvision_model('UDA', C, semi_train_cfg=dict(
        variant='usb', tsa=schedule, tsa_iters=STEPS))
    ref = usb.algorithm('uda', num_classes=C, tsa_schedule=schedule, num_train_iter=STEPS)
    seen = usb.record(ref)
    dropped = 0
    for s in usb.lockstep(ours, ref, STEPS, C):
        t, losses, a = s.t, s.losses, s.a
        assert torch.equal(s.weight, seen['masking']), f'mask differs at step {t}'
        usb.close(losses['sup_loss'], s.log['train/sup_loss'], 'sup_loss', t)
        usb.close(losses['unsup_loss'], s.log['train/unsup_loss'], 'unsup_loss', t)
        usb.same_total_and_gradients(s, labeled=True)
        if schedule != 'none':
            thr = ref.TSA(schedule, t, STEPS, C)
            usb.close(losses['sup_tsa_thr'], thr, 'TSA threshold', t)
            dropped += int(len(a['y_lb']) - round(losses['sup_tsa_frac'].item()
                                                 * len(a['y_lb'])))
    if schedule != 'none':
        assert dropped > 0  # the annealing did leave labeled samples out


@pytest.mark.parametrize('schedule', SCHEDULES)
def test_tsa_threshold_equals_usb_tsa(usb, schedule):
    # Catches another schedule shape, scale or start (1/K) than UDA's (and USB's).
    from ssvision.models.algorithms.uda import tsa_threshold
    ref = usb.algorithm('uda', num_classes=C)
    for it in range(0, 101):
        assert tsa_threshold(schedule, it / 100, C) == pytest.approx(
            ref.TSA(schedule, it, 100, C), abs=1e-12)


def _authors_uda(x_lb, y_lb, z, s, it, total_iters, schedule, temperature, threshold):
    """google-research/uda's losses (image/main.py), written from its formulas."""
    ce = F.cross_entropy(x_lb, y_lb, reduction='none')
    if schedule == 'none':
        sup = ce.mean()
    else:
        r = it / total_iters
        coeff = {'linear': r, 'exp': math.exp((r - 1) * 5),
                 'log': 1 - math.exp(-r * 5)}[schedule]
        thr = coeff * (1 - 1 / C) + 1 / C
        p_true = x_lb.softmax(dim=1).gather(1, y_lb[:, None])[:, 0]
        loss_mask = 1 - (p_true > thr).float()  # anneal_sup_loss
        sup = (ce * loss_mask).sum() / loss_mask.sum().clamp_min(1)
    log_q = F.log_softmax(z / temperature, dim=1)  # _kl_divergence_with_logits
    kl = (log_q.exp() * (log_q - F.log_softmax(s, dim=1))).sum(dim=1)
    mask = (z.softmax(dim=1).max(dim=1).values > threshold).float()  # strict in UDA
    return sup, (kl * mask).mean()


@pytest.mark.parametrize('schedule', SCHEDULES)
def test_uda_default_matches_the_authors_formulas(usb, schedule):
    # Catches the USB departures leaking into the default: TSA on the top probability,
    # the TSA loss over N, no sharpening, cross entropy in place of KL.
    ours = usb.ssvision_model('UDA', C, semi_train_cfg=dict(tsa=schedule, tsa_iters=STEPS))
    T, thr = ours.semi_train_cfg['temperature'], ours.selector.threshold
    assert (T, thr) == (0.4, 0.8)
    for batch in usb.logit_batches(STEPS, C):
        t = batch['it']
        a, b = usb.leaves(batch)
        total, losses, _ = usb.ssvision_step(ours, t, a['x_lb'], a['y_lb'], a['x_ulb_w'],
                                             a['x_ulb_s'])
        sup, unsup = _authors_uda(b['x_lb'], b['y_lb'], b['x_ulb_w'], b['x_ulb_s'], t, STEPS,
                                  schedule, T, thr)
        usb.close(losses['sup_loss'], sup, 'sup_loss', t)
        usb.close(losses['unsup_loss'], unsup, 'unsup_loss', t)
        total.backward()
        (sup + unsup).backward()
        usb.close(a['x_ulb_s'].grad, b['x_ulb_s'].grad, 'strong-view gradient', t)
        usb.close(a['x_lb'].grad, b['x_lb'].grad, 'labeled gradient', t)
