"""FlexMatch: ssvision's ``FlexMatchSelector`` (with FixMatch's loss, the FlexMatch
config) against USB 0.3.2's ``FlexMatchThresholdingHook`` / ``FlexMatch.train_step``."""

import pytest
import torch

pytestmark = pytest.mark.parity

STEPS = 60
C = 6
N_ULB = 160


def _flexmatch(usb, num_unlabeled=N_ULB, num_classes=C, **selector):
    return usb.ssvision_model('FixMatch', num_classes, selector=dict(
        type='FlexMatchSelector', num_classes=num_classes, num_unlabeled=num_unlabeled,
        **selector))


def _same_state(sel, hook, step):
    assert torch.equal(sel.selected_label, hook.selected_label), \
        f'selected_label differs at step {step}'
    assert torch.equal(sel.classwise_acc, hook.classwise_acc), \
        f'classwise_acc differs at step {step}'


def test_flexmatch_matches_usb_train_step(usb):
    # Catches updating the state before thresholding (USB masks with the previous
    # classwise_acc) and thresholds recomputed from selected_label on every call.
    ours = _flexmatch(usb)
    ref = usb.algorithm('flexmatch', num_classes=C, ulb_dest_len=N_ULB)
    seen = usb.record(ref)
    hook = ref.hooks_dict['MaskingHook']
    kept = 0
    for s in usb.lockstep(ours, ref, STEPS, C, with_idx=True, num_unlabeled=N_ULB):
        assert torch.equal(s.weight, seen['masking']), f'mask differs at step {s.t}'
        assert torch.equal(s.labels, seen['gen_ulb_targets']), f'labels differ at step {s.t}'
        _same_state(ours.selector, hook, s.t)
        usb.close(s.losses['unsup_loss'], s.log['train/unsup_loss'], 'unsup_loss', s.t)
        usb.same_total_and_gradients(s)
        kept += int(s.weight.sum())
    # the thresholds did rise: some samples were rejected along the way
    assert 0 < kept < STEPS * 32
    assert (hook.classwise_acc > 0).all()


@pytest.mark.parametrize('warmup', [True, False])
def test_flexmatch_selector_matches_usb_hook_with_ties(usb, warmup):
    # Catches `>` instead of `>=` both where samples enter selected_label (conf == tau)
    # and in the mask (conf == T_c), and a warm-up denominator without (warmup=True)
    # or with (warmup=False) the unused count.
    from ssvision.models.selectors import FlexMatchSelector
    sel = FlexMatchSelector(num_classes=C, num_unlabeled=N_ULB, warmup=warmup)
    sel.train()
    alg = usb.algorithm('flexmatch', num_classes=C, ulb_dest_len=N_ULB, thresh_warmup=warmup)
    hook = alg.hooks_dict['MaskingHook']
    g = torch.Generator().manual_seed(7)
    freq = 2.0 ** -torch.arange(C, dtype=torch.float64)
    for step in range(STEPS):
        y = torch.multinomial(freq, 24, replacement=True, generator=g)
        logits = torch.randn(24, C, generator=g) + (1 + step / 6) * torch.nn.functional.one_hot(
            y, C)
        probs = [logits.softmax(dim=1)]
        # a confidence exactly at tau (enters selected_label) ...
        row = torch.full((1, C), (1 - alg.p_cutoff) / (C - 1))
        row[0, step % C] = alg.p_cutoff
        probs.append(row)
        # ... and one exactly at a class threshold T_c (kept by the mask)
        acc = hook.classwise_acc
        thr = alg.p_cutoff * (acc / (2.0 - acc))
        c = int(thr.argmax())
        if thr[c] > 1.5 / C:
            row = torch.full((1, C), float((1 - thr[c]) / (C - 1)))
            row[0, c] = thr[c]
            probs.append(row)
        probs = torch.cat(probs)
        idx = torch.randperm(N_ULB, generator=g)[:len(probs)]
        labels, weight = sel(probs, sample_idx=idx)
        mask = hook.masking(alg, logits_x_ulb=probs, idx_ulb=idx, softmax_x_ulb=False)
        assert torch.equal(weight, mask), f'mask differs at step {step}'
        assert torch.equal(labels, probs.argmax(dim=1))
        _same_state(sel, hook, step)
    assert (sel.selected_label >= 0).sum() > N_ULB // 2


def test_flexmatch_keeps_its_thresholds_once_every_sample_has_one_class(usb):
    # Catches recomputing classwise_acc when one class holds every sample (USB leaves
    # it unchanged: `max(Counter(selected_label).values()) < ulb_dest_len` fails).
    from ssvision.models.selectors import FlexMatchSelector
    n, classes = 8, 10
    sel = FlexMatchSelector(num_classes=classes, num_unlabeled=n)
    sel.train()
    alg = usb.algorithm('flexmatch', num_classes=classes, ulb_dest_len=n)
    hook = alg.hooks_dict['MaskingHook']

    def confident(cls):
        p = torch.full((1, classes), 0.01 / (classes - 1))
        p[0, cls] = 0.99
        return p

    def weak(cls):  # top probability 0.15 on `cls`
        p = torch.full((1, classes), 0.85 / (classes - 1))
        p[0, cls] = 0.15
        return p

    steps = [
        ([0] * 6 + [1] * 2, torch.arange(8), confident),  # beta = [1, 1/3]
        ([0, 0], torch.tensor([6, 7]), confident),         # all class 0: beta unchanged
        ([1], torch.tensor([0]), weak),                    # T_1 = 0.95 (1/3) / (5/3) = 0.19
    ]
    for step, (classes_, idx, make) in enumerate(steps):
        probs = torch.cat([make(c) for c in classes_])
        _, weight = sel(probs, sample_idx=idx)
        mask = hook.masking(alg, logits_x_ulb=probs, idx_ulb=idx, softmax_x_ulb=False)
        assert torch.equal(weight, mask), f'mask differs at step {step}'
        _same_state(sel, hook, step)
    assert sel.classwise_acc[1].item() == pytest.approx(1 / 3)
    assert weight.tolist() == [0.0]  # 0.15 < T_1; a recomputed beta_1 = 0 would keep it
