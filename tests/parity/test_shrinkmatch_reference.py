"""ShrinkMatch: ssvision's ``ShrinkMatch`` (``ClassSpaceShrinkHead`` without the auxiliary
MLP, so the shrunk space is trained on the student's own strong-view logits) against the
loss of the authors' code (LiheYoung/ShrinkMatch, ``shrink_loss`` and the training step
of its CIFAR and STL-10 / SVHN code), written out here from its formulas. ShrinkMatch is
not part of USB: these tests need no reference package."""

import pytest
import torch
import torch.nn.functional as F
import usb_reference

pytestmark = pytest.mark.parity

STEPS = 60
C = 10
THRESHOLD = 0.95
MOMENTUM = 0.999


def _reference(probs, logits_s, logits_aux, ratio, soft):
    """The authors' certain and shrink losses of one batch and the updated certain ratio.

    Per uncertain sample (top probability below the threshold), with the probabilities
    sorted in decreasing order, classes ranked 1 .. c-1 are removed for c = 2, 3, ...
    until the top class's confidence in the space left, p_0 / (p_0 + sum_{j >= c} p_j),
    reaches the threshold or c = C - 1; that space's cross entropy towards the top
    class, weighted by the original top probability and by whether the threshold was
    reached, is summed over the batch, divided by the batch size and multiplied by the
    certain ratio, an EMA (momentum 0.999, started at the first batch's value) of the
    fraction of certain samples, updated before it is used.
    """
    n = len(probs)
    max_probs, labels = probs.max(dim=1)
    mask = (max_probs >= THRESHOLD).float()
    if soft:  # CIFAR code
        certain = ((-F.log_softmax(logits_s, dim=1) * probs).sum(dim=1) * mask).mean()
    else:  # STL-10 / SVHN code
        certain = (F.cross_entropy(logits_s, labels, reduction='none') * mask).mean()
    ratio = mask.mean().item() if ratio is None else ratio * MOMENTUM + mask.mean().item() * (
        1 - MOMENTUM)
    sorted_p, order = probs.sort(dim=1, descending=True)
    sorted_aux = logits_aux.gather(1, order)
    shrink, shrunk = 0.0, 0
    for b in range(n):
        if max_probs[b] >= THRESHOLD:
            continue
        for c in range(2, C):
            sub_conf = sorted_p[b, 0] / (sorted_p[b, 0] + sorted_p[b, c:].sum())
            if sub_conf >= THRESHOLD or c == C - 1:
                sub = torch.cat([sorted_aux[b, :1], sorted_aux[b, c:]])
                loss = F.cross_entropy(sub[None], torch.zeros(1, dtype=torch.long))
                shrink = shrink + loss * max_probs[b] * (sub_conf >= THRESHOLD).float()
                shrunk += int(sub_conf >= THRESHOLD)
                break
    return certain, shrink / n * ratio, ratio, shrunk


@pytest.mark.parametrize('targets', ['hard', 'soft'])
def test_shrinkmatch_matches_the_authors_losses(targets):
    # Catches: removing the least likely classes instead of the confusing ones, weighting
    # by the shrunk confidence instead of the original one, dividing by the number of
    # uncertain samples, updating the certain ratio after its use, training certain
    # samples on a shrunk space, and (soft) hard labels where the CIFAR code's soft
    # targets are asked for.
    ours = usb_reference.ssvision_model(
        'ShrinkMatch', C, shrink_head=dict(mlp=False),
        semi_train_cfg=dict(certain_targets=targets))
    head = ours.aux_heads[0]
    ratio, shrunk = None, 0
    for batch in usb_reference.logit_batches(STEPS, C, flat_steps=()):
        t = batch['it']
        a, b = usb_reference.leaves(batch)
        total, losses, _ = usb_reference.ssvision_step(ours, t, a['x_lb'], a['y_lb'],
                                                       a['x_ulb_w'], a['x_ulb_s'])
        probs = b['x_ulb_w'].softmax(dim=1)
        certain, shrink, ratio, n = _reference(probs, b['x_ulb_s'], b['x_ulb_s'], ratio,
                                               targets == 'soft')
        shrunk += n
        sup = F.cross_entropy(b['x_lb'], b['y_lb'])
        close = usb_reference.close
        close(head.certain_ratio, ratio, 'certain ratio', t, usb_reference.STATE_TOL)
        close(losses['unsup_loss'], certain, 'certain loss', t)
        close(losses['aux_shrink_loss'], shrink, 'shrink loss', t)
        ref_total = sup + certain + shrink
        close(total, ref_total, 'total loss', t)
        total.backward()
        ref_total.backward()
        close(a['x_ulb_s'].grad, b['x_ulb_s'].grad, 'strong-view gradient', t)
    assert shrunk > STEPS  # many uncertain samples were trained on a shrunk space


def test_shrinkmatch_default_auxiliary_classifier_is_the_authors_head_aux():
    # The authors' BackBone.head_aux (CIFAR/network/shrinkmatch.py), written out:
    # Linear(D, D/4), BN, LeakyReLU(0.1), Linear(D/4, D/4), BN, LeakyReLU(0.1),
    # Linear(D/4, C), on the pooled features of the strong view. Catches another hidden
    # size, a missing BatchNorm, another slope (ReLU) or a default without the MLP.
    # BatchNorm in training mode (batch statistics), as in the authors' training step.
    from torch import nn

    from ssvision.registry import MODELS
    torch.manual_seed(0)
    ours = MODELS.build(dict(type='ShrinkMatch', model=dict(
        type='TinyCNN', num_classes=C, in_channels=1, width=16)))
    mlp = ours.aux_heads[0].mlp
    assert mlp is not None, 'the default ShrinkMatch trains its shrunk space without the MLP'
    d = ours.student.feat_dim
    ref = nn.Sequential(
        nn.Linear(d, d // 4), nn.BatchNorm1d(d // 4), nn.LeakyReLU(negative_slope=0.1),
        nn.Linear(d // 4, d // 4), nn.BatchNorm1d(d // 4), nn.LeakyReLU(negative_slope=0.1),
        nn.Linear(d // 4, C))
    ref.load_state_dict(mlp.state_dict())  # same parameters, position by position
    mlp.train()
    ref.train()
    feats = torch.randn(32, d) * 3.0 - 1.0  # negative inputs exercise the slope
    usb_reference.close(mlp(feats), ref(feats), 'auxiliary logits', 0)
    assert ours.aux_heads[0].feature_views == ('unsup_student',)  # the strong view's
