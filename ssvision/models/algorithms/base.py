"""The one semi-supervised recipe every algorithm and task fills in."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch
from mmengine.logging import MessageHub, print_log
from mmengine.model import BaseModel
from torch import nn

from ssvision.registry import MODELS

from ..network import DetectorNetwork, StudentNetwork
from .checkpoint_keys import expand_plain_state_dict
from .health import selection_health
from .look_ahead import LookAhead
from .mixing import UnlabeledCutMix
from .recipe_cfg import (
    FORWARD_MODES,
    RECIPE_KNOBS,
    check_train_cfg,
    merge_train_cfg,
    parse_test_cfg,
)
from .student_forward import StudentOutputs, forward_views
from .teacher_bn import (
    steps_until_running_stats,
    teacher_bn_context,
    teacher_steps_until_running_stats,
)


@dataclass
class PseudoLabels:
    """The teacher's targets for one batch of unlabeled images, in the student's views.

    ``probs`` ``(N, C, *)``, ``labels`` / ``weight`` / ``valid`` ``(N, *)`` (``valid``: 1
    on image pixels, None without padding); ``inputs``: the batch's views, mixed alike
    with the targets; ``health``: logged figures; ``boxes``: detection's pseudo-boxes;
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


class SemiBase(BaseModel):
    """Student, EMA teacher, task adapter, selector and auxiliary heads; one training
    iteration is :meth:`loss`, four named steps around a shared core:

    1. :meth:`loss_by_gt`: the supervised loss on the labeled view;
    2. :meth:`get_pseudo_labels`: the teacher's predictions on the weak views, selected;
    3. :meth:`project_pseudo_labels`: moved into the student's views (CutMix, boxes);
    4. :meth:`loss_by_pseudo_labels`: the algorithm's ``unsup_*`` losses, weighted by
       :meth:`unsup_weight_at`.

    The student's outputs on its views come from one :meth:`forward_student` that both
    loss steps read. The teacher is updated after the optimizer step by the EMA hook and
    stays in eval mode; its BatchNorm follows ``teacher_bn``. Knobs: ``RECIPE_KNOBS``
    (one line each, ``recipe_cfg.py``) plus the subclass's; ``semi_test_cfg.predict_on``
    names the networks validation scores. A plain network checkpoint loads into both.
    """

    default_train_cfg: dict[str, Any] = RECIPE_KNOBS
    #: Whether the algorithm reads unlabeled views / accepts batches without labeled ones.
    uses_unlabeled: bool = True
    unlabeled_only: bool = False
    #: Batch views the student trains on besides ``sup``, and how they go through it.
    student_views: tuple[str, ...] = ('unsup_student',)
    forward_modes: tuple[str, ...] = FORWARD_MODES
    default_task: dict = dict(type='ClassificationTask')
    default_preprocessor: dict = dict(type='SemiDataPreprocessor')

    def __init__(self, model: dict, task: dict | None = None, selector: dict | None = None,
                 semi_train_cfg: dict | None = None, semi_test_cfg: dict | None = None,
                 aux_heads: list[dict] | None = None,
                 data_preprocessor: dict | nn.Module | None = None,
                 init_cfg: dict | None = None) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(self.default_preprocessor)
        if isinstance(data_preprocessor, dict):
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.student = MODELS.build(model)
        self.teacher = self.build_teacher(model)
        self.teacher.requires_grad_(False)
        self.teacher.eval()
        self.task = MODELS.build(task if task is not None else dict(self.default_task))
        contract = StudentNetwork if self.task.has_logits else DetectorNetwork
        if not isinstance(self.student, contract):
            raise TypeError(f'{type(self.task).__name__} trains a {contract.__name__} '
                            f'(ssvision.models.network); {type(self.student).__name__} is not')
        self.selector = MODELS.build(selector) if selector is not None else None
        self.aux_heads = nn.ModuleList([MODELS.build(h) for h in (aux_heads or [])])
        for head in self.aux_heads:
            if head.box_level == self.task.has_logits:
                raise ValueError(
                    f'{type(head).__name__} reads '
                    + ('pseudo-boxes and instance features' if head.box_level else
                       'per-position student outputs')
                    + f', which {type(self.task).__name__} does not give; remove it from '
                    'aux_heads')
            head.setup(self.student)
        if self.uses_unlabeled and self.selector is None:
            raise ValueError(f'{type(self).__name__} needs a `selector` config')
        cfg = self.semi_train_cfg = merge_train_cfg(type(self).__name__,
                                                    self.default_train_cfg, semi_train_cfg)
        check_train_cfg(cfg, self.forward_modes, self.task)
        self.mixer = UnlabeledCutMix(cfg['cutmix_prob']) if cfg['cutmix_prob'] > 0 else None
        # 'auto' switches to running statistics once the teacher's buffers are
        # trustworthy; until the EMA hook states its schedule (set_ema_schedule), assume
        # it copies the student's (the earliest possible switch)
        self._running_stats_from = steps_until_running_stats(self.teacher)
        self.predict_on = parse_test_cfg(semi_test_cfg)
        self._register_load_state_dict_pre_hook(expand_plain_state_dict)
        # set by EMATeacherHook before each iteration: momentum of the coming update
        self.next_ema_momentum: float | None = None
        self.next_ema_buffers: str = 'ema'
        self.look_ahead = LookAhead(cfg['look_ahead_steps'], cfg['look_ahead_width'])
        self._warned_no_unlabeled = False

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

    # ------------------------------------------------------------ the shared core
    def build_teacher(self, model: dict) -> nn.Module:
        """The teacher: a second network from the config with the student's weights."""
        teacher = MODELS.build(model)
        teacher.load_state_dict(self.student.state_dict())
        return teacher

    def set_ema_schedule(self, momentum: float, ramp: bool = True, interval: int = 1,
                         buffers: str = 'ema', copy_steps: int = 0) -> None:
        """Called by the EMA hook before training: ``teacher_bn='auto'`` switches at the
        first iteration whose teacher buffers keep under 5 % of their initial values."""
        self._running_stats_from = teacher_steps_until_running_stats(
            self.teacher, momentum, ramp, interval, buffers, copy_steps)

    @property
    def num_classes(self) -> int | None:
        return self.student.num_classes

    def train(self, mode: bool = True) -> SemiBase:
        super().train(mode)
        self.teacher.eval()
        return self

    def bind_data(self, dataset) -> None:
        """Called by the train loop before any checkpoint loads: sizes the selector to
        ``dataset.num_unlabeled``; refuses look-ahead under DDP (mmengine's wrapper runs
        its own train_step, which would skip the virtual step silently)."""
        from mmengine.dist import get_world_size
        if self.semi_train_cfg['look_ahead'] and get_world_size() > 1:
            raise NotImplementedError('semi_train_cfg.look_ahead is single-process only '
                                      'for now (mmengine DDP bypasses model.train_step)')
        n = getattr(dataset, 'num_unlabeled', None)
        if n is not None and self.selector is not None:
            self.selector.set_num_unlabeled(int(n))

    @property
    def pseudo_label_teacher(self) -> nn.Module:
        """The network whose predictions become pseudo-labels this iteration."""
        return self.look_ahead.teacher(self.teacher)

    def train_step(self, data, optim_wrapper):
        if not self.semi_train_cfg['look_ahead'] or self.next_ema_momentum is None:
            # no look-ahead, or no teacher update this iteration (hook interval > 1)
            return super().train_step(data, optim_wrapper)
        return self.look_ahead.train_step(self, data, optim_wrapper)

    @staticmethod
    def current_iter() -> int:
        """0-based index of the running training iteration (from mmengine's MessageHub)."""
        return int(MessageHub.get_current_instance().get_info('iter', 0) or 0)

    def unsup_weight_at(self, it: int) -> float:
        """Unsup loss multiplier at iteration ``it`` (burn-in, then linear warm-up)."""
        cfg = self.semi_train_cfg
        t = it - cfg['burn_in_iters']
        if t < 0:
            return 0.0
        if cfg['unsup_warmup_iters'] > 0:
            return cfg['unsup_weight'] * min(1.0, (t + 1) / cfg['unsup_warmup_iters'])
        return cfg['unsup_weight']

    def forward(self, inputs, data_samples=None, mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            x = inputs['sup'] if isinstance(inputs, dict) else inputs
            return self.task.forward(self.student, x)
        raise ValueError(f'unknown mode {mode!r}')

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

    def teacher_predict(self, views, it: int):
        """The pseudo-label teacher's predictions (no_grad, eval mode, BatchNorm as
        ``teacher_bn`` says at iteration ``it``)."""
        bn_mode = self.semi_train_cfg['teacher_bn']
        if bn_mode == 'auto':
            bn_mode = 'batch' if it < self._running_stats_from else 'running'
        teacher = self.pseudo_label_teacher
        with teacher_bn_context(teacher, bn_mode):
            return self.task.predict(teacher, views)

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

    @torch.no_grad()
    def predict(self, inputs, data_samples: dict | None = None) -> list[dict]:
        """Per-image outputs of the ``predict_on`` networks, packed by the task adapter
        for its metric."""
        if isinstance(inputs, dict):
            raise TypeError('predict expects a batch of images, got a dict of views')
        outputs = {}
        for name in self.predict_on:
            net = self.teacher if name == 'teacher' else self.student
            was_training = net.training
            net.eval()
            out = self.task.infer(net, inputs)
            outputs[name] = out.cpu() if isinstance(out, torch.Tensor) else out
            net.train(was_training)
        return self.task.pack_predictions(outputs, data_samples or {}, inputs)
