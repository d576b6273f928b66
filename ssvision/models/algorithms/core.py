"""The recipe's shared core: networks, task, selector, aux heads, knobs and validation."""

from __future__ import annotations

from typing import Any

import torch
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from torch import nn

from ssvision.registry import MODELS

from ..network import DetectorNetwork, StudentNetwork
from .checkpoint_keys import expand_plain_state_dict
from .look_ahead import LookAhead
from .mixing import UnlabeledCutMix
from .recipe_cfg import (
    FORWARD_MODES,
    RECIPE_KNOBS,
    check_train_cfg,
    merge_train_cfg,
    parse_test_cfg,
)
from .teacher_bn import (
    steps_until_running_stats,
    teacher_bn_context,
    teacher_steps_until_running_stats,
)


class SemiCore(BaseModel):
    """What every recipe shares (:class:`~.base.SemiBase` adds the iteration): the
    student and its EMA teacher built from one network config, the task adapter, the
    selector, the auxiliary heads and the knobs; the teacher's predictions, the unsup
    weight schedule and validation. The teacher is updated after the optimizer step by
    the EMA hook and stays in eval mode; its BatchNorm follows ``teacher_bn``. Knobs:
    ``RECIPE_KNOBS`` (one line each, ``recipe_cfg.py``) plus the algorithm's;
    ``semi_test_cfg.predict_on`` names the networks validation scores. A plain network
    checkpoint loads into both networks.
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

    def train(self, mode: bool = True) -> SemiCore:
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

    def teacher_predict(self, views, it: int):
        """The pseudo-label teacher's predictions (no_grad, eval mode, BatchNorm as
        ``teacher_bn`` says at iteration ``it``)."""
        bn_mode = self.semi_train_cfg['teacher_bn']
        if bn_mode == 'auto':
            bn_mode = 'batch' if it < self._running_stats_from else 'running'
        teacher = self.pseudo_label_teacher
        with teacher_bn_context(teacher, bn_mode):
            return self.task.predict(teacher, views)

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
