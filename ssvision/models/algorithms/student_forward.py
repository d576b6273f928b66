"""The student's forward of its views, in one of the recipe's ``FORWARD_MODES``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..network import frozen_bn_stats


@dataclass
class StudentOutputs:
    """What the student computed this iteration: ``logits`` ``{view: output}`` (per
    position), ``features`` ``{view: encoder features}`` for the views aux heads read,
    and, for detectors (which compute their own losses), ``terms`` ``{forward: the
    detector's loss terms}``."""

    logits: dict = field(default_factory=dict)
    features: dict = field(default_factory=dict)
    terms: dict[str, dict[str, Any]] = field(default_factory=dict)


def _run(student: nn.Module, task, x: torch.Tensor, with_feat: bool):
    """Logits of ``x`` and, when asked, the encoder features they came from
    (``extract_feat`` then ``forward_head``: the same computation as ``forward``)."""
    if not with_feat:
        return task.forward(student, x), None
    feat = student.extract_feat(x)
    return student.forward_head(feat, x.shape[-2:]), feat


def _together(student: nn.Module, task, views: list, wants: list[bool]):
    out, feat = _run(student, task, torch.cat(views, dim=0), any(wants))
    sizes = [v.shape[0] for v in views]
    feats = feat.split(sizes, dim=0) if feat is not None else [None] * len(views)
    return list(out.split(sizes, dim=0)), [f if w else None for f, w in zip(feats, wants)]


def forward_views(student: nn.Module, task, mode: str, views: list[torch.Tensor],
                  with_feat: list[bool] | None = None, with_grad: list[bool] | None = None
                  ) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
    """Student outputs for each view (the first is ``sup``) and the encoder features of
    the views flagged in ``with_feat`` (None for the others). ``'concat'``: one forward;
    ``'separate'``: one per view (views flagged False in ``with_grad`` under ``no_grad``,
    as USB runs the weak view); ``'clean_stats'``: the first view alone, then the others
    together under :func:`frozen_bn_stats` (their BN running statistics stay as they
    are, so they describe clean images only)."""
    flags = list(with_feat or [False] * len(views))
    grads = list(with_grad or [True] * len(views))
    if mode == 'concat' and len(views) > 1:
        return _together(student, task, views, flags)
    if mode == 'clean_stats' and len(views) > 1:
        first, first_feat = _run(student, task, views[0], flags[0])
        with frozen_bn_stats(student):
            rest, rest_feats = _together(student, task, views[1:], flags[1:])
        return [first, *rest], [first_feat, *rest_feats]
    pairs = []
    for v, w, g in zip(views, flags, grads):
        with torch.set_grad_enabled(g and torch.is_grad_enabled()):
            pairs.append(_run(student, task, v, w))
    return [p[0] for p in pairs], [p[1] for p in pairs]
