"""DSSN against its authors' computation (kunzhan/DSSN, voc/DSSN.py and voc/util/utils.py).

The authors' code is a training script, not a package: the reference below is that
script's step written out from its formulas (our own code), run on the same network
weights, images, CutMix boxes and dropout masks as ssvision's ``DSSN``. Selection masks,
every loss term, the total and the student's gradients must agree.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub

import ssvision.models.algorithms.dssn as dssn_module
from ssvision.models.algorithms import DSSN
from ssvision.models.selectors import class_peak_mask

pytestmark = [pytest.mark.parity, pytest.mark.usefixtures('one_thread')]

NET = dict(type='DeepLabV3Plus', backbone='resnet18', num_classes=5, aspp_channels=16,
           low_level_channels=8, decoder_channels=16, dropout=0.0)
IGNORE = 255


# ------------------------------------------------------------------ the reference
def adaptive_binary_mask(logit: torch.Tensor) -> torch.Tensor:
    """The authors' ``get_adaptive_binary_mask`` (VOC / COCO): per image and class the
    peak confidence m; threshold 0.96 m when m > 0.92 else m; the number of classes
    strictly above their threshold at each pixel."""
    conf = torch.softmax(logit, dim=1)
    max_value = conf.reshape(logit.shape[0], logit.shape[1], -1).max(dim=2).values
    new_max = torch.where(max_value > 0.92, max_value * 0.96, max_value)
    return (conf > new_max[..., None, None]).sum(dim=1)


def norm(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean(dim=1, keepdim=True)) / x.std(dim=1, keepdim=True)


def need_fp_forward(model, x: torch.Tensor, drop):
    """The authors' ``DeepLabV3Plus.forward(x, need_fp=True)``: the decoder on the clean
    and two dropped copies of the low (c1) and high (c4) level features."""
    c1, c4 = model.extract_levels(x)
    outs = model.decode_levels(torch.cat((c1, drop(c1), drop(c1))),
                               torch.cat((c4, drop(c4), drop(c4))), x.shape[-2:])
    return outs.chunk(3)


def reference_step(student, teacher, img_x, mask_x, img_u_w, img_u_s1, img_u_s2,
                   ignore_mask, box1, box2, perm, drop, first_step: bool) -> dict:
    """One step of the authors' script with the "mix batch" = the partner images
    ``perm`` of the same batch (teacher in training mode: their epoch 0)."""
    img_u_w_mix, img_u_s1_mix, img_u_s2_mix = img_u_w[perm], img_u_s1[perm], img_u_s2[perm]
    ignore_mask_mix = ignore_mask[perm]
    with torch.no_grad():
        pred_u_w_mix_tea = teacher(img_u_w_mix).detach()
    mask_u_w_mix_tea = pred_u_w_mix_tea.argmax(dim=1)
    img_u_s1, img_u_s2 = img_u_s1.clone(), img_u_s2.clone()
    b1 = box1.unsqueeze(1).expand(img_u_s1.shape) == 1
    b2 = box2.unsqueeze(1).expand(img_u_s2.shape) == 1
    img_u_s1[b1] = img_u_s1_mix[b1]
    img_u_s2[b2] = img_u_s2_mix[b2]
    num_lb, num_ulb = img_x.shape[0], img_u_w.shape[0]
    preds, preds_fp, preds_Fp = need_fp_forward(student, torch.cat((img_x, img_u_w)), drop)
    pred_x, pred_u_w = preds.split([num_lb, num_ulb])
    pred_u_w_fp, pred_u_w_Fp = preds_fp[num_lb:], preds_Fp[num_lb:]
    pred_u_s1, pred_u_s2 = student(torch.cat((img_u_s1, img_u_s2))).chunk(2)
    pred_u_w = pred_u_w.detach()
    adaptive = adaptive_binary_mask(pred_u_w)
    mask_u_w = pred_u_w.argmax(dim=1)
    with torch.no_grad():
        preds_tea = teacher(img_u_w)
    mask_u_w_tea = preds_tea.argmax(dim=1)
    mix1, mix2 = preds_tea.clone(), preds_tea.clone()
    t1 = box1.unsqueeze(1).expand(mix1.shape) == 1
    t2 = box2.unsqueeze(1).expand(mix2.shape) == 1
    mix1[t1] = pred_u_w_mix_tea[t1]
    mix2[t2] = pred_u_w_mix_tea[t2]
    adaptive1, adaptive2 = adaptive_binary_mask(mix1), adaptive_binary_mask(mix2)
    lab1, ign1 = mask_u_w_tea.clone(), ignore_mask.clone()
    lab2, ign2 = mask_u_w_tea.clone(), ignore_mask.clone()
    lab1[box1 == 1] = mask_u_w_mix_tea[box1 == 1]
    ign1[box1 == 1] = ignore_mask_mix[box1 == 1]
    lab2[box2 == 1] = mask_u_w_mix_tea[box2 == 1]
    ign2[box2 == 1] = ignore_mask_mix[box2 == 1]

    def unsup(pred, lab, sel, ign):
        loss = F.cross_entropy(pred, lab, reduction='none') * (sel & (ign != IGNORE))
        return loss.sum() / (ign != IGNORE).sum().item()

    loss_x = F.cross_entropy(pred_x, mask_x, ignore_index=IGNORE)
    terms = dict(
        sup=loss_x, s1=unsup(pred_u_s1, lab1, adaptive1, ign1),
        s2=unsup(pred_u_s2, lab2, adaptive2, ign2),
        fp1=unsup(pred_u_w_fp, mask_u_w, adaptive, ignore_mask),
        fp2=unsup(pred_u_w_Fp, mask_u_w, adaptive, ignore_mask),
        mse_s=F.mse_loss(norm(pred_u_s1), norm(pred_u_s2)),
        mse_fp=F.mse_loss(norm(pred_u_w_fp), norm(pred_u_w_Fp)))
    t = terms
    if first_step:
        total = 0.5 * (t['sup'] + 0.25 * (t['fp1'] + t['fp2'])
                       + 0.01 * (t['mse_s'] + t['mse_fp']))
    else:
        total = 0.5 * (t['sup'] + 0.25 * (t['s1'] + t['s2'] + t['fp1'] + t['fp2'])
                       + 0.01 * (t['mse_s'] + t['mse_fp']))
    masks = dict(mix1=(adaptive1 > 0) & (ign1 != IGNORE), mix2=(adaptive2 > 0) & (ign2 != IGNORE),
                 own=(adaptive > 0) & (ignore_mask != IGNORE), lab1=lab1, lab2=lab2)
    return dict(total=total, terms=terms, masks=masks)


# ------------------------------------------------------------------ shared inputs
class _Drops:
    """Dropout2d with channel masks from its own generator (the same masks, in the same
    call order, for both sides)."""

    def __init__(self, seed: int) -> None:
        self.g = torch.Generator().manual_seed(seed)

    def __call__(self, x, p=0.5, training=True, inplace=False):
        keep = (torch.rand(x.shape[:2], generator=self.g) >= p).to(x.dtype)
        return x * keep[..., None, None] / (1 - p)


def _inputs(n=3, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    img = lambda: torch.randn(n, 3, size, size, generator=g)  # noqa: E731
    mask_x = torch.randint(0, 5, (n, size, size), generator=g)
    mask_x[:, :3] = IGNORE
    ignore = torch.zeros(n, size, size, dtype=torch.long)
    ignore[0, :, -6:] = IGNORE  # padding on the right of image 0 (a scaled-down crop)
    ignore[2, -4:] = IGNORE
    box1 = torch.zeros(n, size, size)
    box1[0, 4:20, 6:18] = 1
    box1[1, 10:30, 0:9] = 1
    box2 = torch.zeros(n, size, size)
    box2[1, 2:12, 20:31] = 1  # image 1 gets another box in view 2
    box2[2, 0:16, 16:32] = 1  # and image 2 a box in view 2 only
    return img(), mask_x, img(), img(), img(), ignore, box1, box2


def _models(confident: bool):
    torch.manual_seed(0)
    model = DSSN(model=NET, semi_train_cfg=dict(teacher_bn='batch'))
    with torch.no_grad():
        for p in model.teacher.parameters():  # a teacher that is not the student
            p.add_(0.3 * torch.randn_like(p))
        if confident:  # sharpen the teacher and the student so that peaks pass 0.92
            model.teacher.classifier.weight.mul_(40.0)
            model.student.classifier.weight.mul_(40.0)
    model.train()  # BatchNorm in training mode on the student
    return model


@pytest.mark.parametrize('first_step', [False, True])
@pytest.mark.parametrize('confident', [True, False])
def test_dssn_step_equals_the_authors(monkeypatch, first_step, confident):
    # catches: selection before mixing or one box for both views (masks differ), a
    # stop-gradient on one Siamese side or a missing logit standardisation (terms and
    # gradients differ), normalising by the selected instead of the image pixels,
    # padding kept as targets, the loss on the first strong view only, the wrong
    # first-step rule, dropout on the fused feature instead of both levels
    img_x, mask_x, img_u_w, s1, s2, ignore, box1, box2 = _inputs()
    perm = torch.tensor([1, 2, 0])
    model = _models(confident)
    student_ref = copy.deepcopy(model.student)
    teacher_ref = copy.deepcopy(model.teacher)
    boxes = iter([box1.bool(), box2.bool()])
    monkeypatch.setattr(dssn_module, 'cutmix_partners', lambda n, device=None: perm)
    monkeypatch.setattr(dssn_module, 'cutmix_box_masks', lambda *a, **k: next(boxes))

    MessageHub.get_current_instance().update_info('iter', 0 if first_step else 7)
    inputs = dict(sup=img_x, unsup_teacher=img_u_w, unsup_student=s1.clone(),
                  unsup_student2=s2.clone())
    samples = dict(sup=dict(gt_seg=mask_x),
                   unsup_teacher=dict(valid_mask=(ignore != IGNORE).float()))
    monkeypatch.setattr(F, 'dropout2d', _Drops(5))
    pseudo = model.project_pseudo_labels(model.get_pseudo_labels(inputs, samples, 7), samples)
    out = model.forward_student(pseudo.inputs, samples, pseudo)
    losses = {**model.loss_by_gt(out, samples),
              **model.loss_by_pseudo_labels(out, pseudo, samples)}
    total = sum(v for k, v in losses.items() if 'loss' in k)
    total.backward()

    monkeypatch.setattr(F, 'dropout2d', _Drops(5))
    ref = reference_step(student_ref, teacher_ref.train(), img_x, mask_x, img_u_w, s1, s2,
                         ignore, box1, box2, perm, F.dropout2d, first_step)
    ref['total'].backward()

    # selection masks and pseudo-labels of both mixed views, and the student's own mask
    for k, view in enumerate(('unsup_student', 'unsup_student2'), start=1):
        labels, weight, _ = pseudo.targets[view]
        assert torch.equal(weight > 0, ref['masks'][f'mix{k}'])
        assert torch.equal(labels, ref['masks'][f'lab{k}'])
    if confident:
        assert ref['masks']['mix1'].any() and ref['masks']['own'].any()
    else:
        assert not ref['masks']['mix1'].any()  # peaks at or below 0.92 keep nothing
    t, tol = ref['terms'], dict(rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(losses['sup_loss'], 0.5 * t['sup'], **tol)
    strong = 0.0 if first_step else t['s1'] + t['s2']
    torch.testing.assert_close(losses['unsup_strong_loss'],
                               torch.as_tensor(0.5 * 0.25 * strong).float(), **tol)
    torch.testing.assert_close(losses['unsup_feat_loss'], 0.5 * 0.25 * (t['fp1'] + t['fp2']),
                               **tol)
    torch.testing.assert_close(losses['unsup_siamese_img_loss'], 0.5 * 0.01 * t['mse_s'], **tol)
    torch.testing.assert_close(losses['unsup_siamese_feat_loss'], 0.5 * 0.01 * t['mse_fp'],
                               **tol)
    torch.testing.assert_close(total, ref['total'], **tol)
    if confident and not first_step:
        assert t['s1'] > 0 and t['s2'] > 0 and t['fp1'] > 0
    for (name, p), p_ref in zip(model.student.named_parameters(), student_ref.parameters()):
        if p_ref.grad is None:
            assert p.grad is None or not p.grad.any(), name
            continue
        torch.testing.assert_close(p.grad, p_ref.grad, rtol=1e-3, atol=1e-6, msg=name)


def test_class_peak_mask_is_the_authors_rule():
    # catches: a global threshold instead of each class's own peak, >= instead of >, a
    # peak taken over the batch instead of per image, classes at or below 0.92 keeping
    # their top pixel
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 6, 9, 11, generator=g) * 4
    probs = logits.softmax(dim=1)
    assert torch.equal(class_peak_mask(probs), adaptive_binary_mask(logits) > 0)
    # one class peaking at exactly its threshold keeps nothing of it
    p = torch.tensor([[[0.5, 0.9]], [[0.5, 0.1]]]).unsqueeze(0)  # (1, 2, 1, 2)
    assert not class_peak_mask(p).any()
