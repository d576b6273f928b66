"""DSSN (dual-level Siamese structure network) as its authors run it, and ssvision's
class-top-k variant."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ssvision.datasets.transforms.cutmix import apply_cutmix, cutmix_box_masks, cutmix_partners
from ssvision.registry import MODELS

from ..network import require
from .base import PseudoLabels, SemiBase
from .fixmatch import FixMatch
from .health import selection_health
from .student_forward import StudentOutputs


def standardize_logits(x: torch.Tensor) -> torch.Tensor:
    """``(x - mean_c x) / std_c x`` over the class axis (dim 1, unbiased std), as the
    authors normalise logits before their Siamese MSE. Where every class has the same
    logit (``std = 0``) the result is 0 instead of the authors' NaN."""
    x = x.float()
    centred = x - x.mean(dim=1, keepdim=True)
    std = x.std(dim=1, keepdim=True)
    return centred / torch.where(std > 0, std, torch.ones_like(std))


def masked_ce(logits: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor,
              valid: torch.Tensor) -> torch.Tensor:
    """``sum_p w_p CE(logits_p, labels_p) / sum_p valid_p``: the authors' unlabeled
    cross entropy, normalised by the number of image (non-padding) pixels of the batch,
    not by the number selected, so it is exactly 0 when nothing is selected."""
    ce = F.cross_entropy(logits.float(), labels, reduction='none')
    return (ce * weight).sum() / valid.sum().clamp_min(1.0)


@MODELS.register_module()
class DSSN(SemiBase):
    """DSSN as in its authors' code (kunzhan/DSSN, ``voc/DSSN.py``), on the shared
    recipe. Semantic segmentation.

    Per iteration, with a weak view ``w`` and two strong views ``s1``, ``s2`` (colour
    changes of ``w``) of each unlabeled image:

    - **Teacher** (EMA, ``teacher_bn``): probabilities ``P`` on ``w``. Each strong view
      gets its own CutMix box (probability ``cutmix_prob``) from one partner image of
      the batch, and ``P`` and the valid (non-padding) mask are mixed the same way per
      view; the selector (:class:`~ssvision.models.selectors.ClassPeakSelector`, the
      authors' adaptive binary mask) runs on each mixed ``P_k``.
    - **Student**, forward 1 on ``cat(sup, w)``: the encoder once, the decoder three
      times on ``cat(f, D(f), D'(f))`` for the low- and the high-level features
      (``D``: independent ``Dropout2d(feature_dropout)``), giving the labeled logits,
      the clean weak logits ``q`` and two perturbed weak predictions ``fp1``, ``fp2``.
      Forward 2 on ``cat(s1, s2)``.
    - **Losses** (``z``: :func:`standardize_logits`, ``valid``: image pixels)::

          strong = CE_m(s1 | P_1) + CE_m(s2 | P_2)          # teacher's mixed targets
          feat   = CE_m(fp1 | q) + CE_m(fp2 | q)             # the student's own q, its mask
          total  = loss_scale * (sup + strong_weight * strong + feature_weight * feat
                                 + siamese_weight * (MSE(z(s1), z(s2)) + MSE(z(fp1), z(fp2))))

      ``CE_m`` is :func:`masked_ce` under the selector's mask of the target map.
      Iterations before ``strong_start_iter`` leave out ``strong`` (the authors train
      no strong view in their first step, VOC, or first five epochs, Cityscapes, while
      the teacher copies the student: ``EMATeacherHook(copy_steps=...)``).

    The authors' defaults: ``loss_scale`` 0.5, ``strong_weight`` 0.25,
    ``feature_weight`` 0.25, ``siamese_weight`` 0.01, ``feature_dropout`` 0.5,
    ``cutmix_prob`` 0.5, ``strong_start_iter`` 1, EMA keep rate 0.996 over parameters
    and BatchNorm buffers after one copy
    (``EMATeacherHook(momentum=0.996, ramp=False, copy_steps=1)`` in ``configs/dssn/``),
    SGD with poly decay 0.9 and a 10x learning rate on the decoder (VOC). ``unsup_weight`` and
    burn-in multiply / delay every unlabeled term as in every algorithm (1 and 0 here).

    Deliberate differences, each for a stated reason:

    - The CutMix partner is another image of the same batch (one cyclic partner for
      both views, an independent box per view). The authors' code draws a "second
      unlabeled batch" from a second iterator over the same sampler, which in practice
      is the same images in another random crop; UniMatch's author (whose loader DSSN
      reuses) calls mixing different images the more correct form, with no difference
      in accuracy (LiheYoung/UniMatch issue 85).
    - The teacher's BatchNorm: the authors' teacher runs in training mode (batch
      statistics) until their first evaluation, one epoch, and in eval mode (running
      statistics) after. ``teacher_bn='auto'`` follows that intent: batch statistics
      until the teacher's running statistics keep less than 5 % of their start, then
      running statistics.
    - ``std = 0`` standardises to 0, not NaN; ``num_batches_tracked`` is copied by the
      EMA, not averaged.

    Knobs (``semi_train_cfg``), besides :class:`SemiBase`'s: ``loss_scale``,
    ``strong_weight``, ``feature_weight``, ``siamese_weight``, ``feature_dropout``,
    ``strong_start_iter`` (see above). The student must give ``extract_levels`` / ``decode_levels``
    (:class:`~ssvision.models.segmentors.DeepLabV3Plus`).
    """

    default_train_cfg = {**SemiBase.default_train_cfg, 'cutmix_prob': 0.5,
                         'loss_scale': 0.5, 'strong_weight': 0.25, 'feature_weight': 0.25,
                         'siamese_weight': 0.01, 'feature_dropout': 0.5,
                         'strong_start_iter': 1}
    student_views = ('unsup_student', 'unsup_student2')
    forward_modes = ('concat',)
    default_task = dict(type='SegmentationTask')

    def __init__(self, model: dict, selector: dict | None = None, **kwargs) -> None:
        if selector is None:
            selector = dict(type='ClassPeakSelector')
        super().__init__(model, selector=selector, **kwargs)
        cfg = self.semi_train_cfg
        if not self.task.dense:
            raise ValueError('DSSN as published is a segmentation method (its selection '
                             'and feature perturbation are per pixel); for '
                             f'{type(self.task).__name__} use DSSNTopK, ssvision\'s variant')
        for member in ('extract_levels', 'decode_levels'):  # its feature perturbation
            require(self.student, member, 'DSSN')
        if cfg['pseudo_label_source'] != 'teacher':
            raise ValueError("DSSN takes pseudo-labels from its EMA teacher "
                             "(pseudo_label_source='teacher')")
        if not 0.0 <= cfg['feature_dropout'] < 1.0:
            raise ValueError(f"feature_dropout must be in [0, 1), got {cfg['feature_dropout']}")
        if any(head.feature_views for head in self.aux_heads):
            raise ValueError('DSSN runs its own feature-level forward; aux heads that read '
                             'encoder features (feature_views) are not supported')
        self.mixer = None  # DSSN mixes each strong view with its own box (pseudo_labels)

    # ------------------------------------------------------------ the four steps
    def get_pseudo_labels(self, inputs: dict, data_samples: dict, it: int) -> PseudoLabels:
        """The teacher's probabilities on the weak views (selection follows the mixing)."""
        return PseudoLabels(inputs, self.teacher_predict(inputs['unsup_teacher'], it))

    def project_pseudo_labels(self, pseudo: PseudoLabels, data_samples: dict) -> PseudoLabels:
        """Per strong view its own CutMix box (one partner per image for both views)
        applied to the view, the probabilities and the valid mask, then the selector on
        the mixed probabilities. Health comes from the first view's mixed targets."""
        probs, meta = pseudo.probs, data_samples.get('unsup_teacher', {}) or {}
        n, _, h, w = probs.shape
        valid = meta.get('valid_mask')
        if not (isinstance(valid, torch.Tensor) and valid.shape == (n, h, w)):
            valid = probs.new_ones(n, h, w)
        valid = valid.to(probs.dtype)
        true = meta.get('true_seg')
        extra = [true] if isinstance(true, torch.Tensor) and true.shape == (n, h, w) else []
        perm = cutmix_partners(n, device=probs.device)
        inputs, targets, health = dict(pseudo.inputs), {}, {}
        for k, view in enumerate(self.student_views):
            masks = cutmix_box_masks(n, h, w, prob=self.semi_train_cfg['cutmix_prob'],
                                     device=probs.device)
            inputs[view], p_mix, v_mix, *t_mix = apply_cutmix(inputs[view], masks, perm,
                                                              probs, valid, *extra)
            labels, weight = self.selector(p_mix)
            targets[view] = (labels, weight * v_mix, v_mix)
            if k == 0:
                samples = dict(meta, true_seg=t_mix[0]) if t_mix else meta
                health = selection_health(p_mix, labels, weight * v_mix, samples,
                                          self.selector.extra_log())
        first = targets[self.student_views[0]]
        return PseudoLabels(inputs, probs, first[0], first[1], valid=first[2], health=health,
                            targets=targets)

    def forward_student(self, inputs: dict, data_samples: dict,
                        pseudo: PseudoLabels | None) -> StudentOutputs:
        """Without pseudo-labels the labeled view alone. With them, forward 1 on
        ``cat(sup, w)``: the encoder once, the decoder on the clean features and two
        ``Dropout2d`` copies (``unsup_teacher_fp1`` / ``_fp2``); forward 2 on
        ``cat(s1, s2)``."""
        if pseudo is None:
            return StudentOutputs({'sup': self.task.forward(self.student, inputs['sup'])})
        p = self.semi_train_cfg['feature_dropout']
        x = torch.cat([inputs['sup'], inputs['unsup_teacher']])
        low, high = self.student.extract_levels(x)
        low = torch.cat([low, F.dropout2d(low, p, True), F.dropout2d(low, p, True)])
        high = torch.cat([high, F.dropout2d(high, p, True), F.dropout2d(high, p, True)])
        clean, fp1, fp2 = self.student.decode_levels(low, high, x.shape[-2:]).chunk(3)
        n = inputs['sup'].shape[0]
        s1, s2 = self.task.forward(
            self.student, torch.cat([inputs[v] for v in self.student_views])).chunk(2)
        return StudentOutputs({'sup': clean[:n], 'unsup_teacher': clean[n:],
                               'unsup_student': s1, 'unsup_student2': s2,
                               'unsup_teacher_fp1': fp1[n:], 'unsup_teacher_fp2': fp2[n:]})

    def loss_by_gt(self, out: StudentOutputs, data_samples: dict) -> dict[str, torch.Tensor]:
        sup = self.task.sup_loss(out.logits['sup'], data_samples['sup'])
        return {'sup_loss': self.semi_train_cfg['loss_scale'] * sup}

    def loss_by_pseudo_labels(self, out: StudentOutputs, pseudo: PseudoLabels,
                              data_samples: dict) -> dict[str, torch.Tensor]:
        cfg, logits = self.semi_train_cfg, out.logits
        s1, s2 = logits['unsup_student'], logits['unsup_student2']
        fp1, fp2 = logits['unsup_teacher_fp1'], logits['unsup_teacher_fp2']
        # the feature level learns from the student's own clean weak prediction
        own_labels, own_weight = self.selector(
            logits['unsup_teacher'].detach().float().softmax(dim=1))
        valid = self._unmixed_valid(data_samples, own_labels)
        strong = sum(masked_ce(o, *pseudo.targets[v])
                     for o, v in zip((s1, s2), self.student_views))
        if self.current_iter() < cfg['strong_start_iter']:
            strong = 0.0 * strong  # the authors' first step(s) train no strong view
        feat = (masked_ce(fp1, own_labels, own_weight * valid, valid)
                + masked_ce(fp2, own_labels, own_weight * valid, valid))
        mse_img = F.mse_loss(standardize_logits(s1), standardize_logits(s2))
        mse_feat = F.mse_loss(standardize_logits(fp1), standardize_logits(fp2))
        scale = cfg['loss_scale']
        return {
            'unsup_strong_loss': scale * cfg['strong_weight'] * strong,
            'unsup_feat_loss': scale * cfg['feature_weight'] * feat,
            'unsup_siamese_img_loss': scale * cfg['siamese_weight'] * mse_img,
            'unsup_siamese_feat_loss': scale * cfg['siamese_weight'] * mse_feat,
            'sel_frac_own': ((own_weight * valid).sum() / valid.sum().clamp_min(1.0)).detach(),
        }

    @staticmethod
    def _unmixed_valid(data_samples: dict, like: torch.Tensor) -> torch.Tensor:
        """The weak views' valid (non-padding) mask, ones when the batch has none."""
        valid = (data_samples.get('unsup_teacher', {}) or {}).get('valid_mask')
        if isinstance(valid, torch.Tensor) and valid.shape == like.shape:
            return valid.float()
        return torch.ones(like.shape, device=like.device)


@MODELS.register_module()
class DSSNTopK(FixMatch):
    """ssvision's DSSN variant: class-top-k selection, one CutMix box for both strong
    views, and the Siamese terms as an auxiliary head. Not the authors' recipe (that is
    :class:`DSSN`); kept for the figures measured with it and for classification.

    Each unlabeled image has one weak view (teacher) and two strong views
    (``unsup_student``, ``unsup_student2``). The teacher's pseudo-labels, chosen by a
    class-aware selector (each class keeps its own top-confidence predictions,
    ``ClassAwareTopKSelector(ratio=0.5, floor=0.5)`` by default), supervise both strong
    views::

        unsup_loss = (CE_w(s1, y_hat) + CE_w(s2, y_hat)) / 2

    The dual-level Siamese consistency (image level between the two strong views,
    feature level between two feature-dropout perturbations of the first strong view's
    decoder feature) is the auxiliary head ``DualSiameseConsistencyHead``, added by
    default unless ``aux_heads`` is given. ssvision's settings (not the authors'):
    unsup weight 1, Siamese weights 1 (image) and 1 (feature), feature dropout 0.5,
    EMA 0.999 with the ramp. Knobs: those of :class:`FixMatch`.
    """

    student_views = ('unsup_student', 'unsup_student2')

    def __init__(self, model: dict, selector: dict | None = None,
                 aux_heads: list[dict] | None = None, **kwargs) -> None:
        if selector is None:
            selector = dict(type='ClassAwareTopKSelector', ratio=0.5, floor=0.5)
        if aux_heads is None:
            aux_heads = [dict(type='DualSiameseConsistencyHead')]
        super().__init__(model, selector=selector, aux_heads=aux_heads, **kwargs)

