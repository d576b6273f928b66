"""Mean-teacher semi-supervised detection over any :class:`TorchvisionDetector`, on the
shared recipe's four steps with pseudo-boxes (:mod:`.pseudo_boxes`, shared with the
mmdetection plug-in)::

    get_pseudo_labels      teacher detections on the weak views (+ flipped: the gate),
                           the selector's kept boxes, which of them pass the gate
    project_pseudo_labels  kept boxes moved into the student's views, health
    forward_student        the detector's loss terms: labeled images, then the images
                           with pseudo-boxes ('cls'), then those with reliable ones ('reg')
    loss_by_gt             sup_loss = sum of the labeled terms
    loss_by_pseudo_labels  unsup_loss_cls / unsup_loss_reg = classification / regression
                           terms, times the recipe's unsup weight

An unlabeled image with no surviving pseudo-box is left out of the unsup forward (it
adds exactly 0, it is not trained as all background).
"""

from __future__ import annotations

import contextlib
import copy

import torch
from torch import nn

from ssvision.registry import MODELS

from ..network import frozen_bn_stats, provides
from .base import PseudoLabels, SemiBase
from .pseudo_boxes import PseudoBoxPolicy
from .student_forward import StudentOutputs

__all__ = ['SemiDetector']

#: The box selector when the config names none (``selector=None``: supervised only).
DEFAULT_BOX_SELECTOR = dict(type='FixedScoreBoxSelector', threshold=0.9)


@MODELS.register_module()
class SemiDetector(SemiBase):
    """Mean-teacher detector with class-aware pseudo-box selection (see the module
    docstring). Registered as ``SemiDetector`` and ``MeanTeacherDetector``.

    ``detector`` is a :class:`~ssvision.models.network.DetectorNetwork` config;
    ``selector`` a box selector (None: supervised only). With ``source_free=True``
    batches hold unlabeled target images only and the detector must start trained
    (``load_from``, ``init_cfg`` or its ``checkpoint``); a teacher still at its random
    initialisation at the first step is refused.
    """

    default_train_cfg = {
        **SemiBase.default_train_cfg,
        'teacher_bn': 'running',       # the teacher detects in eval mode
        'student_forward': 'separate',  # or 'clean_stats' (a detector's loss is not per image)
        'reg_uncertainty': 0.1,        # gate of the regression terms (None: no gate)
        'reg_uncertainty_mode': 'flip',  # 'flip' (any detector) or 'jitter' (two-stage)
        'jitter_times': 10,            # 'jitter': copies per box
        'jitter_scale': 0.06,          # 'jitter': offset scale per side
        'min_box_size': 2.0,           # moved boxes smaller than this (pixels) are dropped
        'zero_warn_iters': 50,         # warn after this many batches without a pseudo-box
        'ignore_score': None,          # unkept detections scoring this much: ignore regions
        'source_free': False}          # unlabeled target images only, see above
    forward_modes = ('separate', 'clean_stats')
    default_task = dict(type='DetectionTask')
    default_preprocessor = dict(type='DetDataPreprocessor')

    def __init__(self, detector: dict, selector: dict | None = DEFAULT_BOX_SELECTOR,
                 **kwargs) -> None:
        super().__init__(detector, selector=None if selector is None else dict(selector),
                         **kwargs)
        cfg = self.semi_train_cfg
        if cfg['reg_uncertainty_mode'] == 'jitter' and not provides(self.student,
                                                                    'refine_boxes'):
            raise ValueError("reg_uncertainty_mode='jitter' needs a two-stage detector (its "
                             "second stage refines the jittered boxes); use 'flip'")
        if cfg['ignore_score'] is not None and not provides(self.student, 'ignore_regions'):
            raise ValueError(f'semi_train_cfg.ignore_score needs a detector whose loss takes '
                             f'ignore regions, not {type(self.student).__name__} '
                             f'({self.student.arch})')
        self.unlabeled_only = bool(cfg['source_free'])
        self._random_start = None
        if self.unlabeled_only:
            if self.selector is None:
                raise ValueError('source_free=True needs a box selector: without labels '
                                 'the pseudo-boxes are the only training signal')
            if 'detector' not in self.student.load_reports:
                # compared at the first step: load_from / init_cfg load after the build
                self._random_start = _fingerprint(self.teacher)
        self.policy = None if self.selector is None else PseudoBoxPolicy(
            self.selector, self.num_classes, cfg['reg_uncertainty'],
            cfg['reg_uncertainty_mode'], cfg['jitter_times'], cfg['jitter_scale'],
            cfg['min_box_size'], cfg['zero_warn_iters'], name=type(self).__name__,
            ignore_score=cfg['ignore_score'])

    @property
    def uses_unlabeled(self) -> bool:
        return self.selector is not None

    def build_teacher(self, model: dict) -> nn.Module:
        # a copy rather than a second build: the same random stream as before the
        # shared recipe, so the detection benchmarks' seeds still mean the same runs
        return copy.deepcopy(self.student)

    def check_batch(self, inputs: dict, it: int) -> bool:
        if self.unlabeled_only:
            if 'sup' in inputs:
                raise ValueError('source_free=True but the batch has a labeled view: use '
                                 'SemiSampler(labeled_batch_size=0, unlabeled_batch_size=N)')
            if self._random_start is not None:
                if torch.equal(_fingerprint(self.teacher), self._random_start):
                    raise RuntimeError(
                        'source_free=True: the detector is still at its random '
                        'initialisation; start from a trained detector (load_from=..., '
                        "init_cfg=dict(type='Pretrained', checkpoint=...) or the "
                        "detector's checkpoint=...)")
                self._random_start = None  # checked once
        return super().check_batch(inputs, it)

    # ------------------------------------------------------------ the four steps
    def get_pseudo_labels(self, inputs: dict, data_samples: dict, it: int) -> PseudoLabels:
        """The teacher's detections on the weak views and the policy's gate: the boxes
        kept, and which of them are reliable enough to train regression."""
        weak = inputs['unsup_teacher']
        dets = self.teacher_predict(weak, it)
        flipped = widths = None
        if self.policy.needs_flipped:
            flipped = self.teacher_predict([img.flip(-1) for img in weak], it)
            widths = [img.shape[-1] for img in weak]
        keep, reliable = self.policy.gate(dets, flipped=flipped, widths=widths,
                                          teacher=self.pseudo_label_teacher, images=weak)
        return PseudoLabels(inputs, boxes=(dets, keep, reliable))

    def project_pseudo_labels(self, pseudo: PseudoLabels, data_samples: dict) -> PseudoLabels:
        """The kept boxes moved from the teacher's view into the student's (both views'
        homographies), and the health figures."""
        t_samples, s_samples = data_samples['unsup_teacher'], data_samples['unsup_student']
        strong = pseudo.inputs['unsup_student']
        moves = [(t_samples['homography'][i], s_samples['homography'][i],
                  strong[i].shape[-2:]) for i in range(len(strong))]
        true = t_samples.get('true_instances') if isinstance(t_samples, dict) else None
        boxes = self.policy.move(*pseudo.boxes, moves, true)
        return PseudoLabels(pseudo.inputs, boxes=boxes, health=boxes.health)

    def forward_student(self, inputs: dict, data_samples: dict,
                        pseudo: PseudoLabels | None) -> StudentOutputs:
        """The detector's loss terms (``terms``): ``'sup'`` on the labeled images, then
        the policy's ``'cls'`` / ``'reg'`` forwards on the strong views with pseudo-boxes
        (with ``'clean_stats'`` those leave the BN running statistics alone)."""
        out = StudentOutputs()
        if 'sup' in inputs:
            out.terms['sup'] = self.task.losses(self.student, inputs['sup'],
                                                data_samples['sup']['gt_instances'])
        if pseudo is None:
            return out
        strong, boxes = inputs['unsup_student'], pseudo.boxes
        clean = self.semi_train_cfg['student_forward'] == 'clean_stats'
        for part, idx in self.policy.forwards(boxes):
            ignore = [boxes.ignore[i] for i in idx] if part == 'cls' and boxes.ignore else None
            with frozen_bn_stats(self.student) if clean else contextlib.nullcontext():
                out.terms[part] = self.task.losses(
                    self.student, [strong[i] for i in idx],
                    [getattr(boxes, part)[i] for i in idx], ignore)
        return out

    def loss_by_gt(self, out: StudentOutputs, data_samples: dict) -> dict[str, torch.Tensor]:
        """``sup_loss`` (its terms logged as ``sup.<term>``); source-free: a 0 tied to
        one weight, so backward stays defined."""
        if 'sup' not in out.terms:
            first = next(p for p in self.student.parameters() if p.requires_grad)
            # (indexed, not viewed: a channels_last weight has no flat view)
            return {'sup_loss': first[(0,) * first.dim()] * 0.0}
        sup = out.terms['sup']
        losses = {'sup_loss': sum(sup.values())}
        losses.update({f'sup.{k.replace("loss_", "")}': v.detach() for k, v in sup.items()})
        return losses

    def loss_by_pseudo_labels(self, out: StudentOutputs, pseudo: PseudoLabels,
                              data_samples: dict) -> dict[str, torch.Tensor]:
        """Classification terms of the pseudo-box forwards and the (gated) regression
        terms, each summed; exactly 0 without pseudo-boxes."""
        cls_terms, reg_terms = self.policy.split_terms(out.terms)
        zero = pseudo.inputs['unsup_student'][0].new_zeros(())
        return {'unsup_loss_cls': sum(cls_terms.values(), zero),
                'unsup_loss_reg': sum(reg_terms.values(), zero)}


def _fingerprint(net: nn.Module) -> torch.Tensor:
    """Float64 sums of every parameter: equal before and after only if nothing loaded."""
    return torch.stack([p.detach().double().sum() for p in net.parameters()])


MODELS.register_module(name='MeanTeacherDetector', module=SemiDetector)
