"""What auxiliary heads receive and must provide."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass
class AuxContext:
    """Everything an auxiliary head may use in one training iteration.

    Attributes:
        student: the student network (trainable; heads may run extra forwards).
        teacher: the EMA teacher (eval mode; use under ``torch.no_grad``).
        task: the task adapter (e.g. ``ClassificationTask``).
        inputs: normalised views, ``{name: (N, C, H, W)}`` (``sup``, ``unsup_teacher``,
            ``unsup_student``, ``unsup_student2`` when present).
        data_samples: the batch's per-view metadata (``gt_label`` ...).
        logits: student outputs already computed this iteration, ``{view: (N, K, *)}``.
        probs: teacher probabilities on ``unsup_teacher`` ``(M, K, *)`` or None
            (supervised-only or burn-in).
        labels: selected pseudo-labels ``(M, *)`` or None.
        weight: selection weights ``(M, *)`` in [0, 1] or None.
        iter: 0-based training iteration.
        features: encoder features (``student.extract_feat``) of the views some head
            asked for in ``feature_views``, taken from the same student forward as
            ``logits``, ``{view: (N, D) or (N, C, h, w)}``.
        boxes: detection's pseudo-boxes this iteration
            (:class:`~ssvision.models.algorithms.pseudo_boxes.PseudoBoxes`: ``cls`` in
            the student's views, ``weak`` the same boxes in the teacher's, ``dets``
            every teacher detection) or None; read by box-level heads.
    """

    student: nn.Module
    teacher: nn.Module
    task: Any
    inputs: dict[str, torch.Tensor]
    data_samples: dict
    logits: dict[str, torch.Tensor]
    probs: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    weight: torch.Tensor | None = None
    iter: int = 0
    features: dict[str, torch.Tensor] = field(default_factory=dict)
    boxes: Any = None


class BaseAuxHead(nn.Module):
    """An auxiliary loss attached to any algorithm through ``aux_heads=[...]``.

    Subclasses implement :meth:`loss` returning a flat dict whose keys start with
    ``aux_`` and contain ``loss`` (they are summed into the total), already multiplied
    by ``loss_weight``; other ``aux_*`` keys are logged only. ``required_views`` lists
    batch views the head needs (the algorithm checks they are in the batch and passes
    the student's outputs on them in ``ctx.logits`` when it computes them).

    Args:
        loss_weight (float): multiplier of the head's losses. Default 1.0.
    """

    required_views: tuple[str, ...] = ()
    #: True for heads that work on pseudo-boxes and instance features (detection)
    #: rather than on per-position outputs; only those attach to a detector.
    box_level: bool = False
    #: Views whose encoder features the head reads from the student's main forward
    #: (``ctx.features``), so it needs no forward of its own (UniMatch's ``need_fp``).
    feature_views: tuple[str, ...] = ()

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        if loss_weight < 0:
            raise ValueError(f'loss_weight must be >= 0, got {loss_weight}')
        self.loss_weight = float(loss_weight)

    def setup(self, student: nn.Module) -> None:
        """Called once by the algorithm after the student is built: check what the head
        needs of it (:func:`~ssvision.models.network.require`) and size layers from it
        (feature width, stage channels), so a missing member fails at build time and no
        lazy parameters reach mmengine's ``init_weights``, DDP or the optimizer. The
        default does nothing.
        """

    def loss(self, ctx: AuxContext) -> dict[str, torch.Tensor]:
        raise NotImplementedError

