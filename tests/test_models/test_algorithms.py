"""Behaviour of every algorithm's loss on real digits (sklearn's 8x8 set, upscaled)."""

import copy
import math

import cv2
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from ssvision.models.algorithms import DSSNTopK, FixMatch, FreeMatch, MeanTeacher, SupervisedOnly
from ssvision.models.algorithms.student_forward import forward_views
from ssvision.models.network import batch_stats_bn

NET = dict(type='TinyCNN', num_classes=10, in_channels=1, width=8)
ALGORITHMS = {
    'FixMatch': (FixMatch, {}),
    'MeanTeacher': (MeanTeacher, {}),
    'FreeMatch': (FreeMatch, {'semi_train_cfg': {'fairness_weight': 0.0}}),
    'DSSNTopK': (DSSNTopK, {'aux_heads': []}),
    'FixMatch+look_ahead': (FixMatch, {'semi_train_cfg': {'look_ahead': True}}),
}



def _outputs(model, views):
    """The student's outputs on ``views`` in the model's ``student_forward`` mode."""
    return forward_views(model.student, model.task, model.semi_train_cfg['student_forward'],
                         views)[0]

def _digits(n, offset=0):
    d = load_digits()
    imgs = np.stack([cv2.resize((img * 16).clip(0, 255).astype(np.uint8), (16, 16),
                                interpolation=cv2.INTER_LINEAR)
                     for img in d.images[offset:offset + n]])
    return torch.from_numpy(imgs)[:, None], torch.from_numpy(d.target[offset:offset + n])


def _batch(b=4, mu=2):
    sup, sup_y = _digits(b)
    unl, unl_y = _digits(b * mu, offset=100)
    strong = torch.flip(unl, dims=[3])  # a different view of the same images
    strong2 = torch.roll(unl, shifts=2, dims=2)
    return {
        'inputs': {'sup': sup, 'unsup_teacher': unl, 'unsup_student': strong,
                   'unsup_student2': strong2},
        'data_samples': {
            'sup': {'gt_label': sup_y},
            'unsup_teacher': {'gt_label': torch.full_like(unl_y, -1), 'true_label': unl_y,
                              'sample_idx': torch.arange(len(unl_y))},
            'unsup_student': {'gt_label': torch.full_like(unl_y, -1), 'true_label': unl_y},
        },
    }


def _losses(model, batch):
    data = model.data_preprocessor(batch, True)
    return model(**data, mode='loss')


def _perturb_teacher(model):
    # Make the teacher differ from the student so consistency is not trivially 0.
    with torch.no_grad():
        for p in model.teacher.parameters():
            p.add_(0.3 * torch.randn_like(p))


@pytest.mark.parametrize('name', sorted(ALGORITHMS))
def test_unsup_loss_positive_when_all_selected_and_zero_when_none(name):
    torch.manual_seed(0)
    cls, kwargs = ALGORITHMS[name]
    batch = _batch()
    model = cls(model=NET, selector=dict(type='FixedThresholdSelector', threshold=0.0), **kwargs)
    _perturb_teacher(model)
    model.train()
    losses = _losses(model, batch)
    assert math.isfinite(losses['unsup_loss'].item())
    assert losses['unsup_loss'].item() > 0
    assert losses['sel_frac'].item() == 1.0
    assert sum(losses[f'sel_n_{c}'].item() for c in range(10)) == 8
    assert 0.0 <= losses['pl_acc'].item() <= 1.0
    losses['unsup_loss'].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.student.parameters())
    assert all(p.grad is None for p in model.teacher.parameters())

    model = cls(model=NET, selector=dict(type='FixedThresholdSelector', threshold=1.01), **kwargs)
    _perturb_teacher(model)
    model.train()
    losses = _losses(model, batch)
    assert losses['unsup_loss'].item() == 0.0
    assert losses['sel_frac'].item() == 0.0
    assert math.isfinite(losses['sup_loss'].item())


def test_fixmatch_loss_equals_hand_computed_value():
    torch.manual_seed(1)
    model = FixMatch(model=NET, selector=dict(type='FixedThresholdSelector', threshold=0.0),
                     semi_train_cfg=dict(student_forward='separate', teacher_bn='running'))
    model.train()
    batch = _batch()
    data = model.data_preprocessor(batch, True)
    losses = model(**data, mode='loss')
    with torch.no_grad():
        model.teacher.eval()
        pl = model.teacher(data['inputs']['unsup_teacher']).argmax(1)
        logits = model.student(data['inputs']['unsup_student'])
        expected = torch.nn.functional.cross_entropy(logits, pl)
    assert losses['unsup_loss'].item() == pytest.approx(expected.item(), rel=1e-5)


def test_concat_forward_matches_separate_in_eval_statistics():
    # With BN in eval mode both forwards must give identical logits.
    model = FixMatch(model=NET)
    model.eval()
    views = [torch.randn(3, 1, 16, 16), torch.randn(5, 1, 16, 16)]
    joint = _outputs(model, views)
    model.semi_train_cfg['student_forward'] = 'separate'
    sep = _outputs(model, views)
    for a, b in zip(joint, sep):
        assert torch.allclose(a, b, atol=1e-5)


def test_concat_forward_shares_batch_statistics_in_training_mode():
    # In training mode BatchNorm normalises with the statistics of what it is given, so
    # the concatenated forward (one batch) and the separate one (one batch per view)
    # differ. Catches a 'concat' path that silently runs the views one by one, or a
    # 'separate' path that concatenates; eval mode cannot tell them apart.
    torch.manual_seed(0)
    model = FixMatch(model=NET)
    model.train()
    views = [torch.randn(3, 1, 16, 16), torch.randn(5, 1, 16, 16) * 3 + 1]
    with torch.no_grad():
        joint = _outputs(model, views)
        expected = model.student(torch.cat(views)).split([3, 5])
        model.semi_train_cfg['student_forward'] = 'separate'
        sep = _outputs(model, views)
        expected_sep = [model.student(v) for v in views]
    for a, b, c, d in zip(joint, expected, sep, expected_sep):
        assert torch.allclose(a, b, atol=1e-5) and torch.allclose(c, d, atol=1e-5)
        assert not torch.allclose(a, c, atol=1e-3)


def test_clean_stats_forward_keeps_strong_views_out_of_running_statistics():
    # Catches strong views leaking into the BN running statistics (validation then
    # normalises clean images with statistics of colour-jittered ones), and a second
    # forward that does not use batch statistics at all.
    torch.manual_seed(0)
    model = FixMatch(model=NET, semi_train_cfg=dict(student_forward='clean_stats'))
    model.train()
    sup, strong = torch.randn(3, 1, 16, 16), torch.randn(5, 1, 16, 16) * 3 + 1
    reference = copy.deepcopy(model.student)
    out_sup, out_strong = _outputs(model, [sup, strong])
    with torch.no_grad():
        expected_sup = reference(sup)  # updates reference's running stats with sup only
        expected_strong = copy.deepcopy(reference)(strong)
    assert torch.allclose(out_sup, expected_sup, atol=1e-5)
    assert torch.allclose(out_strong, expected_strong, atol=1e-5)
    for (k, a), b in zip(model.student.state_dict().items(), reference.state_dict().values()):
        if 'running' in k:
            assert torch.equal(a, b), k
    assert all(m.momentum == 0.1 for m in model.student.modules()
               if isinstance(m, torch.nn.BatchNorm2d))


def test_supervised_only_ignores_unlabeled_views():
    model = SupervisedOnly(model=NET)
    model.train()
    losses = _losses(model, _batch())
    assert set(losses) == {'sup_loss'}


def test_burn_in_and_warmup():
    model = FixMatch(model=NET, semi_train_cfg=dict(unsup_weight=2.0, burn_in_iters=10,
                                                    unsup_warmup_iters=4))
    assert model.unsup_weight_at(9) == 0.0
    assert model.unsup_weight_at(10) == pytest.approx(0.5)
    assert model.unsup_weight_at(13) == pytest.approx(2.0)
    assert model.unsup_weight_at(100) == pytest.approx(2.0)


def test_unknown_semi_train_cfg_key_is_named():
    with pytest.raises(ValueError, match='thresold'):
        FixMatch(model=NET, semi_train_cfg=dict(thresold=0.9))
    with pytest.raises(ValueError, match='predict_on'):
        FixMatch(model=NET, semi_test_cfg=dict(predict_on=('nobody',)))


def test_teacher_stays_in_eval_and_plain_checkpoint_loads_into_both():
    model = FixMatch(model=NET)
    model.train()
    assert model.student.training and not model.teacher.training
    from ssvision.registry import MODELS
    plain = MODELS.build(NET)
    with torch.no_grad():
        for p in plain.parameters():
            p.fill_(0.5)
    model.load_state_dict(plain.state_dict(), strict=False)
    for p_s, p_t in zip(model.student.parameters(), model.teacher.parameters()):
        assert torch.all(p_s == 0.5) and torch.all(p_t == 0.5)


def test_predict_outputs_both_networks():
    model = FixMatch(model=NET)
    imgs, labels = _digits(3)
    data = model.data_preprocessor({'inputs': imgs, 'data_samples': {'gt_label': labels}})
    out = model(**data, mode='predict')
    assert len(out) == 3 and set(out[0]['scores']) == {'teacher', 'student'}
    assert out[0]['gt_label'] == labels[0].item()
    assert torch.allclose(out[0]['scores']['teacher'].sum(), torch.tensor(1.0), atol=1e-5)


def test_look_ahead_uses_future_teacher_and_keeps_one_real_step():
    from mmengine.optim import OptimWrapper
    torch.manual_seed(0)
    model = FixMatch(model=NET, selector=dict(type='FixedThresholdSelector', threshold=0.0),
                     semi_train_cfg=dict(look_ahead=True))
    model.next_ema_momentum = 0.5
    teacher_before = [p.clone() for p in model.teacher.parameters()]
    opt = OptimWrapper(torch.optim.Adam(model.student.parameters(), lr=0.01))
    used = []
    predict = model.task.predict
    model.task.predict = lambda net, x: used.append(net) or predict(net, x)
    model.train_step(_batch(), opt)
    # virtual step labels come from the teacher, the real step's from the future teacher
    assert used[0] is model.teacher and used[1] is model.look_ahead.future
    assert not model.look_ahead.active and model.pseudo_label_teacher is model.teacher
    # exactly one real optimizer step survives
    steps = {int(st['step']) for st in opt.optimizer.state.values()}
    assert steps == {1}
    # the stored teacher is untouched (the EMA hook updates it after the step)
    assert all(torch.equal(a, b) for a, b in zip(teacher_before, model.teacher.parameters()))
    # the future teacher is EMA(teacher, virtual student) != teacher
    assert any(not torch.equal(a, b) for a, b in zip(model.look_ahead.future.parameters(),
                                                     model.teacher.parameters()))


def test_look_ahead_keeps_a_teacher_that_differs_from_the_student():
    # The teacher starts away from the student. Catches a restore of the virtual step
    # through load_state_dict, whose plain-checkpoint hook copied the (teacher-less)
    # saved student into the teacher: the teacher then equalled the pre-step student.
    from mmengine.optim import OptimWrapper
    torch.manual_seed(0)
    model = FixMatch(model=NET, selector=dict(type='FixedThresholdSelector', threshold=0.0),
                     semi_train_cfg=dict(look_ahead=True))
    _perturb_teacher(model)
    with torch.no_grad():
        for m in model.teacher.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.add_(0.5)
    model.train()
    model.next_ema_momentum = 0.5
    teacher = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    student = {k: v.clone() for k, v in model.student.state_dict().items()}
    assert any(not torch.equal(teacher[k], student[k]) for k in teacher)
    opt = OptimWrapper(torch.optim.SGD(model.student.parameters(), lr=0.1))
    model.train_step(_batch(), opt)
    for k, v in model.teacher.state_dict().items():
        assert torch.equal(v, teacher[k]), f'look-ahead changed teacher.{k}'
    # the student took its one real step from where it was
    assert any(not torch.equal(v, student[k]) for k, v in model.student.state_dict().items())


def test_freematch_fairness_and_dssn_with_their_own_selectors():
    torch.manual_seed(0)
    batch = _batch()
    model = FreeMatch(model=NET)
    model.train()
    losses = _losses(model, batch)
    assert math.isfinite(losses['unsup_fair_loss'].item())
    assert 'sel_global' in losses and 'thr_0' in losses
    with pytest.raises(TypeError):
        FreeMatch(model=NET, selector=dict(type='FixedThresholdSelector'))
    model = DSSNTopK(model=NET,
                     selector=dict(type='ClassAwareTopKSelector', ratio=1.0, floor=0.0))
    _perturb_teacher(model)
    model.train()
    losses = _losses(model, batch)
    assert losses['sel_frac'].item() == 1.0
    assert losses['unsup_loss'].item() > 0
    assert losses['aux_siamese_img_loss'].item() > 0
    assert losses['aux_siamese_feat_loss'].item() > 0


def test_look_ahead_advances_selector_and_heads_once():
    from mmengine.optim import OptimWrapper
    torch.manual_seed(0)
    model = FreeMatch(model=NET,
                      selector=dict(type='FreeMatchSelector', num_classes=10, ema_momentum=0.5),
                      aux_heads=[dict(type='RotationHead', loss_weight=0.5)],
                      semi_train_cfg=dict(look_ahead=True, fairness_weight=0.0))
    model.next_ema_momentum = 0.5
    tau0 = model.selector.tau.clone()
    head_before = model.aux_heads[0].classifier.weight.detach().clone()
    opt = OptimWrapper(torch.optim.SGD(list(model.student.parameters())
                                       + list(model.aux_heads.parameters()), lr=0.1))
    batch = _batch()
    model.train_step(batch, opt)
    weak = model.data_preprocessor(batch, True)['inputs']['unsup_teacher']
    with batch_stats_bn(model.look_ahead.future):  # the default teacher_bn='batch'
        conf = model.task.predict(model.look_ahead.future, weak).max(dim=1).values.mean()
    # one update, from the future teacher's confidences: tau = 0.5 tau0 + 0.5 conf
    assert torch.allclose(model.selector.tau, 0.5 * tau0 + 0.5 * conf, atol=1e-5)
    # the head took exactly one SGD step: w1 = w0 - lr * grad (grad from the real step)
    assert not torch.equal(head_before, model.aux_heads[0].classifier.weight)
    assert opt._inner_count == 1


def test_dssn_without_second_strong_view_is_an_error_and_burn_in_keeps_heads_off():
    batch = _batch()
    del batch['inputs']['unsup_student2']
    model = DSSNTopK(model=NET)
    model.train()
    with pytest.raises(KeyError, match='unsup_student2'):
        _losses(model, batch)
    model = FixMatch(model=NET, aux_heads=[dict(type='DualSiameseConsistencyHead')],
                     semi_train_cfg=dict(burn_in_iters=10**6))
    model.train()
    losses = _losses(model, _batch())
    assert 'unsup_loss' not in losses
    assert losses['aux_siamese_feat_loss'].item() == 0.0
    assert losses['aux_siamese_img_loss'].item() == 0.0


def test_recipe_shows_the_selector_the_labeled_targets():
    # Catches a recipe that never calls observe (the prior cap would silently stay off).
    model = FixMatch(model=NET, selector=dict(type='ClassAwareTopKSelector', prior=True,
                                              num_classes=10))
    model.train()
    batch = _batch()
    _losses(model, batch)
    expected = torch.bincount(batch['data_samples']['sup']['gt_label'], minlength=10)
    assert torch.equal(model.selector.labeled_counts, expected.double())


@pytest.mark.parametrize('cls', [FixMatch, DSSNTopK])
def test_rest_loss_pulls_only_the_unselected_samples_by_hand(cls):
    # ``rest_weight``: Mean Teacher's squared error on the samples the selector leaves
    # out, weighted by 1 - w. The teacher differs from the student and BN is in training
    # mode. Catches weighting by w instead of 1 - w (it would be 0 with nothing selected),
    # a term left on with every sample selected, and a term on one strong view only.
    batch = _batch()
    for threshold, expect_zero in ((0.0, True), (1.01, False)):
        torch.manual_seed(0)
        model = cls(NET, selector=dict(type='FixedThresholdSelector', threshold=threshold),
                    semi_train_cfg=dict(rest_weight=2.0),
                    **({'aux_heads': []} if cls is DSSNTopK else {}))
        _perturb_teacher(model)
        model.train()
        losses = _losses(model, batch)
        rest = losses['unsup_rest_loss']
        assert math.isfinite(rest.item())
        if expect_zero:
            assert rest.item() == 0.0
            continue
        assert rest.item() > 0
        # by hand: the same teacher probabilities, the student's strong views
        data = model.data_preprocessor(batch, True)
        inputs = data['inputs']
        p = model.teacher_predict(inputs['unsup_teacher'], 0)
        views = list(model.student_views)
        n_sup = len(inputs['sup'])
        logits = model.student(torch.cat([inputs['sup']] + [inputs[v] for v in views]))
        parts = logits[n_sup:].split(len(p))
        want = sum(((q.softmax(dim=1) - p) ** 2).sum(dim=1).mean() for q in parts) / len(views)
        torch.testing.assert_close(rest, 2.0 * want, rtol=1e-4, atol=1e-6)
    # off by default: no key
    assert 'unsup_rest_loss' not in _losses(cls(NET, **({'aux_heads': []} if cls is DSSNTopK
                                                       else {})), batch)
