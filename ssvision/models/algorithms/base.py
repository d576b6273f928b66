"""The one semi-supervised recipe every algorithm and task fills in."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch
from mmengine.logging import print_log

from .core import SemiCore
from .health import selection_health
from .student_forward import StudentOutputs, forward_views


@dataclass
class PseudoLabels:
    """The teacher's targets for one batch of unlabeled images, in the student's views.

    ``probs`` ``(N, C, *)``, ``labels`` / ``weight`` / ``valid`` ``(N, *)`` (``valid``: 1
    on image pixels, None without padding); ``inputs``: the batch's views, mixed alike
    with the targets; ``health``: logged figures; ``boxes``: detection's pseudo-boxes
    (between steps 2 and 3, the gated teacher detections ``(dets, keep, reliable)``);
    ``outputs``: the student's forward they came from (``pseudo_label_source='online'``);
    ``targets``: ``{view: (labels, weight, valid)}`` where views have their own (DSSN).
    """

    inputs: dict
    probs: Any = None
    labels: Any = None
    weight: Any = None
    valid: Any = None
    boxes: Any = None
    health: dict = field(default_factory=dict)
    outputs: StudentOutputs | None = None
    targets: dict | None = None


class SemiBase(SemiCore):
    """Student, EMA teacher, task adapter, selector and auxiliary heads; one training
    iteration is :meth:`loss`, four named steps around a shared core:

    1. :meth:`loss_by_gt`: the supervised loss on the labeled view;
    2. :meth:`get_pseudo_labels`: the teacher's predictions on the weak views, selected;
    3. :meth:`project_pseudo_labels`: moved into the student's views (CutMix, boxes);
    4. :meth:`loss_by_pseudo_labels`: the algorithm's ``unsup_*`` losses, weighted by
       :meth:`unsup_weight_at`.

    The student's outputs on its views come from one :meth:`forward_student` that both
    loss steps read; networks, teacher, knobs and validation are :class:`~.core.SemiCore`'s.
    """

    # ------------------------------------------------------------ the iteration
    def loss(self, inputs: dict, data_samples: dict) -> dict[str, torch.Tensor]:
        """One training iteration's losses, top to bottom."""
        it = self.current_iter()
        with_unsup = self.check_batch(inputs, it)
        if self.selector is not None and 'sup' in inputs:
            self.selector.observe(self.task.targets(data_samples['sup']))  # class priors
        pseudo = None
        if with_unsup:
            pseudo = self.get_pseudo_labels(inputs, data_samples, it)
            pseudo = self.project_pseudo_labels(pseudo, data_samples)
            inputs = pseudo.inputs
        out = self.forward_student(inputs, data_samples, pseudo)
        losses = self.loss_by_gt(out, data_samples)
        if pseudo is not None:
            factor = self.unsup_weight_at(it)
            for name, value in self.loss_by_pseudo_labels(out, pseudo, data_samples).items():
                losses[name] = value * factor if name.startswith('unsup_') else value
            losses.update(pseudo.health)
        if len(self.aux_heads):
            losses.update(self.aux_losses(inputs, data_samples, out, pseudo, it))
        return losses

    # ------------------------------------------------------------ the four steps
    def loss_by_gt(self, out: StudentOutputs, data_samples: dict) -> dict[str, torch.Tensor]:
        """Step 1: ``sup_loss`` on the labeled view (and figures it logs)."""
        return {'sup_loss': self.task.sup_loss(out.logits['sup'], data_samples['sup'])}

    def get_pseudo_labels(self, inputs: dict, data_samples: dict, it: int) -> PseudoLabels:
        """Step 2: the teacher's probabilities on the weak views (or, with
        ``pseudo_label_source='online'``, the student's in its forward of every view),
        the selector's labels and weights (padding never a target) and health figures."""
        outputs = None
        if self.semi_train_cfg['pseudo_label_source'] == 'online':
            names = self._student_view_names(inputs, True)
            names.insert(1, 'unsup_teacher')  # USB's order: labeled, weak, strong
            outputs = self._forward_named(inputs, names)
            probs = outputs.logits['unsup_teacher'].detach().float().softmax(dim=1)
        else:
            probs = self.teacher_predict(inputs['unsup_teacher'], it)
        meta = data_samples.get('unsup_teacher', {}) or {}
        labels, weight = self.selector(probs, sample_idx=meta.get('sample_idx'))
        valid = meta.get('valid_mask')
        if isinstance(valid, torch.Tensor) and valid.shape == weight.shape:
            valid = valid.to(weight.dtype)
            weight = weight * valid
        else:
            valid = None
        health = selection_health(probs, labels, weight, meta, self.selector.extra_log())
        return PseudoLabels(inputs, probs, labels, weight, valid=valid, health=health,
                            outputs=outputs)

    def project_pseudo_labels(self, pseudo: PseudoLabels, data_samples: dict) -> PseudoLabels:
        """Step 3: with ``cutmix_prob``, every unlabeled view the student's losses read
        and the targets are mixed with the same boxes (health stays unmixed)."""
        if self.mixer is None:
            return pseudo
        views = [v for v in self._student_view_names(pseudo.inputs, True)
                 if v.startswith('unsup') and v != 'unsup_teacher']
        extra = [] if pseudo.valid is None else [pseudo.valid]
        pseudo.inputs, pseudo.probs, pseudo.labels, pseudo.weight, *rest = self.mixer(
            pseudo.inputs, views, pseudo.probs, pseudo.labels, pseudo.weight, *extra)
        pseudo.valid = rest[0] if rest else None
        return pseudo

    def loss_by_pseudo_labels(self, out: StudentOutputs, pseudo: PseudoLabels,
                              data_samples: dict) -> dict[str, torch.Tensor]:
        """Step 4: the algorithm's ``unsup_*`` losses before weighting (other keys are
        logged as they are)."""
        raise NotImplementedError

    def check_batch(self, inputs: dict, it: int) -> bool:
        """Check the batch's views; whether the unlabeled part trains this iteration."""
        if 'sup' not in inputs and not self.unlabeled_only:
            raise KeyError("training batch has no 'sup' (labeled) view")
        if self.uses_unlabeled and 'unsup_teacher' in inputs:
            missing = [v for v in self.student_views if v not in inputs]
            if missing:
                raise KeyError(f'{type(self).__name__} needs the unlabeled views {missing} '
                               'in the batch (check the unlabeled MultiBranch pipeline)')
        elif self.uses_unlabeled and not self._warned_no_unlabeled:
            print_log(f'{type(self).__name__}: the batch has no unlabeled views '
                      '(unlabeled_ratio=0?); training on labeled data only',
                      logger='current', level=logging.WARNING)
            self._warned_no_unlabeled = True
        for head in self.aux_heads:
            missing = [v for v in head.required_views if v not in inputs]
            if missing and any(not v.startswith('unsup') for v in missing):
                raise KeyError(f'{type(head).__name__} needs views {missing} in the batch')
        return (self.uses_unlabeled and 'unsup_teacher' in inputs
                and len(inputs['unsup_teacher']) > 0
                and it >= self.semi_train_cfg['burn_in_iters'])

    def forward_student(self, inputs: dict, data_samples: dict,
                        pseudo: PseudoLabels | None) -> StudentOutputs:
        """The student's outputs on ``sup`` and (with pseudo-labels) the algorithm's and
        the aux heads' views, in ``student_forward`` mode; the online forward's when the
        pseudo-labels came from it."""
        if pseudo is not None and pseudo.outputs is not None:
            return pseudo.outputs
        return self._forward_named(inputs, self._student_view_names(inputs, pseudo is not None))

    def _forward_named(self, inputs: dict, names: list[str]) -> StudentOutputs:
        wanted = {v for head in self.aux_heads for v in head.feature_views}
        outs, feats = forward_views(
            self.student, self.task, self.semi_train_cfg['student_forward'],
            [inputs[n] for n in names], [n in wanted for n in names],
            [n != 'unsup_teacher' for n in names])
        return StudentOutputs(dict(zip(names, outs)),
                              {n: f for n, f in zip(names, feats) if f is not None})

    def _student_view_names(self, inputs: dict, with_unsup: bool) -> list[str]:
        """``sup``, then (training on unlabeled data) the algorithm's views, then the
        views aux heads require (their unlabeled ones only with unlabeled training)."""
        names = ['sup']
        extra = list(self.student_views) if with_unsup else []
        for head in self.aux_heads:
            extra += [v for v in head.required_views
                      if v != 'sup' and (with_unsup or not v.startswith('unsup'))]
        for v in extra:
            if v not in names and v in inputs:
                names.append(v)
        return names

    def aux_losses(self, inputs: dict, data_samples: dict, out: StudentOutputs,
                   pseudo: PseudoLabels | None, it: int) -> dict[str, torch.Tensor]:
        """Every auxiliary head's ``aux_*`` losses."""
        from ssvision.models.heads import AuxContext
        ctx = AuxContext(student=self.student, teacher=self.teacher, task=self.task,
                         inputs=inputs, data_samples=data_samples, logits=out.logits,
                         probs=pseudo.probs if pseudo else None,
                         labels=pseudo.labels if pseudo else None,
                         weight=pseudo.weight if pseudo else None, iter=it,
                         features=out.features, boxes=pseudo.boxes if pseudo else None)
        losses: dict[str, torch.Tensor] = {}
        for head in self.aux_heads:
            for name, value in head.loss(ctx).items():
                if not name.startswith('aux_') or name in losses:
                    raise KeyError(f'{type(head).__name__} returned key {name!r}; aux '
                                   'heads return unique aux_* keys')
                losses[name] = value
        return losses
