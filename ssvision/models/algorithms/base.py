"""The one semi-supervised recipe every algorithm fills in."""

from __future__ import annotations

import copy
import logging
from typing import Any

import torch
from mmengine.logging import MessageHub, print_log
from mmengine.model import BaseModel
from torch import nn

from ssvision.registry import MODELS

from .teacher_bn import (
    TEACHER_BN_MODES,
    frozen_bn_stats,
    steps_until_running_stats,
    teacher_bn_context,
)

_PARTS = ('student.', 'teacher.')
STUDENT_FORWARDS = ('concat', 'separate', 'clean_stats')


class SemiBase(BaseModel):
    """Student, EMA teacher, task adapter and selector; subclasses define the unsup loss.

    Per training iteration (``loss``)::

        probs       = task.predict(teacher, unsup_teacher)       # no_grad, BN: teacher_bn
        labels, w   = selector(probs)                                      # (+ CutMix, dense)
        logits      = task.forward(student, cat([sup] + student views))   # one forward
        sup_loss    = task.sup_loss(logits[sup], gt_label)
        unsup_*     = self.unsup_loss(logits[student views], probs, labels, w) * weight(t)

    The teacher is updated after the optimizer step by
    :class:`~ssvision.engine.hooks.EMATeacherHook` and stays in eval mode (no dropout);
    only its BatchNorm layers follow ``teacher_bn`` during the pseudo-label forward.

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
    - ``cutmix_prob`` (float, 0.0): dense tasks only: probability that an unlabeled
      image gets a CutMix box from another unlabeled image of the batch (the student's
      views and the pseudo-labels are mixed alike, see :meth:`cutmix_unlabeled`;
      UniMatch and DSSN use 0.5). Health statistics are taken before mixing.
    - ``look_ahead`` (bool, False): *learning from the future* (FST). Each iteration
      first takes a virtual optimizer step on the batch, forms the future teacher
      ``T' = m T + (1 - m) S'`` from that virtual student ``S'`` (``m`` = the EMA hook's
      next momentum), restores the student and optimizer state, and then takes the
      real step with pseudo-labels from ``T'``. The teacher itself is still updated
      only by the EMA hook. Costs about one extra training step per iteration (see
      BENCHMARKS.md). The virtual step uses the raw optimizer (no AMP loss scaling,
      no gradient accumulation); the state it changes (student, aux heads, selector
      statistics, optimizer) is restored before the real step. Single-process only
      for now: under DDP the train loop refuses it.

    ``semi_test_cfg``: ``predict_on`` (tuple, ``('teacher', 'student')``): which
    networks validation scores.

    A checkpoint of a plain classifier (keys without ``student.`` / ``teacher.``)
    loads into both networks; one with only ``student.`` keys fills the teacher too.

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
        look_ahead=False, cutmix_prob=0.0, teacher_bn='auto')
    #: Whether the algorithm reads unlabeled views at all.
    uses_unlabeled: bool = True
    #: Batch views the student sees besides ``sup``.
    student_views: tuple[str, ...] = ('unsup_student',)

    def __init__(self, model: dict, task: dict | None = None, selector: dict | None = None,
                 semi_train_cfg: dict | None = None, semi_test_cfg: dict | None = None,
                 aux_heads: list[dict] | None = None,
                 data_preprocessor: dict | nn.Module | None = None,
                 init_cfg: dict | None = None) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(type='SemiDataPreprocessor')
        if isinstance(data_preprocessor, dict):
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.student = MODELS.build(model)
        self.teacher = MODELS.build(model)
        self.teacher.load_state_dict(self.student.state_dict())
        self.teacher.requires_grad_(False)
        self.teacher.eval()
        self.task = MODELS.build(task if task is not None else dict(type='ClassificationTask'))
        self.selector = MODELS.build(selector) if selector is not None else None
        self.aux_heads = nn.ModuleList([MODELS.build(h) for h in (aux_heads or [])])
        for head in self.aux_heads:
            if hasattr(head, 'setup'):
                head.setup(self.student)
        if self.uses_unlabeled and self.selector is None:
            raise ValueError(f'{type(self).__name__} needs a `selector` config')
        self.semi_train_cfg = self._merge_cfg(semi_train_cfg)
        if self.semi_train_cfg['student_forward'] not in STUDENT_FORWARDS:
            raise ValueError(f'semi_train_cfg.student_forward must be one of {STUDENT_FORWARDS}')
        if self.semi_train_cfg['teacher_bn'] not in TEACHER_BN_MODES:
            raise ValueError(f'semi_train_cfg.teacher_bn must be one of {TEACHER_BN_MODES}, '
                             f"got {self.semi_train_cfg['teacher_bn']!r}")
        # 'auto' switches to running statistics here (momenta are fixed at build time,
        # so this is computed once rather than on every step)
        self._running_stats_from = steps_until_running_stats(self.teacher)
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
        self.predict_on = tuple(predict_on)
        self._register_load_state_dict_pre_hook(self._expand_plain_state_dict)
        # Set by EMATeacherHook before each iteration: momentum of the coming update.
        self.next_ema_momentum: float | None = None
        self.next_ema_buffers: str = 'ema'
        # Teacher used for pseudo-labels when it is not ``self.teacher`` (look-ahead);
        # kept out of the module tree so it is neither saved nor moved twice.
        self._pl_teacher: list[nn.Module] = []
        self._use_future = False
        self._warned_no_unlabeled = False

    # ----------------------------------------------------------------- config
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

    @property
    def num_classes(self) -> int | None:
        return getattr(self.student, 'num_classes', None)

    def train(self, mode: bool = True) -> SemiBase:
        super().train(mode)
        self.teacher.eval()
        return self

    @staticmethod
    def _expand_plain_state_dict(state_dict, prefix, *args) -> None:
        keys = [k for k in state_dict if k.startswith(prefix)]
        has_student = any(k.startswith(prefix + 'student.') for k in keys)
        has_teacher = any(k.startswith(prefix + 'teacher.') for k in keys)
        if has_student and not has_teacher:
            for k in keys:
                if k.startswith(prefix + 'student.'):
                    rest = k[len(prefix + 'student.'):]
                    state_dict[prefix + 'teacher.' + rest] = state_dict[k]
        elif not has_student and not has_teacher:
            own = ('selector.', 'data_preprocessor.')
            for k in keys:
                rest = k[len(prefix):]
                if rest.startswith(own):
                    continue
                value = state_dict.pop(k)
                for part in _PARTS:
                    state_dict[prefix + part + rest] = value

    # ----------------------------------------------------------------- steps
    @property
    def pseudo_label_teacher(self) -> nn.Module:
        """The network whose predictions become pseudo-labels this iteration."""
        return self._pl_teacher[0] if self._use_future else self.teacher

    def train_step(self, data, optim_wrapper):
        if not self.semi_train_cfg['look_ahead'] or self.next_ema_momentum is None:
            # no look-ahead, or no teacher update this iteration (hook interval > 1):
            # the future teacher would be the current one
            return super().train_step(data, optim_wrapper)
        from ssvision.engine.hooks.ema_teacher_hook import ema_update
        data = self.data_preprocessor(data, True)
        # Everything the virtual step may change except the teacher: student, aux
        # heads, selector statistics (restored so they advance once per iteration).
        saved = {k: v.detach().clone() for k, v in self.state_dict().items()
                 if not k.startswith('teacher.')}
        optimizer = optim_wrapper.optimizer
        saved_optim = copy.deepcopy(optimizer.state_dict())
        # 1. virtual step with the current teacher, on the raw optimizer so the
        #    wrapper's iteration / accumulation counters are untouched
        with optim_wrapper.optim_context(self):
            losses = self._run_forward(data, mode='loss')
        parsed, _ = self.parse_losses(losses)
        optimizer.zero_grad()
        parsed.backward()
        optimizer.step()
        optimizer.zero_grad()
        # 2. the future teacher from the virtual student
        if not self._pl_teacher:
            self._pl_teacher.append(copy.deepcopy(self.teacher))
        future = self._pl_teacher[0]
        future.load_state_dict(self.teacher.state_dict())
        future.eval()
        ema_update(future, self.student, self.next_ema_momentum, self.next_ema_buffers)
        # 3. undo the virtual step, then the real step with the future teacher's labels.
        #    In place, not load_state_dict: its plain-checkpoint hook would read the
        #    teacher-less `saved` as a student checkpoint and copy it into the teacher.
        current = self.state_dict()
        for k, v in saved.items():
            current[k].copy_(v)
        optimizer.load_state_dict(saved_optim)
        self._use_future = True
        try:
            with optim_wrapper.optim_context(self):
                losses = self._run_forward(data, mode='loss')
        finally:
            self._use_future = False
        parsed, log_vars = self.parse_losses(losses)
        optim_wrapper.update_params(parsed)
        return log_vars

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

    def student_logits(self, views: list[torch.Tensor]) -> list[torch.Tensor]:
        """Student outputs for each view (the first is ``sup``): one forward with
        ``student_forward='concat'``, one per view with ``'separate'``, and with
        ``'clean_stats'`` the labeled view alone, then the other views together under
        :func:`frozen_bn_stats` (their BN running statistics are not updated)."""
        mode = self.semi_train_cfg['student_forward']
        if mode == 'concat' and len(views) > 1:
            out = self.task.forward(self.student, torch.cat(views, dim=0))
            return list(out.split([v.shape[0] for v in views], dim=0))
        if mode == 'clean_stats' and len(views) > 1:
            first = self.task.forward(self.student, views[0])
            with frozen_bn_stats(self.student):
                rest = self.task.forward(self.student, torch.cat(views[1:], dim=0))
            return [first, *rest.split([v.shape[0] for v in views[1:]], dim=0)]
        return [self.task.forward(self.student, v) for v in views]

    def bind_data(self, dataset) -> None:
        """Tell size-dependent parts about the training data (called by the train loop
        before any checkpoint is loaded): a selector with per-sample state
        (``set_num_unlabeled``) is sized to ``dataset.num_unlabeled``."""
        from mmengine.dist import get_world_size
        if self.semi_train_cfg['look_ahead'] and get_world_size() > 1:
            # mmengine's DDP wrapper runs its own train_step, which would skip the
            # virtual step silently.
            raise NotImplementedError('semi_train_cfg.look_ahead is single-process only '
                                      'for now (mmengine DDP bypasses model.train_step)')
        n = getattr(dataset, 'num_unlabeled', None)
        if n is not None and self.selector is not None and hasattr(self.selector,
                                                                    'set_num_unlabeled'):
            self.selector.set_num_unlabeled(int(n))

    def cutmix_unlabeled(self, inputs: dict, probs: torch.Tensor, labels: torch.Tensor,
                         weight: torch.Tensor) -> tuple[dict, torch.Tensor, torch.Tensor,
                                                        torch.Tensor]:
        """CutMix between the unlabeled images of the batch (dense tasks).

        One set of boxes and partners ``perm`` (no image is its own partner) is drawn
        per iteration and applied to every student view and, identically, to the
        teacher's probabilities, pseudo-labels and weights, so each mixed pixel is
        supervised by the pseudo-label of the image it came from. Boxes come from
        ``cutmix_box_masks`` with probability ``semi_train_cfg.cutmix_prob`` per image.
        Returns a shallow copy of ``inputs`` with the mixed views.
        """
        from ssvision.datasets.transforms.cutmix import (
            apply_cutmix,
            cutmix_box_masks,
            cutmix_partners,
        )
        if probs.dim() != 4:
            raise ValueError('cutmix_prob > 0 needs dense predictions (N, C, H, W); got '
                             f'{tuple(probs.shape)}')
        n, _, h, w = probs.shape
        masks = cutmix_box_masks(n, h, w, prob=self.semi_train_cfg['cutmix_prob'],
                                 device=probs.device)
        perm = cutmix_partners(n, device=probs.device)
        inputs = dict(inputs)
        for view in self.student_views:
            (inputs[view],) = apply_cutmix(inputs[view], masks, perm)
        probs, labels, weight = apply_cutmix(probs, masks, perm, labels, weight)
        return inputs, probs, labels, weight

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
        if 'sup' not in inputs:
            raise KeyError("training batch has no 'sup' (labeled) view")
        it = self.current_iter()
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
        use_unsup = (self.uses_unlabeled and 'unsup_teacher' in inputs
                     and it >= self.semi_train_cfg['burn_in_iters'])
        for head in self.aux_heads:
            missing = [v for v in head.required_views if v not in inputs]
            if missing and any(not v.startswith('unsup') for v in missing):
                raise KeyError(f'{type(head).__name__} needs views {missing} in the batch')
        probs = labels = weight = None
        health: dict[str, torch.Tensor] = {}
        if self.selector is not None:  # class-prior selectors count the labeled targets
            self.selector.observe(self.task.targets(data_samples['sup']))
        if use_unsup:
            # Teacher first (no_grad, eval): dense tasks may mix the student's views
            # with CutMix, and the pseudo-labels must be mixed the same way.
            teacher = self.pseudo_label_teacher
            bn_mode = self.semi_train_cfg['teacher_bn']
            if bn_mode == 'auto':
                bn_mode = 'batch' if it < self._running_stats_from else 'running'
            with teacher_bn_context(teacher, bn_mode):
                probs = self.task.predict(teacher, inputs['unsup_teacher'])
            meta = data_samples.get('unsup_teacher', {}) or {}
            labels, weight = self.selector(probs, sample_idx=meta.get('sample_idx'))
            valid = meta.get('valid_mask')
            if isinstance(valid, torch.Tensor) and valid.shape == weight.shape:
                weight = weight * valid.to(weight.dtype)  # padding is never a target
            health = self.health(probs, labels, weight, meta)
            if self.semi_train_cfg['cutmix_prob'] > 0:
                inputs, probs, labels, weight = self.cutmix_unlabeled(inputs, probs, labels,
                                                                      weight)
        names = self.views_for_student(inputs, use_unsup)
        logits = dict(zip(names, self.student_logits([inputs[n] for n in names])))
        losses: dict[str, torch.Tensor] = {
            'sup_loss': self.task.sup_loss(logits['sup'], data_samples['sup'])}
        if use_unsup:
            unsup = self.unsup_loss(logits, probs, labels, weight, inputs, data_samples)
            factor = self.unsup_weight_at(it)
            for name, value in unsup.items():
                if not name.startswith('unsup_'):
                    raise KeyError(f'unsup_loss must return unsup_* keys, got {name!r}')
                losses[name] = value * factor
            losses.update(health)
        if len(self.aux_heads):
            from ssvision.models.heads import AuxContext
            ctx = AuxContext(student=self.student, teacher=self.teacher, task=self.task,
                             inputs=inputs, data_samples=data_samples, logits=logits,
                             probs=probs, labels=labels, weight=weight, iter=it)
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
    def health(self, probs: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor,
               samples: dict) -> dict[str, torch.Tensor]:
        """Selection health: fraction kept, per-class kept counts and rates, pseudo-label
        accuracy.

        ``sel_n_<c>``: kept samples (pixels, for dense tasks) whose pseudo-label is ``c``;
        ``sel_frac_<c>``: their fraction of all samples / pixels the teacher labels ``c``
        (0 when it labels none). ``true_label`` / ``true_seg`` (known for built-in data)
        is used here only, never for training.
        """
        kept = weight > 0
        num_classes = probs.shape[1]
        out = {
            'sel_frac': kept.float().mean(),
            'sel_weight': weight.float().mean(),
            'teacher_conf': probs.max(dim=1).values.mean(),
        }
        counts = torch.bincount(labels[kept].flatten(), minlength=num_classes)
        totals = torch.bincount(labels.flatten(), minlength=num_classes)
        rates = counts.float() / totals.clamp_min(1).float()
        for c in range(num_classes):
            out[f'sel_n_{c}'] = counts[c].float()
            out[f'sel_frac_{c}'] = rates[c]
        if self.selector is not None:
            for key, value in self.selector.extra_log().items():
                out[key] = torch.as_tensor(value, dtype=torch.float32)
        true = None
        if isinstance(samples, dict):
            # per image (classification) or per pixel (dense tasks: true_seg)
            true = samples.get('true_seg', samples.get('true_label'))
        if isinstance(true, torch.Tensor) and true.shape == labels.shape[:1] \
                and labels.dim() > 1:
            true = true.view(-1, *([1] * (labels.dim() - 1))).expand_as(labels)
        if isinstance(true, torch.Tensor) and true.shape == labels.shape:
            known = (true >= 0) & (true < num_classes)  # drops -1 and ignore indices
            if known.any():
                out['pl_acc_all'] = (labels[known] == true[known]).float().mean()
                sel = known & kept
                if sel.any():
                    out['pl_acc'] = (labels[sel] == true[sel]).float().mean()
        return out

    @torch.no_grad()
    def predict(self, inputs: torch.Tensor, data_samples: dict | None = None) -> list[dict]:
        """Per-image outputs of the ``predict_on`` networks, packed by the task adapter
        for its metric (``task.pack_predictions``)."""
        if isinstance(inputs, dict):
            raise TypeError('predict expects a (N, C, H, W) tensor, got a dict of views')
        scores = {}
        for name in self.predict_on:
            net = self.teacher if name == 'teacher' else self.student
            was_training = net.training
            net.eval()
            scores[name] = self.task.infer(net, inputs).cpu()
            net.train(was_training)
        return self.task.pack_predictions(scores, data_samples or {})
