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
    """DSSN as in its authors' code (kunzhan/DSSN, ``voc/DSSN.py``): semantic
    segmentation with a weak view ``w`` and two strong views ``s1``, ``s2`` per
    unlabeled image. The teacher's probabilities ``P`` on ``w`` are CutMixed per strong
    view with its own box and selected by ``ClassPeakSelector`` (the authors' adaptive
    mask); the student decodes ``cat(sup, w)``'s low- and high-level features clean and
    under two ``Dropout2d`` (``fp1``, ``fp2``), then runs ``cat(s1, s2)``::

        strong = CE_m(s1 | P_1) + CE_m(s2 | P_2)       # masked_ce, teacher's mixed targets
        feat   = CE_m(fp1 | q) + CE_m(fp2 | q)          # q: the student's own clean w
        total  = loss_scale * (sup + strong_weight * strong + feature_weight * feat
                               + siamese_weight * (MSE(z(s1), z(s2)) + MSE(z(fp1), z(fp2))))

    (``z``: :func:`standardize_logits`). The configs add the authors' EMA (0.996 after
    one copy) and SGD with poly decay and a 10x decoder learning rate. Deliberate
    differences: the CutMix partner is another image of the same batch (the authors
    draw a second batch from the same sampler, in practice the same images recropped;
    UniMatch's author calls mixing different images the more correct form); the
    teacher uses batch statistics until its running ones are trustworthy
    (``teacher_bn='auto'``; the authors' stays in train mode until its first
    evaluation); ``std = 0`` standardises to 0, not NaN.
    """

    default_train_cfg = {**SemiBase.default_train_cfg,
                         'cutmix_prob': 0.5,        # per strong view, its own box
                         'loss_scale': 0.5,         # multiplies every term
                         'strong_weight': 0.25,     # the strong views' CE
                         'feature_weight': 0.25,    # the feature-perturbed CE
                         'siamese_weight': 0.01,    # each standardised-logit MSE
                         'feature_dropout': 0.5,    # Dropout2d of the encoder levels
                         'strong_start_iter': 1}    # no strong term before (teacher copying)
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
    """ssvision's DSSN variant, not the authors' recipe (:class:`DSSN`): a class-aware
    selector (``ClassAwareTopKSelector(ratio=0.5, floor=0.5)``: each class keeps its own
    top-confidence predictions) supervises both strong views,
    ``unsup_loss = (CE_w(s1, y) + CE_w(s2, y)) / 2``, with one CutMix box for both, and
    the Siamese terms come from the ``DualSiameseConsistencyHead`` aux head (added
    unless ``aux_heads`` is given). Kept for the figures measured with it and for
    classification.
    """

    student_views = ('unsup_student', 'unsup_student2')

    def __init__(self, model: dict, selector: dict | None = None,
                 aux_heads: list[dict] | None = None, **kwargs) -> None:
        if selector is None:
            selector = dict(type='ClassAwareTopKSelector', ratio=0.5, floor=0.5)
        if aux_heads is None:
            aux_heads = [dict(type='DualSiameseConsistencyHead')]
        super().__init__(model, selector=selector, aux_heads=aux_heads, **kwargs)

