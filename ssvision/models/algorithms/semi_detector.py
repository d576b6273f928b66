"""Mean-teacher semi-supervised detection over any :class:`TorchvisionDetector`, on the
shared recipe (:class:`SemiBase` with a :class:`~ssvision.models.tasks.DetectionTask`).

One iteration (:meth:`SemiBase.loss`, with this class's two steps)::

    selector.observe(labeled boxes)                              # count prior
    dets     = teacher.predict(unsup_teacher)                    # eval, no_grad
    pseudo   = PseudoBoxPolicy(dets): select, gate regression (flip / jitter), move
               into the student's view, health                   # pseudo_boxes.py
    sup      = student.loss(sup images, gt boxes)                 # all terms
    unsup_loss_cls = CLS terms of student.loss(strong views with pseudo.cls)
    unsup_loss_reg = REG terms of student.loss(strong views with pseudo.reg)
    loss     = sup + weight(t) * (unsup_loss_cls + unsup_loss_reg)

``weight(t)`` is the recipe's: 0 during ``burn_in_iters``, then a linear ramp over
``unsup_warmup_iters`` to ``unsup_weight``. An unlabeled image with no surviving
pseudo-box is left out of the unsup forward (it adds exactly 0, it is not treated as all
background); with none in the batch the unsup loss is exactly 0. The policy (and the
box uncertainty measures) is shared with the mmdetection plug-in, see
:mod:`.pseudo_boxes`.
"""

from __future__ import annotations

import contextlib
import copy

import torch
from mmengine.model import BaseDataPreprocessor
from torch import nn

from ssvision.models.detectors.torchvision_det import IGNORE_ARCHS
from ssvision.registry import MODELS
from ssvision.structures import DetInstances

from .base import PseudoLabels, SemiBase
from .pseudo_boxes import PseudoBoxPolicy, jitter_uncertainty
from .teacher_bn import frozen_bn_stats

__all__ = ['SemiDetector', 'DetDataPreprocessor']


@MODELS.register_module()
class DetDataPreprocessor(BaseDataPreprocessor):
    """uint8 images (a ``(N, 3, H, W)`` tensor or a list of ``(3, H, W)``, per view) to
    lists of float ``[0, 1]`` tensors on the device; data samples (boxes included) moved
    alike. Normalisation is the detector's own (torchvision's transform)."""

    def _images(self, x):
        if isinstance(x, torch.Tensor) and x.dim() == 4:
            x = list(x)
        if not isinstance(x, (list, tuple)):
            raise TypeError(f'expected a (N, 3, H, W) tensor or a list of images, got '
                            f'{type(x).__name__}')
        return [self.cast_data(img).float().div_(255.0) for img in x]

    def _samples(self, s):
        if isinstance(s, DetInstances):
            return s.to(self.device)
        if isinstance(s, dict):
            return {k: self._samples(v) for k, v in s.items()}
        if isinstance(s, list):
            return [self._samples(v) for v in s]
        if isinstance(s, torch.Tensor):
            return s.to(self.device)
        return s

    def forward(self, data: dict, training: bool = False) -> dict:
        inputs, samples = data['inputs'], data.get('data_samples')
        if isinstance(inputs, dict):
            inputs = {k: self._images(v) for k, v in inputs.items()}
        else:
            inputs = self._images(inputs)
        return {'inputs': inputs, 'data_samples': self._samples(samples)}


@MODELS.register_module()
class SemiDetector(SemiBase):
    """Mean-teacher detector with class-aware pseudo-box selection (see the module
    docstring). Registered as ``SemiDetector`` and ``MeanTeacherDetector``.

    Args:
        detector: config of a detector with ``loss(images, instances)`` and
            ``predict(images)`` (:class:`~ssvision.models.TorchvisionDetector`).
        selector: box selector config; None gives supervised-only training.
            Default ``FixedScoreBoxSelector(0.9)``.
        semi_train_cfg: the recipe's knobs (``unsup_weight``, ``burn_in_iters``,
            ``unsup_warmup_iters``, ``look_ahead``, ``teacher_bn`` (default
            ``'running'`` here: the teacher detects in eval mode, as before the shared
            recipe), ``student_forward`` (``'separate'``, the default, or
            ``'clean_stats'``: the unlabeled forwards leave the BN running statistics
            alone; a detector's loss is not per image, so labeled and pseudo-labeled
            images cannot share one forward)) and the pseudo-box policy's:
            ``reg_uncertainty`` (0.1; None trains regression on every pseudo-box and
            skips the uncertainty pass), ``reg_uncertainty_mode`` (``'flip'``, any
            detector; ``'jitter'``: Soft Teacher's box jitter, two-stage only, with
            ``jitter_times`` 10 and ``jitter_scale`` 0.06), ``min_box_size`` (2.0
            pixels), ``zero_warn_iters`` (50: warn when the teacher yields no pseudo-box
            for this many iterations in a row after burn-in), ``ignore_score`` (None:
            the teacher's detections that are not kept but score at least this become
            ignore regions, whose anchors the classification terms leave out instead of
            training them as background; RetinaNet, Faster R-CNN; see :mod:`.pseudo_boxes`), and
            ``source_free`` (False; see below).
        predict_on: networks validated, default ``('teacher', 'student')``.
        data_preprocessor: default :class:`DetDataPreprocessor`.

    The EMA teacher is updated by :class:`~ssvision.engine.hooks.EMATeacherHook`. A
    plain detector checkpoint loads into teacher and student.

    **Source-free adaptation** (``semi_train_cfg.source_free=True``): batches hold
    unlabeled target images only (``SemiSampler(labeled_batch_size=0,
    unlabeled_batch_size=N)``), there is no supervised loss, and the detector must start
    from a trained one (``load_from``, ``init_cfg`` or the detector's ``checkpoint``): a
    teacher still at its random initialisation at the first step is refused, since it
    has nothing to adapt. Box-level auxiliary heads (``WeakStrongContrastHead``, WSCoL)
    attach through ``aux_heads``.
    """

    default_train_cfg = {
        **SemiBase.default_train_cfg, 'teacher_bn': 'running', 'student_forward': 'separate',
        'reg_uncertainty': 0.1, 'reg_uncertainty_mode': 'flip', 'jitter_times': 10,
        'jitter_scale': 0.06, 'min_box_size': 2.0, 'zero_warn_iters': 50,
        'ignore_score': None, 'source_free': False}
    student_forwards = ('separate', 'clean_stats')
    default_task = dict(type='DetectionTask')
    default_preprocessor = dict(type='DetDataPreprocessor')

    def __init__(self, detector: dict, selector: dict | None = 'default',
                 semi_train_cfg: dict | None = None,
                 predict_on: tuple[str, ...] | str = ('teacher', 'student'),
                 data_preprocessor: dict | None = None, init_cfg=None,
                 semi_test_cfg: dict | None = None, **kwargs) -> None:
        if selector == 'default':
            selector = dict(type='FixedScoreBoxSelector', threshold=0.9)
        # semi_test_cfg (what tools/test.py --model sets on every algorithm) wins over
        # predict_on
        test_cfg = {'predict_on': predict_on, **(semi_test_cfg or {})}
        super().__init__(detector, selector=selector, semi_train_cfg=semi_train_cfg,
                         semi_test_cfg=test_cfg,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg, **kwargs)
        cfg = self.semi_train_cfg
        if cfg['reg_uncertainty_mode'] == 'jitter' and (
                self.student.one_stage or not hasattr(self.student, 'refine_boxes')):
            raise ValueError("reg_uncertainty_mode='jitter' needs a two-stage detector (its "
                             "second stage refines the jittered boxes); use 'flip'")
        if cfg['ignore_score'] is not None and getattr(self.student, 'arch', None) not in \
                IGNORE_ARCHS:
            raise ValueError(f"semi_train_cfg.ignore_score needs a TorchvisionDetector with "
                             f"arch in {IGNORE_ARCHS}, got "
                             f"{getattr(self.student, 'arch', type(self.student).__name__)!r}")
        self.unlabeled_only = bool(cfg['source_free'])
        self._random_start = None
        if self.unlabeled_only:
            if self.selector is None:
                raise ValueError('source_free=True needs a box selector: without labels '
                                 'the pseudo-boxes are the only training signal')
            if 'detector' not in getattr(self.student, 'load_reports', {}):
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

    def loss(self, inputs: dict, data_samples: dict) -> dict[str, torch.Tensor]:
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
        return super().loss(inputs, data_samples)

    # ------------------------------------------------------------ the two steps
    def pseudo_labels(self, inputs: dict, data_samples: dict, it: int) -> PseudoLabels:
        """Teacher detections on the weak views -> the policy's pseudo-boxes."""
        weak, strong = inputs['unsup_teacher'], inputs['unsup_student']
        t_samples, s_samples = data_samples['unsup_teacher'], data_samples['unsup_student']
        dets = self.teacher_predict(weak, it)
        flipped = widths = None
        if self.policy.needs_flipped:
            flipped = self.teacher_predict([img.flip(-1) for img in weak], it)
            widths = [img.shape[-1] for img in weak]
        moves = [(t_samples['homography'][i], s_samples['homography'][i],
                  strong[i].shape[-2:]) for i in range(len(weak))]
        teacher = self.pseudo_label_teacher
        boxes = self.policy(
            dets, moves, flipped=flipped, widths=widths,
            jitter=lambda kept: jitter_uncertainty(teacher, weak, kept, self.policy.jitter_times,
                                                   self.policy.jitter_scale),
            true=t_samples.get('true_instances') if isinstance(t_samples, dict) else None)
        return PseudoLabels(inputs, boxes=boxes, health=boxes.health)

    def student_losses(self, inputs: dict, data_samples: dict, pseudo: PseudoLabels | None,
                       factor: float) -> tuple[dict[str, torch.Tensor], dict, dict]:
        """``sup_loss`` (+ its terms as ``sup.<term>`` logs) and, with pseudo-boxes,
        ``unsup_loss_cls`` / ``unsup_loss_reg`` (times ``factor``)."""
        if 'sup' in inputs:
            sup = self.task.losses(self.student, inputs['sup'],
                                   data_samples['sup']['gt_instances'])
            out = {'sup_loss': sum(sup.values())}
            out.update({f'sup.{k.replace("loss_", "")}': v.detach() for k, v in sup.items()})
        else:  # source-free: no labels; a 0 tied to one weight keeps backward defined
            first = next(p for p in self.student.parameters() if p.requires_grad)
            # (indexed, not viewed: a channels_last weight has no flat view)
            out = {'sup_loss': first[(0,) * first.dim()] * 0.0}
        if pseudo is not None:
            cls_loss, reg_loss = self.pseudo_box_losses(inputs['unsup_student'], pseudo.boxes)
            out['unsup_loss_cls'] = cls_loss * factor
            out['unsup_loss_reg'] = reg_loss * factor
        return out, {}, {}

    def pseudo_box_losses(self, strong: list[torch.Tensor], boxes) -> tuple[torch.Tensor,
                                                                            torch.Tensor]:
        """Summed classification and regression terms of the policy
        (:meth:`PseudoBoxPolicy.loss_terms`); 0 without pseudo-boxes."""
        clean = self.semi_train_cfg['student_forward'] == 'clean_stats'

        def student_loss(part: str, idx: list[int]) -> dict:
            # 'clean_stats': the pseudo-labeled forwards leave BN running statistics alone
            ignore = [boxes.ignore[i] for i in idx] if part == 'cls' and boxes.ignore else None
            with frozen_bn_stats(self.student) if clean else contextlib.nullcontext():
                return self.task.losses(self.student, [strong[i] for i in idx],
                                        [getattr(boxes, part)[i] for i in idx], ignore)

        cls_terms, reg_terms = self.policy.loss_terms(boxes, student_loss)
        zero = strong[0].new_zeros(())
        return sum(cls_terms.values(), zero), sum(reg_terms.values(), zero)


def _fingerprint(net: nn.Module) -> torch.Tensor:
    """Float64 sums of every parameter: equal before and after only if nothing loaded."""
    return torch.stack([p.detach().double().sum() for p in net.parameters()])


MODELS.register_module(name='MeanTeacherDetector', module=SemiDetector)
