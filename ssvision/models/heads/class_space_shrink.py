"""ShrinkMatch's loss on a shrunk class space for samples the selector leaves out."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssvision.registry import MODELS

from ..network import require
from ..selectors._dist import sum_across_ranks
from .base import AuxContext, BaseAuxHead

#: Fewest classes for which a class space can shrink: the top class, at least one
#: removed confusing class and at least one class left to contrast with.
MIN_SHRINK_CLASSES = 3
#: ShrinkMatch's auxiliary MLP narrows the feature width by this factor.
MLP_REDUCTION = 4
MLP_NEGATIVE_SLOPE = 0.1


def shrink_class_space(probs: torch.Tensor, threshold: float
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The smallest shrink of each sample's class space that makes its top class
    confident.

    With ``p_(0) >= p_(1) >= ... >= p_(C-1)`` a sample's sorted probabilities, removing
    the confusing classes ranked ``1 .. c-1`` leaves the space ``{(0)} u {(c) .. (C-1)}``
    in which the top class has confidence ``p_(0) / (p_(0) + sum_{j >= c} p_(j))``.
    ``c`` is the smallest value in ``[2, C-1]`` for which that confidence is at least
    ``threshold`` (at least one class is removed and one kept besides the top class);
    a sample for which no such ``c`` exists cannot be shrunk.

    Args:
        probs: ``(N, C)`` probabilities.
        threshold: confidence the top class must reach in the shrunk space.

    Returns:
        ``keep (N, C)`` bool (the shrunk space, in the original class order; the full
        space where ``ok`` is False), ``ok (N,)`` bool, ``removed (N,)`` long (number of
        classes removed; 0 where ``ok`` is False).
    """
    if probs.dim() != 2:
        raise ValueError(f'probs must be (N, C), got shape {tuple(probs.shape)}')
    n, c = probs.shape
    keep = torch.ones_like(probs, dtype=torch.bool)
    removed = torch.zeros(n, dtype=torch.long, device=probs.device)
    if c < MIN_SHRINK_CLASSES or n == 0:
        return keep, torch.zeros(n, dtype=torch.bool, device=probs.device), removed
    sorted_p, order = probs.float().sort(dim=1, descending=True)
    tail = sorted_p.flip(1).cumsum(1).flip(1)            # tail[:, j] = sum_{k >= j} p_(k)
    top = sorted_p[:, :1]
    sub_conf = top / (top + tail[:, 2:])                 # c = 2 .. C-1, non-decreasing
    reach = sub_conf >= threshold
    ok = reach.any(dim=1)
    first = reach.float().argmax(dim=1) + 2              # smallest c that reaches it
    rank = torch.arange(c, device=probs.device).expand(n, c)
    keep_sorted = (rank == 0) | (rank >= first[:, None]) | ~ok[:, None]
    keep = torch.zeros_like(keep).scatter(1, order, keep_sorted)
    removed = torch.where(ok, first - 1, removed)
    return keep, ok, removed


@MODELS.register_module()
class ClassSpaceShrinkHead(BaseAuxHead):
    """Train the samples the selector leaves out on a shrunk class space (ShrinkMatch).

    ShrinkMatch: Shrinking Class Space for Enhanced Certainty in Semi-Supervised
    Learning (Yang et al., ICCV 2023). For every unlabeled sample with teacher
    probabilities ``p_i`` and selector weight ``w_i``, :func:`shrink_class_space`
    finds the smallest set of confusing classes whose removal makes the top class
    ``y_i = argmax p_i`` confident (``>= threshold``). The student's strong-view
    outputs ``s_i`` restricted to that space learn ``y_i``::

        aux_shrink_loss = loss_weight * r * sum_i (1 - w_i) ok_i max_c p_ic
                          * CE(s_i[keep_i], y_i) / N

    with ``r`` an exponential moving average of the batches' selected fraction
    ``mean_i w_i`` (momentum ``certain_momentum``, started at the first batch's value;
    summed across processes), ShrinkMatch's two re-weighting principles: a sample
    counts by its confidence, and the whole term by how certain the model is overall.
    With a thresholding selector ``1 - w_i`` marks exactly the uncertain samples
    (``max p_i < threshold``) of the paper; a class-aware selector's rejections are
    shrunk too. ``s`` comes from ShrinkMatch's auxiliary classifier on the student's
    encoder features of the strong view (``mlp=True``: ``D -> D/4 -> D/4 -> C`` with
    BatchNorm and LeakyReLU(0.1), taken from the main forward) or, with ``mlp=False``,
    the student's own logits (the paper's ablation without the auxiliary head).

    This is the authors' ``shrink_loss`` (LiheYoung/ShrinkMatch): per uncertain sample,
    ``c`` runs from 2 up and stops at the first space that reaches the threshold or at
    ``c = C - 1``, where a space still short of it gets weight 0; the sum over the
    batch is divided by ``N`` and multiplied by ``r``, which is updated with the
    batch's selected fraction before it is used (``tests/parity`` checks the loss and
    its gradient against these formulas). Their CIFAR script restarts ``r`` at every
    epoch (1,024 iterations); their STL-10 / SVHN code, like this head, keeps one
    average over the run. Published defaults (paper and the authors' CIFAR code):
    ``threshold`` 0.95 (FixMatch's), ``certain_momentum`` 0.999, weight 1, the
    auxiliary MLP on. The certain samples keep the algorithm's loss. Classification
    only.
    Logged: ``aux_shrink_frac`` (fraction of the batch trained on a shrunk space),
    ``aux_shrink_removed`` (mean classes removed there), ``aux_certain_ratio`` (``r``).
    All keys are returned every iteration, 0 when there are no pseudo-labels
    (burn-in).

    Args:
        threshold (float): confidence the top class must reach. Default 0.95.
        certain_momentum (float): momentum of ``r`` in [0, 1). Default 0.999.
        mlp (bool): use the auxiliary classifier. Default True.
        view (str): the student view trained. Default ``'unsup_student'``.
        loss_weight (float): multiplier. Default 1.0.
    """

    def __init__(self, threshold: float = 0.95, certain_momentum: float = 0.999,
                 mlp: bool = True, view: str = 'unsup_student',
                 loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight)
        if not 0.0 < threshold:
            raise ValueError(f'threshold must be > 0, got {threshold}')
        if not 0.0 <= certain_momentum < 1.0:
            raise ValueError(f'certain_momentum must be in [0, 1), got {certain_momentum}')
        self.threshold = float(threshold)
        self.certain_momentum = float(certain_momentum)
        self.use_mlp = bool(mlp)
        self.view = view
        self.required_views = (view,)
        self.feature_views = (view,) if self.use_mlp else ()
        self.mlp: nn.Module | None = None
        # r; negative until the first training batch sets it
        self.register_buffer('certain_ratio', torch.tensor(-1.0))

    def setup(self, student: nn.Module) -> None:
        """Build the auxiliary classifier from ``student.feat_dim`` and ``num_classes``."""
        if not self.use_mlp:
            return
        require(student, 'feat_dim', f'{type(self).__name__}(mlp=True)')
        dim, classes = student.feat_dim, student.num_classes
        hidden = max(int(dim) // MLP_REDUCTION, 1)
        self.mlp = nn.Sequential(
            nn.Linear(int(dim), hidden), nn.BatchNorm1d(hidden),
            nn.LeakyReLU(MLP_NEGATIVE_SLOPE, inplace=True),
            nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden),
            nn.LeakyReLU(MLP_NEGATIVE_SLOPE, inplace=True),
            nn.Linear(hidden, int(classes)))

    @torch.no_grad()
    def _update_ratio(self, weight: torch.Tensor) -> None:
        stats = torch.stack([weight.float().sum(),
                             torch.tensor(float(weight.numel()), device=weight.device)])
        stats = sum_across_ranks(stats.to(self.certain_ratio.device))
        frac = stats[0] / stats[1].clamp_min(1.0)
        if self.certain_ratio < 0:
            self.certain_ratio.copy_(frac)
        else:
            m = self.certain_momentum
            self.certain_ratio.mul_(m).add_(frac, alpha=1.0 - m)

    def _outputs(self, ctx: AuxContext) -> torch.Tensor:
        if not self.use_mlp:
            return ctx.logits[self.view]
        feat = ctx.features[self.view]
        if feat.dim() != 2:
            raise TypeError(f'{type(self).__name__} needs pooled (N, D) features '
                            f'(classification), got {tuple(feat.shape)}')
        return self.mlp(feat)

    def loss(self, ctx: AuxContext) -> dict[str, torch.Tensor]:
        zero = 0.0 * ctx.logits['sup'].float().sum()
        out = {'aux_shrink_loss': zero, 'aux_shrink_frac': zero.detach(),
               'aux_shrink_removed': zero.detach(),
               'aux_certain_ratio': self.certain_ratio.clamp_min(0.0).detach().clone()}
        if ctx.probs is None or self.view not in ctx.logits or ctx.probs.shape[0] == 0:
            return out
        probs, weight = ctx.probs.detach().float(), ctx.weight.detach().float()
        if probs.dim() != 2:
            raise TypeError(f'{type(self).__name__} is for classification ((N, C) '
                            f'probabilities), got {tuple(probs.shape)}')
        if self.training:
            self._update_ratio(weight)
        # a copy: the buffer changes in place later (next update, look-ahead restore)
        ratio = (self.certain_ratio if self.certain_ratio >= 0 else weight.mean()).clone()
        keep, ok, removed = shrink_class_space(probs, self.threshold)
        conf, target = probs.max(dim=1)
        w = (1.0 - weight) * ok.float() * conf
        logits = self._outputs(ctx).float().masked_fill(~keep, float('-inf'))
        ce = F.cross_entropy(logits, target, reduction='none')
        n = probs.shape[0]
        loss = self.loss_weight * ratio * (w * ce).sum() / n
        trained = (w > 0).float()
        out.update(aux_shrink_loss=loss, aux_shrink_frac=trained.mean(),
                   aux_shrink_removed=(removed.float() * trained).sum()
                   / trained.sum().clamp_min(1.0),
                   aux_certain_ratio=ratio.detach())
        return out
