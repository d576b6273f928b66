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

from .checkpoint_keys import expand_plain_state_dict
from .health import selection_health
from .look_ahead import LookAhead
from .mixing import UnlabeledCutMix
from .teacher_bn import (
    TEACHER_BN_MODES,
    frozen_bn_stats,
    steps_until_running_stats,
    teacher_bn_context,
    teacher_steps_until_running_stats,
)

STUDENT_FORWARDS = ('concat', 'separate', 'clean_stats')
#: ``semi_train_cfg.pseudo_label_source`` values: the EMA teacher's own forward, or the
#: student's forward of the same iteration (USB's FixMatch family).
PSEUDO_LABEL_SOURCES = ('teacher', 'online')


@dataclass
class PseudoLabels:
    """The teacher's targets for one batch of unlabeled images.

    ``probs`` / ``labels`` / ``weight``: teacher probabilities ``(N, C, *)``, selected
    pseudo-labels and weights ``(N, *)`` (after any batch mixing); ``valid``: ``(N, *)``
    1 on image pixels, 0 on padding (dense tasks with a ``valid_mask``; mixed alike),
    else None; ``inputs``: the views, mixed alike; ``health``: figures logged with the
    losses (taken before mixing); ``boxes``: detection's pseudo-boxes
    (:class:`~.pseudo_boxes.PseudoBoxes`) instead; ``outputs`` / ``features``: with
    ``pseudo_label_source='online'``, the student's outputs (``{view: logits}``) and
    requested encoder features of the forward the pseudo-labels came from (the recipe
    reuses them: one forward per iteration); ``targets``: per student view
    ``{view: (labels, weight, valid)}`` where each view has targets of its own (DSSN's
    independent CutMix boxes).
    """

    inputs: dict
    probs: Any = None
    labels: Any = None
    weight: Any = None
    valid: Any = None
    boxes: Any = None
    health: dict = field(default_factory=dict)
    outputs: dict | None = None
    features: dict | None = None
    targets: dict | None = None


class SemiBase(BaseModel):
    """Student, EMA teacher, task adapter and selector; subclasses define the unsup loss.

    The whole recipe, per training iteration (:meth:`loss`)::

        selector.observe(task.targets(sup))                     # class-prior selectors
        pseudo = self.pseudo_labels(...)    # teacher (no_grad, BN: teacher_bn), select,
                                            # health, then CutMix (dense tasks)
        losses = self.student_losses(...)   # sup_loss + unsup_* x weight(t)
        losses += aux heads (aux_*)

    with, for classification and segmentation, :meth:`student_losses`::

        logits   = task.forward(student, cat([sup] + student views))   # one forward
        sup_loss = task.sup_loss(logits[sup], gt)
        unsup_*  = self.unsup_loss(logits, probs, labels, weight)     # the algorithm

    (detection, :class:`SemiDetector`, fills in both steps with pseudo-boxes).

    **Where pseudo-labels come from** (``pseudo_label_source``). ``'teacher'``: the EMA
    teacher's forward of the weak views, as above. ``'online'``: the weak views join the
    student's one forward (``cat([sup, unsup_teacher, strong views])`` in training
    mode, so BatchNorm normalises them with the shared batch statistics) and the
    pseudo-labels are the selector's choice on the student's detached weak-view
    probabilities: USB's FixMatch-family ``train_step``. The EMA teacher is still
    updated and evaluated (USB's EMA model), it only makes no pseudo-labels.

    The teacher is updated after the optimizer step by
    :class:`~ssvision.engine.hooks.EMATeacherHook` and stays in eval mode (no dropout);
    only its BatchNorm layers follow ``teacher_bn`` during the pseudo-label forward.
    Look-ahead (:class:`~.look_ahead.LookAhead`), batch mixing
    (:class:`~.mixing.UnlabeledCutMix`), health figures (:mod:`.health`) and checkpoint
    key mapping (:mod:`.checkpoint_keys`) live in their own modules.

    **One student forward.** The labeled view and the strong view(s) are concatenated
    and go through the student once (``student_forward='concat'``, the default), so
    BatchNorm normalises them with shared batch statistics and its running statistics
    see labeled and unlabeled data, as in FixMatch's reference training. With
    ``'separate'`` each view gets its own forward (and its own BN statistics), which
    can help when labeled and unlabeled distributions differ a lot; it costs a little
    more. With ``'clean_stats'`` the labeled view goes through alone and the strong
    views together in a second forward that normalises with their batch statistics but
    leaves the BN running statistics as they are, so the running statistics (used at
    validation, and averaged into the teacher) describe clean images only. The
    teacher's weak views never pass through the student.

    **Knobs** (``semi_train_cfg``; unknown keys are an error). Common to all:

    - ``unsup_weight`` (float, 1.0): multiplier of every ``unsup_*`` loss.
    - ``burn_in_iters`` (int, 0): supervised-only iterations before the unsup loss
      starts (the teacher is still updated).
    - ``unsup_warmup_iters`` (int, 0): after burn-in, the weight ramps linearly from
      0 to ``unsup_weight`` over this many iterations.
    - ``student_forward`` (str, ``'concat'``): see above.
    - ``teacher_bn`` (str, ``'auto'``): the teacher's BatchNorm statistics for
      pseudo-labels, see :mod:`.teacher_bn`.
    - ``pseudo_label_source`` (str, ``'teacher'``): ``'teacher'`` or ``'online'``, see
      above. ``'online'`` needs per-position outputs and no look-ahead or CutMix (the
      mixed views would need their pseudo-labels before the forward that makes them).
    - ``cutmix_prob`` (float, 0.0): dense tasks only: probability that an unlabeled
      image gets a CutMix box from another unlabeled image of the batch (the student's
      views and the pseudo-labels are mixed alike, :class:`~.mixing.UnlabeledCutMix`;
      UniMatch and DSSN use 0.5). Health statistics are taken before mixing.
    - ``look_ahead`` (bool, False): *learning from the future* (FST), see
      :class:`~.look_ahead.LookAhead`. Costs about one extra training step per
      iteration (see BENCHMARKS.md). Single-process only for now: under DDP the train
      loop refuses it.
    - ``look_ahead_steps`` (int, 1): with ``look_ahead``, virtual steps in a row
      (FST-D, ``k``): ``1 + k`` training steps per iteration.
    - ``look_ahead_width`` (int, 1): with ``look_ahead``, virtual students averaged
      (FST-W, ``w``), each on a ``1 / w`` slice of the unlabeled views: about
      ``1 + (w + mu) / (1 + mu)`` training steps per iteration.

    ``semi_test_cfg``: ``predict_on`` (tuple, ``('teacher', 'student')``): which
    networks validation scores.

    A checkpoint of a plain network (keys without ``student.`` / ``teacher.``) loads
    into both networks; one with only ``student.`` keys fills the teacher too.

    Args:
        model (dict): config of the network (student and teacher are built from it).
        task (dict): task adapter config. Default ``ClassificationTask``.
        selector (dict | None): pseudo-label selector config.
        semi_train_cfg (dict | None): knobs, see above and the subclass.
        semi_test_cfg (dict | None): see above.
        aux_heads (list[dict] | None): auxiliary heads (``models/heads``); each adds
            its ``aux_*`` losses. Views a head requires (e.g. ``unsup_student2``) go
            through the student in the same forward as the others.
        data_preprocessor (dict | nn.Module | None): default ``SemiDataPreprocessor``.
        init_cfg (dict | None): mmengine init config.
    """

    #: Knobs and defaults; subclasses add theirs with ``{**SemiBase.default_train_cfg, ...}``.
    default_train_cfg: dict[str, Any] = dict(
        unsup_weight=1.0, burn_in_iters=0, unsup_warmup_iters=0, student_forward='concat',
        look_ahead=False, look_ahead_steps=1, look_ahead_width=1, cutmix_prob=0.0,
        teacher_bn='auto', pseudo_label_source='teacher')
    #: Whether the algorithm reads unlabeled views at all.
    uses_unlabeled: bool = True
    #: Whether batches without a labeled view are accepted (source-free adaptation).
    unlabeled_only: bool = False
    #: Batch views the student sees besides ``sup``.
    student_views: tuple[str, ...] = ('unsup_student',)
    #: ``student_forward`` values the algorithm supports.
    student_forwards: tuple[str, ...] = STUDENT_FORWARDS
    #: Default task adapter and data preprocessor.
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
        for head in self.aux_heads:
            head.setup(self.student)
        if self.uses_unlabeled and self.selector is None:
            raise ValueError(f'{type(self).__name__} needs a `selector` config')
        cfg = self.semi_train_cfg = self._merge_cfg(semi_train_cfg)
        if cfg['student_forward'] not in self.student_forwards:
            raise ValueError(f'semi_train_cfg.student_forward must be one of '
                             f'{self.student_forwards}, got {cfg["student_forward"]!r}')
        if cfg['teacher_bn'] not in TEACHER_BN_MODES:
            raise ValueError(f'semi_train_cfg.teacher_bn must be one of {TEACHER_BN_MODES}, '
                             f"got {cfg['teacher_bn']!r}")
        if cfg['cutmix_prob'] > 0 and not self.task.dense:
            raise ValueError(f'cutmix_prob > 0 needs a dense task, not '
                             f'{type(self.task).__name__}')
        self.mixer = UnlabeledCutMix(cfg['cutmix_prob']) if cfg['cutmix_prob'] > 0 else None
        self._check_source(cfg)
        # 'auto' switches to running statistics once the teacher's own buffers are
        # trustworthy; until the EMA hook states its schedule, assume it copies the
        # student's buffers (the student's rule, the earliest possible switch)
        self._running_stats_from = steps_until_running_stats(self.teacher)
        self.predict_on = self._parse_test_cfg(semi_test_cfg)
        self._register_load_state_dict_pre_hook(expand_plain_state_dict)
        # Set by EMATeacherHook before each iteration: momentum of the coming update.
        self.next_ema_momentum: float | None = None
        self.next_ema_buffers: str = 'ema'
        self.look_ahead = LookAhead(cfg['look_ahead_steps'], cfg['look_ahead_width'])
        self._warned_no_unlabeled = False

    # ----------------------------------------------------------------- config
    def build_teacher(self, model: dict) -> nn.Module:
        """The teacher: a second network from the config with the student's weights."""
        teacher = MODELS.build(model)
        teacher.load_state_dict(self.student.state_dict())
        return teacher

    def set_ema_schedule(self, momentum: float, ramp: bool = True, interval: int = 1,
                         buffers: str = 'ema', copy_steps: int = 0) -> None:
        """The EMA hook's schedule (called by :class:`EMATeacherHook` before training):
        ``teacher_bn='auto'`` switches to running statistics at the first iteration
        whose *teacher* buffers keep less than 5 % of their initial values
        (:func:`~.teacher_bn.teacher_steps_until_running_stats`); they average the
        student's and lag behind them."""
        self._running_stats_from = teacher_steps_until_running_stats(
            self.teacher, momentum, ramp, interval, buffers, copy_steps)

    def _merge_cfg(self, cfg: dict | None) -> dict:
        merged = dict(self.default_train_cfg)
        cfg = dict(cfg or {})
        unknown = sorted(set(cfg) - set(merged))
        if unknown:
            raise ValueError(
                f'unknown key(s) {unknown} in semi_train_cfg of {type(self).__name__}; '
                f'allowed keys: {sorted(merged)}')
        merged.update(cfg)
        return merged

    def _check_source(self, cfg: dict) -> None:
        source = cfg['pseudo_label_source']
        if source not in PSEUDO_LABEL_SOURCES:
            raise ValueError(f'semi_train_cfg.pseudo_label_source must be one of '
                             f'{PSEUDO_LABEL_SOURCES}, got {source!r}')
        if source != 'online':
            return
        clash = [name for name, on in (
            ('look_ahead', cfg['look_ahead']), ('cutmix_prob > 0', cfg['cutmix_prob'] > 0),
            (f'a task without per-position outputs ({type(self.task).__name__})',
             not self.task.has_logits),
            ("student_forward='clean_stats'", cfg['student_forward'] == 'clean_stats'))
            if on]
        if clash:
            raise ValueError("pseudo_label_source='online' takes the pseudo-labels from the "
                             "student's own forward; it does not combine with "
                             + ', '.join(clash))

    @staticmethod
    def _parse_test_cfg(semi_test_cfg: dict | None) -> tuple[str, ...]:
        test_cfg = dict(predict_on=('teacher', 'student'))
        test_cfg.update(semi_test_cfg or {})
        unknown = set(test_cfg) - {'predict_on'}
        if unknown:
            raise ValueError(f'unknown semi_test_cfg keys {sorted(unknown)}; allowed: predict_on')
        predict_on = test_cfg['predict_on']
        if isinstance(predict_on, str):
            predict_on = (predict_on,)
        if not predict_on or set(predict_on) - {'teacher', 'student'}:
            raise ValueError(f"predict_on must name 'teacher' and/or 'student', got {predict_on}")
        return tuple(predict_on)

    @property
    def num_classes(self) -> int | None:
        return getattr(self.student, 'num_classes', None)

    def train(self, mode: bool = True) -> SemiBase:
        super().train(mode)
        self.teacher.eval()
        return self

    def bind_data(self, dataset) -> None:
        """Tell size-dependent parts about the training data (called by the train loop
        before any checkpoint is loaded): the selector is sized to
        ``dataset.num_unlabeled`` (:meth:`BaseSelector.set_num_unlabeled`)."""
        from mmengine.dist import get_world_size
        if self.semi_train_cfg['look_ahead'] and get_world_size() > 1:
            # mmengine's DDP wrapper runs its own train_step, which would skip the
            # virtual step silently.
            raise NotImplementedError('semi_train_cfg.look_ahead is single-process only '
                                      'for now (mmengine DDP bypasses model.train_step)')
        n = getattr(dataset, 'num_unlabeled', None)
        if n is not None and self.selector is not None:
            self.selector.set_num_unlabeled(int(n))

    # ----------------------------------------------------------------- steps
    @property
    def pseudo_label_teacher(self) -> nn.Module:
        """The network whose predictions become pseudo-labels this iteration."""
        return self.look_ahead.teacher(self.teacher)

    def train_step(self, data, optim_wrapper):
        if not self.semi_train_cfg['look_ahead'] or self.next_ema_momentum is None:
            # no look-ahead, or no teacher update this iteration (hook interval > 1):
            # the future teacher would be the current one
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

    def loss(self, inputs: dict, data_samples: dict) -> dict[str, torch.Tensor]:
        """One training iteration's losses: the whole recipe (see the class docstring)."""
        it = self.current_iter()
        use_unsup = self._check_batch(inputs, it)
        if self.selector is not None and 'sup' in inputs:
            # class-prior selectors count the labeled targets
            self.selector.observe(self.task.targets(data_samples['sup']))
        pseudo = self.pseudo_labels(inputs, data_samples, it) if use_unsup else None
        if pseudo is not None:
            inputs = pseudo.inputs  # mixed alike with the targets (CutMix)
        losses, logits, features = self.student_losses(inputs, data_samples, pseudo,
                                                       self.unsup_weight_at(it))
        if pseudo is not None:
            losses.update(pseudo.health)
        if len(self.aux_heads):
            losses.update(self.aux_losses(inputs, data_samples, logits, features, pseudo,
                                          it))
        return losses

    def _check_batch(self, inputs: dict, it: int) -> bool:
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
        teacher = self.pseudo_label_teacher
        bn_mode = self.semi_train_cfg['teacher_bn']
        if bn_mode == 'auto':
            bn_mode = 'batch' if it < self._running_stats_from else 'running'
        with teacher_bn_context(teacher, bn_mode):
            return self.task.predict(teacher, views)

    def pseudo_labels(self, inputs: dict, data_samples: dict, it: int) -> PseudoLabels:
        """Teacher pass (or, with ``pseudo_label_source='online'``, the student's forward
        of every view), selection and health; then the batch mixer (dense tasks), which
        mixes the student's views and the targets alike."""
        outputs = features = None
        if self.semi_train_cfg['pseudo_label_source'] == 'online':
            names = self.views_for_student(inputs, True)
            names.insert(1, 'unsup_teacher')  # USB's order: labeled, weak, strong
            outputs, features = self._student_forward(inputs, names)
            probs = outputs['unsup_teacher'].detach().float().softmax(dim=1)
        else:
            probs = self.teacher_predict(inputs['unsup_teacher'], it)
        meta = data_samples.get('unsup_teacher', {}) or {}
        labels, weight = self.selector(probs, sample_idx=meta.get('sample_idx'))
        valid = meta.get('valid_mask')
        if isinstance(valid, torch.Tensor) and valid.shape == weight.shape:
            valid = valid.to(weight.dtype)
            weight = weight * valid  # padding is never a target
        else:
            valid = None
        health = selection_health(probs, labels, weight, meta, self.selector.extra_log())
        if self.mixer is not None:
            # every unlabeled view the student's losses read (aux heads' views too) is
            # mixed with the same boxes as the targets
            views = [v for v in self.views_for_student(inputs, True)
                     if v.startswith('unsup') and v != 'unsup_teacher']
            inputs, probs, labels, weight, *rest = self.mixer(
                inputs, views, probs, labels, weight, *([] if valid is None else [valid]))
            valid = rest[0] if rest else None
        return PseudoLabels(inputs, probs, labels, weight, valid=valid, health=health,
                            outputs=outputs, features=features)

    def cutmix_unlabeled(self, inputs: dict, probs: torch.Tensor, labels: torch.Tensor,
                         weight: torch.Tensor):
        """CutMix the student's views and the targets with ``semi_train_cfg.cutmix_prob``
        (:class:`~.mixing.UnlabeledCutMix`; for figures and tests)."""
        mixer = self.mixer or UnlabeledCutMix(self.semi_train_cfg['cutmix_prob'])
        return mixer(inputs, self.student_views, probs, labels, weight)

    def student_losses(self, inputs: dict, data_samples: dict, pseudo: PseudoLabels | None,
                       factor: float) -> tuple[dict[str, torch.Tensor], dict, dict]:
        """``sup_loss`` and the weighted ``unsup_*`` losses from the student's outputs on
        its views; returns them, those outputs (``{view: logits}``) and the encoder
        features of the views aux heads asked for (``{view: features}``)."""
        if pseudo is not None and pseudo.outputs is not None:
            logits, features = pseudo.outputs, pseudo.features  # the online forward
        else:
            logits, features = self._student_forward(
                inputs, self.views_for_student(inputs, pseudo is not None))
        losses = self.sup_losses(logits['sup'], data_samples['sup'])
        if pseudo is not None:
            unsup = self.unsup_loss(logits, pseudo.probs, pseudo.labels, pseudo.weight,
                                    inputs, data_samples)
            for name, value in unsup.items():
                if not name.startswith('unsup_'):
                    raise KeyError(f'unsup_loss must return unsup_* keys, got {name!r}')
                losses[name] = value * factor
        return losses, logits, features

    def _student_forward(self, inputs: dict, names: list[str]) -> tuple[dict, dict]:
        """``({view: student output}, {view: encoder features})`` for the views
        ``names`` (features only for views an aux head reads), see
        :meth:`student_outputs`."""
        wanted = {v for head in self.aux_heads for v in head.feature_views}
        grads = [n != 'unsup_teacher' for n in names]
        outs, feats = self.student_outputs([inputs[n] for n in names],
                                           [n in wanted for n in names], grads)
        return (dict(zip(names, outs)),
                {n: f for n, f in zip(names, feats) if f is not None})

    def sup_losses(self, logits, data_samples: dict) -> dict[str, torch.Tensor]:
        """``{'sup_loss': task.sup_loss(logits, data_samples)}`` on the labeled view;
        algorithms that reshape the supervised loss (UDA's training-signal annealing)
        override it and may add logged figures."""
        return {'sup_loss': self.task.sup_loss(logits, data_samples)}

    def _forward(self, x: torch.Tensor, with_feat: bool):
        """Student logits of ``x`` and, when asked, the encoder features they came from
        (``extract_feat`` then ``forward_head``: the same computation as the student's
        ``forward``)."""
        if not with_feat:
            return self.task.forward(self.student, x), None
        from ssvision.models.heads import head_forward
        feat = self.student.extract_feat(x)
        return head_forward(self.student, feat, x.shape[-2:]), feat

    def student_logits(self, views: list[torch.Tensor]) -> list[torch.Tensor]:
        """Student outputs for each view (see :meth:`student_outputs`)."""
        return self.student_outputs(views)[0]

    def student_outputs(self, views: list[torch.Tensor], with_feat: list[bool] | None = None,
                        with_grad: list[bool] | None = None
                        ) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
        """Student outputs for each view (the first is ``sup``), and the encoder features
        of the views flagged in ``with_feat`` (None for the others): one forward with
        ``student_forward='concat'``, one per view with ``'separate'`` (views flagged
        False in ``with_grad`` then run under ``no_grad``, as USB runs the weak view),
        and with ``'clean_stats'`` the labeled view alone, then the other views together
        under :func:`frozen_bn_stats` (their BN running statistics are not updated)."""
        flags = list(with_feat or [False] * len(views))
        grads = list(with_grad or [True] * len(views))
        mode = self.semi_train_cfg['student_forward']

        def together(group: list[torch.Tensor], wants: list[bool]):
            out, feat = self._forward(torch.cat(group, dim=0), any(wants))
            sizes = [v.shape[0] for v in group]
            feats = feat.split(sizes, dim=0) if feat is not None else [None] * len(group)
            return (list(out.split(sizes, dim=0)),
                    [f if w else None for f, w in zip(feats, wants)])

        if mode == 'concat' and len(views) > 1:
            return together(views, flags)
        if mode == 'clean_stats' and len(views) > 1:
            first, first_feat = self._forward(views[0], flags[0])
            with frozen_bn_stats(self.student):
                rest, rest_feats = together(views[1:], flags[1:])
            return [first, *rest], [first_feat, *rest_feats]
        pairs = []
        for v, w, g in zip(views, flags, grads):
            with torch.set_grad_enabled(g and torch.is_grad_enabled()):
                pairs.append(self._forward(v, w))
        return [p[0] for p in pairs], [p[1] for p in pairs]

    def views_for_student(self, inputs: dict, use_unsup: bool) -> list[str]:
        """Names of the views the student runs on: ``sup``, then (with unlabeled data)
        the algorithm's views and the views aux heads require."""
        names = ['sup']
        extra = list(self.student_views) if use_unsup else []
        for head in self.aux_heads:
            # unlabeled views of heads join only when unlabeled training is on
            # (not during burn-in, not for SupervisedOnly)
            extra += [v for v in head.required_views
                      if v != 'sup' and (use_unsup or not v.startswith('unsup'))]
        for v in extra:
            if v not in names and v in inputs:
                names.append(v)
        return names

    def aux_losses(self, inputs: dict, data_samples: dict, logits: dict, features: dict,
                   pseudo: PseudoLabels | None, it: int) -> dict[str, torch.Tensor]:
        """Every auxiliary head's ``aux_*`` losses."""
        from ssvision.models.heads import AuxContext
        ctx = AuxContext(student=self.student, teacher=self.teacher, task=self.task,
                         inputs=inputs, data_samples=data_samples, logits=logits,
                         probs=pseudo.probs if pseudo else None,
                         labels=pseudo.labels if pseudo else None,
                         weight=pseudo.weight if pseudo else None, iter=it,
                         features=features, boxes=pseudo.boxes if pseudo else None)
        losses: dict[str, torch.Tensor] = {}
        for head in self.aux_heads:
            for name, value in head.loss(ctx).items():
                if not name.startswith('aux_') or name in losses:
                    raise KeyError(f'{type(head).__name__} returned key {name!r}; aux '
                                   'heads return unique aux_* keys')
                losses[name] = value
        return losses

    def unsup_loss(self, student_out: dict[str, torch.Tensor], probs: torch.Tensor,
                   labels: torch.Tensor, weight: torch.Tensor, inputs: dict,
                   data_samples: dict) -> dict[str, torch.Tensor]:
        """The algorithm's unsupervised losses (keys ``unsup_*``), before weighting.

        ``student_out`` maps view names (``sup``, ``unsup_student``, ...) to the
        student's outputs on them.
        """
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, inputs, data_samples: dict | None = None) -> list[dict]:
        """Per-image outputs of the ``predict_on`` networks, packed by the task adapter
        for its metric (``task.pack_predictions``)."""
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
