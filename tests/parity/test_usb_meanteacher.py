"""Mean Teacher: ssvision's ``MeanTeacher`` against USB 0.3.2's ``MeanTeacher.train_step``
(``rampup='linear'``, USB's ramp) and against the authors' formulas
(CuriousAI/mean-teacher: ``softmax_mse_loss``, ``sigmoid_rampup``) for the default."""

import math

import pytest

pytestmark = pytest.mark.parity

STEPS = 60
C = 6


def test_meanteacher_linear_rampup_matches_usb_train_step(usb):
    # Catches the squared error summed over the classes instead of averaged, and a
    # ramp of (t + 1) / W instead of USB's clip(it / (0.4 * num_train_iter), 0, 1).
    ref = usb.algorithm('meanteacher', num_classes=C, num_train_iter=STEPS)
    warmup = round(ref.unsup_warm_up * STEPS)
    assert warmup == ref.unsup_warm_up * STEPS
    ours = usb.ssvision_model('MeanTeacher', C, semi_train_cfg=dict(
        rampup='linear', unsup_warmup_iters=warmup, unsup_weight=ref.lambda_u))
    for s in usb.lockstep(ours, ref, STEPS, C):
        t = s.t
        assert s.weight.eq(1).all()
        ramp = min(max(t / (ref.unsup_warm_up * STEPS), 0.0), 1.0)
        usb.close(ours.unsup_weight_at(t), ref.lambda_u * ramp, 'unsup weight', t)
        usb.close(s.losses['sup_loss'], s.log['train/sup_loss'], 'sup_loss', t)
        usb.close(s.losses['unsup_loss'], ref.lambda_u * ramp * s.log['train/unsup_loss'],
                  'weighted unsup_loss', t)
        usb.same_total_and_gradients(s)
        if t == 0:  # weight 0 at USB's first iteration
            assert s.a['x_ulb_s'].grad.abs().sum() == 0 == s.b['x_ulb_s'].grad.abs().sum()


def test_meanteacher_default_matches_the_authors_formulas(usb):
    # Catches a ramp other than the authors' exp(-5 (1 - r)^2) and a squared error that
    # is not averaged over the classes (their softmax_mse_loss divides by C).
    warmup = 40
    ours = usb.ssvision_model('MeanTeacher', C, semi_train_cfg=dict(
        unsup_warmup_iters=warmup, unsup_weight=10.0))
    for batch in usb.logit_batches(STEPS, C):
        t = batch['it']
        a, b = usb.leaves(batch)
        _, losses, _ = usb.ssvision_step(ours, t, a['x_lb'], a['y_lb'], a['x_ulb_w'],
                                         a['x_ulb_s'])
        phase = 1.0 - min(t, warmup) / warmup  # sigmoid_rampup
        weight = 10.0 * math.exp(-5.0 * phase * phase)
        mse = ((b['x_ulb_s'].softmax(1) - b['x_ulb_w'].softmax(1)) ** 2).sum() / C
        expected = weight * mse / len(b['x_ulb_s'])  # / minibatch size
        usb.close(losses['unsup_loss'], expected, 'unsup_loss', t)
        losses['unsup_loss'].backward()
        expected.backward()
        usb.close(a['x_ulb_s'].grad, b['x_ulb_s'].grad, 'strong-view gradient', t)
