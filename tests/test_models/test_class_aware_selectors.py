import math

import pytest
import torch

from ssvision.models.selectors import (
    ClassAwareTopKSelector,
    FlexMatchSelector,
    FreeMatchSelector,
    SoftMatchSelector,
    class_topk_mask,
)
from ssvision.registry import MODELS

# 6 samples, 3 classes. argmax = [0, 0, 0, 1, 1, 2], conf = [.9, .8, .6, .7, .55, .7]
PROBS = torch.tensor([[0.9, 0.05, 0.05], [0.8, 0.1, 0.1], [0.6, 0.3, 0.1],
                      [0.1, 0.7, 0.2], [0.2, 0.55, 0.25], [0.1, 0.2, 0.7]])


def kept(weight):
    return torch.nonzero(weight > 0).flatten().tolist()


def random_probs(*shape, seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(*shape, generator=g) * scale, dim=1)


def make_all():
    """One of each selector (dense-capable ones flagged), in training mode."""
    return [
        (ClassAwareTopKSelector(), True),
        (ClassAwareTopKSelector(scope='window', num_classes=3, window=8, margin=0.5), True),
        (FlexMatchSelector(num_classes=3, num_unlabeled=32, threshold=0.7), False),
        (FreeMatchSelector(num_classes=3, ema_momentum=0.9), True),
        (SoftMatchSelector(num_classes=3, ema_momentum=0.9), True),
        (SoftMatchSelector(num_classes=3, ema_momentum=0.9, dist_align=True), True),
    ]


def call(sel, probs, step=0):
    idx = torch.arange(probs.shape[0]) + step * probs.shape[0]
    return sel(probs, sample_idx=idx % 32 if isinstance(sel, FlexMatchSelector) else None)


# --------------------------------------------------------------------------- DSSN top-k
def test_topk_batch_hand_computed():
    # class 0: n=3, k=ceil(1.5)=2 -> {0, 1}; class 1: k=1 -> {3}; class 2: k=1 -> {5}
    labels, weight = ClassAwareTopKSelector(ratio=0.5, floor=0.5)(PROBS)
    assert labels.tolist() == [0, 0, 0, 1, 1, 2]
    assert kept(weight) == [0, 1, 3, 5]
    # floor 0.75 removes classes 1 and 2 entirely (best conf 0.7 < floor)
    assert kept(ClassAwareTopKSelector(ratio=0.5, floor=0.75)(PROBS)[1]) == [0, 1]
    # margin 0.95: class 0 needs conf >= 0.855 -> only sample 0
    assert kept(ClassAwareTopKSelector(ratio=0.5, floor=0.0, margin=0.95)(PROBS)[1]) == [0, 3, 5]
    # ratio 1 keeps every position above the floor
    assert kept(ClassAwareTopKSelector(ratio=1.0, floor=0.58)(PROBS)[1]) == [0, 1, 2, 3, 5]


def test_topk_count_and_ties():
    conf = torch.full((10,), 0.8)
    labels = torch.zeros(10, dtype=torch.long)
    groups = torch.zeros(10, dtype=torch.long)
    keep = class_topk_mask(conf, labels, groups, 1, 2, ratio=0.3)
    assert keep.tolist() == [True] * 3 + [False] * 7  # ceil(0.3 * 10) = 3, ties by index
    keep = class_topk_mask(conf, labels, groups, 1, 2, ratio=0.5)
    assert keep.sum() == 5 and keep[:5].all()


def test_topk_rare_class_survives_dominant_class():
    probs = torch.tensor([[0.99, 0.005, 0.005]] * 9 + [[0.2, 0.2, 0.6]])
    labels, weight = ClassAwareTopKSelector(ratio=0.5, floor=0.5)(probs)
    assert weight[9] == 1.0 and labels[9] == 2  # a fixed 0.95 threshold would drop it
    assert weight[:9].sum() == 5  # ceil(4.5)
    # nothing confident: every weight 0
    flat = torch.tensor([[0.4, 0.3, 0.3], [0.3, 0.4, 0.3]])
    assert ClassAwareTopKSelector(floor=0.5)(flat)[1].sum() == 0


def test_topk_image_vs_batch_scope_dense():
    conf = torch.tensor([[0.95, 0.9, 0.85, 0.8], [0.7, 0.65, 0.6, 0.55]])  # (N=2, 4 pixels)
    probs = torch.stack([conf, (1 - conf) / 2, (1 - conf) / 2], dim=1).view(2, 3, 2, 2)
    labels, w_img = ClassAwareTopKSelector(floor=0.5)(probs)  # dense default: per image
    assert labels.shape == (2, 2, 2) and (labels == 0).all()
    assert w_img.view(2, 4).tolist() == [[1, 1, 0, 0], [1, 1, 0, 0]]
    _, w_batch = ClassAwareTopKSelector(floor=0.5, scope='batch')(probs)
    assert w_batch.view(2, 4).tolist() == [[1, 1, 1, 1], [0, 0, 0, 0]]


def test_topk_window_hand_computed():
    sel = ClassAwareTopKSelector(ratio=0.5, floor=0.5, scope='window', num_classes=3, window=4)
    sel.train()
    _, weight = sel(PROBS)
    # windows: c0 [.9 .8 .6] -> median .8; c1 [.7 .55] -> .625; c2 [.7] -> .7
    thr = [0.8, 0.625, 0.7]
    assert sel.extra_log() == pytest.approx({f'thr_{c}': t for c, t in enumerate(thr)})
    assert kept(weight) == [0, 1, 3, 5]
    assert sel.window_fill.tolist() == [3, 2, 1]
    # ring buffer keeps the last 4 confidences of class 0 (0.9, the oldest, is dropped)
    more = torch.tensor([[0.5, 0.3, 0.2], [0.55, 0.25, 0.2]])
    sel(more)
    assert sel.window_fill.tolist() == [4, 2, 1]
    assert sorted(sel.conf_window[0].tolist()) == pytest.approx([0.5, 0.55, 0.6, 0.8])
    # eval: pure function of the windows, floor still applies to an empty class window
    sel.eval()
    before = {k: v.clone() for k, v in sel.state_dict().items()}
    _, w = sel(torch.tensor([[0.72, 0.2, 0.08], [0.1, 0.64, 0.26]]))
    assert w.tolist() == [1.0, 1.0]  # c0: max(floor, median(.5 .55 .6 .8)) = .575
    assert all(torch.equal(before[k], v) for k, v in sel.state_dict().items())


def test_topk_window_push_limit_subsamples_by_rank():
    sel = ClassAwareTopKSelector(scope='window', num_classes=2, window=8, push_limit=4)
    sel.train()
    conf = torch.tensor([0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55])
    sel(torch.stack([conf, 1 - conf], dim=1))
    assert sel.window_fill.tolist() == [4, 0]
    assert sel.conf_window[0, :4].tolist() == pytest.approx([0.9, 0.8, 0.7, 0.6])


def test_topk_bad_args():
    with pytest.raises(ValueError):
        ClassAwareTopKSelector(ratio=0.0)
    with pytest.raises(ValueError):
        ClassAwareTopKSelector(scope='window')
    with pytest.raises(ValueError):
        ClassAwareTopKSelector(scope='pixel')


# --------------------------------------------------------------------------- FlexMatch
def test_flexmatch_thresholds_hand_computed():
    sel = FlexMatchSelector(num_classes=3, num_unlabeled=10, threshold=0.9, warmup=True)
    sel.train()
    assert sel.class_thresholds().tolist() == [0.0, 0.0, 0.0]
    probs = torch.tensor([[0.95, 0.03, 0.02], [0.9, 0.05, 0.05],
                          [0.03, 0.95, 0.02], [0.3, 0.2, 0.5]])
    _, weight = sel(probs, sample_idx=torch.tensor([0, 1, 2, 3]))
    # the mask read the thresholds before this batch (all 0): everything kept
    assert weight.tolist() == [1.0] * 4
    # a confidence equal to the threshold (0.9) is selected too
    assert sel.selected_label[:4].tolist() == [0, 0, 1, -1]
    # sigma = [2, 1, 0], unused = 7 -> beta = [2/7, 1/7, 0]; M(x) = x / (2 - x)
    assert sel.classwise_acc.tolist() == pytest.approx([2 / 7, 1 / 7, 0.0])
    expect = [0.9 * (2 / 7) / (2 - 2 / 7), 0.9 * (1 / 7) / (2 - 1 / 7), 0.0]
    assert sel.class_thresholds().tolist() == pytest.approx(expect)
    log = sel.extra_log()
    assert log['sel_unused'] == pytest.approx(0.7) and log['thr_2'] == 0.0

    # A checkpoint without classwise_acc (saved before it was a buffer) loads, with
    # beta recomputed from selected_label; without warm-up beta = sigma / max sigma.
    old = {'selected_label': sel.state_dict()['selected_label']}
    sel2 = FlexMatchSelector(num_classes=3, num_unlabeled=10, threshold=0.9, warmup=False)
    sel2.load_state_dict(old)
    assert sel2.class_thresholds().tolist() == pytest.approx([0.9, 0.3, 0.0])
    lin = FlexMatchSelector(3, 10, threshold=0.9, warmup=False, mapping='linear')
    lin.load_state_dict(old)
    assert lin.class_thresholds().tolist() == pytest.approx([0.9, 0.45, 0.0])
    sel2.eval()
    test = torch.tensor([[0.85, 0.1, 0.05], [0.3, 0.4, 0.3], [0.33, 0.33, 0.34]])
    assert sel2(test)[1].tolist() == [0.0, 1.0, 1.0]  # eval needs no sample_idx
    assert sel2.selected_label.tolist() == old['selected_label'].tolist()

    # a later confident prediction overwrites; an unconfident one does not
    sel.train()
    sel(torch.tensor([[0.02, 0.03, 0.95], [0.5, 0.3, 0.2]]), sample_idx=torch.tensor([0, 1]))
    assert sel.selected_label[:4].tolist() == [2, 0, 1, -1]


def test_flexmatch_thresholds_stay_while_one_class_holds_every_sample():
    # USB's rule: beta is recomputed only while the largest count (unused included) is
    # below the number of unlabeled samples.
    sel = FlexMatchSelector(num_classes=2, num_unlabeled=4, threshold=0.9)
    sel.train()
    sel(torch.tensor([[0.95, 0.05]] * 3 + [[0.05, 0.95]]), sample_idx=torch.arange(4))
    assert sel.classwise_acc.tolist() == pytest.approx([1.0, 1 / 3])
    sel(torch.tensor([[0.95, 0.05]]), sample_idx=torch.tensor([3]))  # all class 0 now
    assert sel.classwise_acc.tolist() == pytest.approx([1.0, 1 / 3])


def test_flexmatch_errors():
    sel = FlexMatchSelector(num_classes=3, num_unlabeled=4)
    with pytest.raises(ValueError, match='sample_idx'):
        sel(PROBS)
    with pytest.raises(IndexError):
        sel(PROBS[:2], sample_idx=torch.tensor([0, 4]))
    with pytest.raises(NotImplementedError):
        sel(random_probs(2, 3, 4, 4), sample_idx=torch.tensor([0, 1]))
    with pytest.raises(ValueError):
        FlexMatchSelector(3, 4, mapping='concave')


def test_flexmatch_nothing_confident_after_learning():
    sel = FlexMatchSelector(num_classes=2, num_unlabeled=2, threshold=0.9, warmup=False)
    sel(torch.tensor([[0.95, 0.05], [0.05, 0.95]]), sample_idx=torch.tensor([0, 1]))
    sel.eval()
    assert sel(torch.tensor([[0.8, 0.2], [0.3, 0.7]]))[1].sum() == 0


# --------------------------------------------------------------------------- FreeMatch
def test_freematch_one_update_hand_computed():
    sel = FreeMatchSelector(num_classes=3, ema_momentum=0.5)
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [0.6, 0.3, 0.1]])
    _, weight = sel(probs)
    third = 1 / 3
    tau = 0.5 * third + 0.5 * (0.7 + 0.8 + 0.4 + 0.6) / 4
    p_tilde = [0.5 * third + 0.5 * m for m in (0.425, 0.4, 0.175)]
    hist = [0.5 * third + 0.5 * h for h in (0.5, 0.25, 0.25)]
    assert float(sel.tau) == pytest.approx(tau)
    assert sel.p_tilde.tolist() == pytest.approx(p_tilde)
    assert sel.label_hist.tolist() == pytest.approx(hist)
    thr = [p / max(p_tilde) * tau for p in p_tilde]  # ~[0.479, 0.463, 0.321]
    assert sel.class_thresholds().tolist() == pytest.approx(thr)
    assert weight.tolist() == [1.0] * 4
    log = sel.extra_log()
    assert log['sel_global'] == pytest.approx(tau) and len(log) == 4
    sel.eval()
    test = torch.tensor([[0.45, 0.3, 0.25], [0.3, 0.45, 0.25], [0.33, 0.32, 0.35]])
    assert sel(test)[1].tolist() == [0.0, 0.0, 1.0]


def test_freematch_fairness_loss():
    sel = FreeMatchSelector(num_classes=3)
    logits = torch.log(torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7],
                                     [0.9, 0.05, 0.05]])).requires_grad_(True)
    probs = logits.softmax(dim=1)
    # uniform state -> a = 1/3; rows 0..2 selected: p_bar = [.3 .4 .3], h_bar = 1/3 each
    loss = sel.fairness_loss(probs, torch.tensor([1.0, 1.0, 1.0, 0.0]))
    expect = (math.log(0.3) + math.log(0.4) + math.log(0.3)) / 3
    assert loss.item() == pytest.approx(expect, rel=1e-5)
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    zero = sel.fairness_loss(probs, torch.zeros(4))
    assert zero.item() == 0.0 and zero.requires_grad


# --------------------------------------------------------------------------- SoftMatch
def test_softmatch_hand_computed():
    sel = SoftMatchSelector(num_classes=2, ema_momentum=0.5, n_sigma=2.0, dist_align=False)
    probs = torch.tensor([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8], [0.4, 0.6]])
    labels, weight = sel(probs)
    # conf = [.9 .7 .8 .6]: mean .75, unbiased var = .05 / 3
    mu = 0.5 * 0.5 + 0.5 * 0.75
    var = 0.5 * 1.0 + 0.5 * 0.05 / 3
    assert float(sel.mu) == pytest.approx(mu) and float(sel.var) == pytest.approx(var)
    gauss = math.exp(-(0.6 - mu) ** 2 / (2 * var / 2.0 ** 2))
    assert labels.tolist() == [0, 0, 1, 1]
    assert weight.tolist() == pytest.approx([1.0, 1.0, 1.0, gauss])
    sel.eval()
    w = sel(torch.tensor([[0.5, 0.5], [0.0, 1.0]]))[1]
    assert w.tolist() == pytest.approx([math.exp(-(0.5 - mu) ** 2 * 4 / (2 * var)), 1.0])
    assert sel.extra_log() == pytest.approx({'sel_mu': mu, 'sel_sigma': math.sqrt(var)})


def test_softmatch_uniform_alignment():
    sel = SoftMatchSelector(num_classes=2, ema_momentum=0.5)
    assert sel.dist_align  # SoftMatch's default
    probs = torch.tensor([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8], [0.4, 0.6]])
    labels, _ = sel(probs)
    assert sel.p_model.tolist() == pytest.approx([0.55, 0.45])  # the first batch's mean
    assert labels.tolist() == [0, 0, 1, 1]
    sel(probs[:2])
    assert sel.p_model.tolist() == pytest.approx([0.5 * 0.55 + 0.5 * 0.8,
                                                  0.5 * 0.45 + 0.5 * 0.2])
    sel.eval()
    p_model = sel.p_model.tolist()
    # raw argmax is 0 and stays the label; the aligned copy favours class 1 and sets
    # the confidence behind the weight
    labels, weight = sel(torch.tensor([[0.52, 0.48]]))
    assert labels.tolist() == [0]
    a, b = 0.52 / (p_model[0] + 1e-6), 0.48 / (p_model[1] + 1e-6)
    aligned = sel.align(torch.tensor([[0.52, 0.48]]))
    assert aligned.tolist()[0] == pytest.approx([a / (a + b), b / (a + b)])
    assert weight.tolist() == pytest.approx(sel.weights(aligned.max(dim=1).values).tolist())
    # before any training batch the alignment changes nothing
    fresh = SoftMatchSelector(num_classes=2).eval()
    torch.testing.assert_close(fresh.align(probs), probs)


def test_softmatch_collapsed_variance_and_bad_args():
    sel = SoftMatchSelector(num_classes=2, ema_momentum=0.0, dist_align=False)
    sel(torch.tensor([[0.8, 0.2], [0.8, 0.2]]))  # var -> 0
    sel.eval()
    assert sel(torch.tensor([[0.6, 0.4], [0.9, 0.1]]))[1].tolist() == [0.0, 1.0]
    with pytest.raises(ValueError):
        SoftMatchSelector(num_classes=2, lambda_max=1.5)


# --------------------------------------------------------------------------- all
@pytest.mark.parametrize('index', range(6))
def test_contract_state_dict_no_mutation_eval_pure(index):
    sel, dense = make_all()[index]
    sel.train()
    shapes = [(8, 3)] + ([(2, 3, 4, 4)] if dense else [])
    for shape in shapes:
        for step in range(3):
            probs = random_probs(*shape, seed=step)
            before = probs.clone()
            labels, weight = call(sel, probs, step)
            assert torch.equal(probs, before)
            assert labels.shape == weight.shape == (shape[0],) + shape[2:]
            assert labels.dtype == torch.long and weight.is_floating_point()
            assert ((weight >= 0) & (weight <= 1)).all()
            assert len(sel.extra_log()) <= 3 + 2
    state = {k: v.clone() for k, v in sel.state_dict().items()}
    stateless = isinstance(sel, ClassAwareTopKSelector) and sel.scope != 'window'
    assert stateless or state, 'class-aware selectors keep their statistics in buffers'
    # eval: no state change, deterministic
    sel.eval()
    probs = random_probs(*shapes[-1], seed=7)
    out1 = sel(probs)
    out2 = sel(probs)
    assert all(torch.equal(state[k], v) for k, v in sel.state_dict().items())
    assert torch.equal(out1[0], out2[0]) and torch.equal(out1[1], out2[1])
    # round trip into a fresh instance
    fresh = make_all()[index][0]
    fresh.load_state_dict(state)
    fresh.eval()
    out3 = fresh(probs)
    assert torch.equal(out1[0], out3[0]) and torch.equal(out1[1], out3[1])
    assert all(torch.equal(state[k], v) for k, v in fresh.state_dict().items())
    if not stateless:  # the per-batch scopes log the last training call's cut-offs
        assert fresh.extra_log() == sel.extra_log()


@pytest.mark.parametrize('cfg', [
    dict(type='ClassAwareTopKSelector', ratio=0.3),
    dict(type='FlexMatchSelector', num_classes=3, num_unlabeled=5),
    dict(type='FreeMatchSelector', num_classes=3),
    dict(type='SoftMatchSelector', num_classes=3, dist_align=True),
])
def test_registry_build(cfg):
    sel = MODELS.build(cfg)
    assert type(sel).__name__ == cfg['type']
    assert repr(sel)


def test_topk_labeled_prior_caps_a_class_the_teacher_over_predicts():
    # Labeled pixels are 20 % foreground; the teacher calls 60 % of the pixels
    # foreground. Without the prior half of them (30 % of the image) become pseudo-labels;
    # with it at most ratio * 20 % = 10 %. Catches a cap that ignores the observed counts,
    # counts ignore pixels (255), or keeps the least confident instead of the best.
    from ssvision.models.selectors import ClassAwareTopKSelector
    sel = ClassAwareTopKSelector(ratio=0.5, floor=0.0, prior=True, num_classes=2, scope='image')
    sel.train()
    gt = torch.zeros(2, 10, 10, dtype=torch.long)
    gt[:, :2] = 1            # 20 % foreground
    gt[0, 5, :] = 255        # ignored pixels are not counted
    probs = torch.zeros(1, 2, 10, 10)
    fg_conf = torch.linspace(0.6, 0.99, 60)
    probs[0, 1].view(-1)[:60] = fg_conf
    probs[0, 0].view(-1)[:60] = 1 - fg_conf
    probs[0, 0].view(-1)[60:] = 0.9
    probs[0, 1].view(-1)[60:] = 0.1
    labels, weight = sel(probs)  # before any observation: the plain rule
    assert weight[labels == 1].sum().item() == 30
    sel.observe(gt)
    assert sel.labeled_counts.tolist() == [150.0, 40.0]
    assert torch.allclose(sel.class_prior(), torch.tensor([150 / 190, 40 / 190],
                                                          dtype=torch.float64))
    labels, weight = sel(probs)
    fg_kept = (weight > 0) & (labels == 1)
    cap = math.ceil(0.5 * 40 / 190 * 100)  # 11 of the image's 100 positions
    assert fg_kept.sum().item() == cap
    assert probs[0, 1][fg_kept[0]].min() >= fg_conf.sort().values[-cap]  # the best ones
    # background keeps min(ceil(0.5 * 40), ceil(0.5 * 150 / 190 * 100)) = 20
    assert ((weight > 0) & (labels == 0)).sum().item() == 20
    state = sel.state_dict()
    assert torch.equal(state['labeled_counts'], sel.labeled_counts)
    sel.eval()
    sel.observe(gt)  # eval mode: no update
    assert sel.labeled_counts.tolist() == [150.0, 40.0]
    with pytest.raises(ValueError, match='num_classes'):
        ClassAwareTopKSelector(prior=True)
