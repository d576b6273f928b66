"""DSSN's class-aware pseudo-label selection: each class keeps its own most confident part."""

from __future__ import annotations

import torch

from ssvision.registry import MODELS

from ._dist import cat_across_ranks, sum_across_ranks
from .base import BaseSelector

#: Slack subtracted before ``ceil(ratio * n)`` so that e.g. ``0.3 * 10`` gives 3, not 4.
_CEIL_SLACK = 1e-9
_SCOPES = ('image', 'batch', 'window')


def class_topk_mask(conf: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor,
                    num_groups: int, num_classes: int, ratio: float, margin: float = 0.0,
                    floor: float = 0.0, cap: torch.Tensor | None = None) -> torch.Tensor:
    """Per-(group, class) top-k selection of confident positions.

    For every group ``g`` and class ``c`` let ``P_gc`` be the positions of group ``g``
    predicted as ``c`` (``n_gc = |P_gc|``). A position ``i`` in ``P_gc`` is kept iff

    - its confidence rank inside ``P_gc`` (0 = most confident) is ``< k_gc``, with
      ``k_gc = ceil(ratio * n_gc)``, or ``min(ceil(ratio * n_gc), cap_gc)`` when ``cap``
      is given; ties are broken by position (lower flat index first), so exactly
      ``k_gc`` positions pass this test,
    - ``conf_i >= floor``, and
    - ``conf_i >= margin * max_{j in P_gc} conf_j``.

    Args:
        conf: ``(L,)`` confidences (top probability).
        labels: ``(L,)`` predicted classes in ``[0, num_classes)``.
        groups: ``(L,)`` group ids in ``[0, num_groups)``.
        num_groups: number of groups.
        num_classes: number of classes.
        ratio: fraction kept per group and class, in ``(0, 1]``.
        margin: relative margin in ``[0, 1]``; 0 disables it.
        floor: absolute confidence floor.
        cap: optional ``(num_groups * num_classes,)`` most positions kept per (group,
            class), indexed ``g * num_classes + c``.

    Returns:
        ``(L,)`` bool mask.
    """
    num_pos = conf.numel()
    if num_pos == 0:
        return torch.zeros_like(conf, dtype=torch.bool)
    seg = groups * num_classes + labels
    # Sort by confidence (descending), then stably by segment: positions of one
    # segment become contiguous and ordered by confidence.
    by_conf = torch.sort(conf, descending=True, stable=True).indices
    order = by_conf[torch.sort(seg[by_conf], stable=True).indices]
    seg_sorted = seg[order]
    counts = torch.bincount(seg, minlength=num_groups * num_classes)
    starts = counts.cumsum(0) - counts
    rank = torch.arange(num_pos, device=conf.device) - starts[seg_sorted]
    k = torch.ceil(counts.double() * ratio - _CEIL_SLACK).long()
    if cap is not None:
        k = torch.minimum(k, cap.to(k))
    keep = torch.empty_like(conf, dtype=torch.bool)
    keep[order] = rank < k[seg_sorted]
    seg_max = conf.new_zeros(num_groups * num_classes).scatter_reduce(
        0, seg, conf, reduce='amax', include_self=False)
    return keep & (conf >= floor) & (conf >= margin * seg_max[seg])


@MODELS.register_module()
class ClassAwareTopKSelector(BaseSelector):
    """Class-aware top-confidence selection (the Dual-Level Siamese Structure Network,
    DSSN, for semi-supervised semantic segmentation).

    A single global threshold lets frequent, easy classes take almost every
    pseudo-label. Here every class ranks *its own* predictions: for class ``c`` only
    positions whose argmax is ``c`` compete, so a rare class keeps its best
    predictions however low they are compared with a dominant class.

    Let ``conf = max_c probs`` and ``label = argmax_c probs`` at every position
    (every pixel of a dense input is a position). The weight is hard (0 or 1).

    **scope = 'image' / 'batch'** (ranking unit ``g`` = one image / the whole batch):
    with ``P_gc`` the positions of unit ``g`` predicted as ``c`` and
    ``k_gc = ceil(ratio * |P_gc|)``, position ``i`` is kept iff it is among the
    ``k_gc`` most confident of ``P_gc`` (ties: lower flat index first), and
    ``conf_i >= floor`` and ``conf_i >= margin * max_{j in P_gc} conf_j``. A class
    whose best confidence is below ``floor`` contributes nothing.

    **Labeled prior** (``prior=True``, scopes ``'image'`` / ``'batch'``): the recipe
    shows the selector every labeled batch (:meth:`observe`), which counts the labeled
    positions (images, or pixels) of each class: ``pi_c`` = class ``c``'s share. Each
    unit then keeps at most ``cap_gc = ceil(ratio * pi_c * n_g)`` positions of class
    ``c`` (``n_g`` = positions in the unit), on top of the rule above. A fixed share of
    whatever the teacher predicts follows the teacher when it drifts: on a two-class map
    whose labeled pixels are 18 % foreground, a teacher predicting 43 % foreground fed
    half of those (many wrong) back to the student, and a teacher predicting almost only
    background starves the foreground; the cap ties each class's pseudo-labels to how
    common it is in the labels. Counts are summed across processes and checkpointed;
    before any labeled batch no cap applies.

    **scope = 'window'**: a ring buffer per class holds the confidences of the last
    ``window`` positions predicted as that class (training calls only; a call adds at
    most ``push_limit`` per class, an evenly spaced subsample by rank when it has
    more, which keeps the call's quantiles). Class ``c``'s threshold is
    ``T_c = max(floor, Q_c(1 - ratio))``, ``Q_c`` the (linearly interpolated)
    quantile of its window, and position ``i`` is kept iff
    ``conf_i >= T_{label_i}`` and ``conf_i >= margin * max(window_{label_i})``. A
    class with an empty window uses ``T_c = floor`` and no margin. In training the
    window is updated with the current call before thresholds are computed; under
    torch.distributed every rank pushes every rank's values, in rank order, so the
    windows stay identical.

    Args:
        ratio (float): fraction of each class's positions kept, in ``(0, 1]``.
            Default 0.5.
        margin (float): relative margin in ``[0, 1]``; 0 disables it. Default 0.0.
        floor (float): minimum confidence of a kept position. Default 0.5.
        scope (str | None): ``'image'``, ``'batch'`` or ``'window'``. ``None``
            (default) means ``'image'`` for dense inputs ``(N, C, H, W)`` and
            ``'batch'`` for ``(N, C)``.
        num_classes (int | None): required for ``scope='window'`` (buffer shape).
        window (int): per-class window length for ``scope='window'``. Default 4096.
        push_limit (int | None): most confidences one training call adds per class
            (``scope='window'``); ``None`` means ``window``. Default None.
        prior (bool): cap each class by its labeled share (needs ``num_classes``; not
            with ``scope='window'``). Default False.
    """

    def __init__(self, ratio: float = 0.5, margin: float = 0.0, floor: float = 0.5,
                 scope: str | None = None, num_classes: int | None = None,
                 window: int = 4096, push_limit: int | None = None,
                 prior: bool = False) -> None:
        super().__init__()
        if not 0 < ratio <= 1:
            raise ValueError(f'ratio must be in (0, 1], got {ratio}')
        if not 0 <= margin <= 1:
            raise ValueError(f'margin must be in [0, 1], got {margin}')
        if scope is not None and scope not in _SCOPES:
            raise ValueError(f'scope must be one of {_SCOPES} or None, got {scope!r}')
        self.ratio, self.margin, self.floor = float(ratio), float(margin), float(floor)
        self.scope = scope
        self.num_classes = num_classes
        self._last_cutoff: torch.Tensor | None = None
        self.prior = bool(prior)
        if self.prior:
            if num_classes is None or num_classes < 1:
                raise ValueError('prior=True needs num_classes')
            if scope == 'window':
                raise ValueError("prior=True works with scope 'image' or 'batch'")
            self.register_buffer('labeled_counts', torch.zeros(num_classes, dtype=torch.float64))
        if scope == 'window':
            if num_classes is None or num_classes < 1:
                raise ValueError("scope='window' needs num_classes")
            if window < 1:
                raise ValueError(f'window must be >= 1, got {window}')
            self.window = int(window)
            self.push_limit = min(int(push_limit or window), self.window)
            self.register_buffer('conf_window', torch.zeros(num_classes, self.window))
            self.register_buffer('window_fill', torch.zeros(num_classes, dtype=torch.long))
            self.register_buffer('window_ptr', torch.zeros(num_classes, dtype=torch.long))

    # ------------------------------------------------------------------ prior
    @torch.no_grad()
    def observe(self, targets: torch.Tensor) -> None:
        """Count the labeled positions of each class (training mode, ``prior=True``;
        every process's batch)."""
        if not (self.prior and self.training):
            return
        t = torch.as_tensor(targets).reshape(-1).long().to(self.labeled_counts.device)
        t = t[(t >= 0) & (t < self.num_classes)]
        counts = torch.bincount(t, minlength=self.num_classes).to(self.labeled_counts.dtype)
        self.labeled_counts += sum_across_ranks(counts)

    def class_prior(self) -> torch.Tensor | None:
        """Labeled share of each class ``(C,)``, or None before any observation."""
        if not self.prior or float(self.labeled_counts.sum()) <= 0:
            return None
        return self.labeled_counts / self.labeled_counts.sum()

    # ------------------------------------------------------------------ window
    def _push(self, conf: torch.Tensor, labels: torch.Tensor) -> None:
        """Add (a rank-preserving subsample of) this call's confidences per class."""
        num_classes, width, limit = self.num_classes, self.window, self.push_limit
        by_conf = torch.sort(conf, descending=True, stable=True).indices
        order = by_conf[torch.sort(labels[by_conf], stable=True).indices]
        conf_sorted = conf[order]
        counts = torch.bincount(labels, minlength=num_classes)
        starts = counts.cumsum(0) - counts
        j = torch.arange(limit, device=conf.device).unsqueeze(0)
        n = counts.unsqueeze(1)
        # j-th pushed rank: j itself, or floor(j * n / limit) when n > limit.
        rank = torch.where(n > limit, torch.div(j * n, limit, rounding_mode='floor'), j)
        valid = j < n.clamp(max=limit)
        idx = (starts.unsqueeze(1) + rank).clamp(max=max(conf.numel() - 1, 0))
        values = conf_sorted[idx] if conf.numel() else conf.new_zeros(num_classes, limit)
        values = values.masked_fill(~valid, 0.0)
        pushed = valid.sum(1)
        all_values = cat_across_ranks(values.unsqueeze(0))
        all_pushed = cat_across_ranks(pushed.unsqueeze(0))
        for vals, num in zip(all_values, all_pushed):
            m = num.unsqueeze(1)
            ok = j < m
            dest = (self.window_ptr.unsqueeze(1) + j) % width
            flat = (torch.arange(num_classes, device=conf.device).unsqueeze(1) * width + dest)
            self.conf_window.view(-1)[flat[ok]] = vals[ok].to(self.conf_window.dtype)
            self.window_ptr.copy_((self.window_ptr + num) % width)
            self.window_fill.copy_((self.window_fill + num).clamp(max=width))

    def window_thresholds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(T (C,), window max (C,))`` from the current windows (pure).

        ``T_c = max(floor, quantile_{1 - ratio}(window_c))``; an empty window gives
        ``T_c = floor`` and a window max of 0 (no margin).
        """
        filled = (torch.arange(self.window, device=self.conf_window.device).unsqueeze(0)
                  < self.window_fill.unsqueeze(1))
        data = self.conf_window.masked_fill(~filled, float('nan'))
        q = torch.nanquantile(data, 1.0 - self.ratio, dim=1)
        floor = torch.full_like(q, self.floor)
        thr = torch.where(torch.isnan(q), floor, torch.maximum(q, floor))
        wmax = self.conf_window.masked_fill(~filled, 0.0).amax(dim=1)
        return thr, wmax

    # ------------------------------------------------------------------ select
    def select(self, probs: torch.Tensor,
               sample_idx: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        num, num_classes = probs.shape[:2]
        if self.num_classes is not None and num_classes != self.num_classes:
            raise ValueError(f'expected {self.num_classes} classes, got {num_classes}')
        conf, labels = probs.max(dim=1)
        scope = self.scope or ('image' if probs.dim() > 2 else 'batch')
        if scope == 'window':
            if self.training:
                self._push(conf.reshape(-1), labels.reshape(-1))
            thr, wmax = self.window_thresholds()
            keep = (conf >= thr.to(conf.dtype)[labels]) & (
                conf >= self.margin * wmax.to(conf.dtype)[labels])
        else:
            per_image = conf[0].numel() if num else 0
            if scope == 'image':
                groups = torch.arange(num, device=conf.device).repeat_interleave(per_image)
                num_groups = num
            else:
                groups = torch.zeros(conf.numel(), dtype=torch.long, device=conf.device)
                num_groups = 1
            cap = None
            prior = self.class_prior()
            if prior is not None:
                per_group = conf.numel() // max(num_groups, 1)
                cap = torch.ceil(self.ratio * prior * per_group - _CEIL_SLACK).long()
                cap = cap.to(conf.device).repeat(num_groups)
            keep = class_topk_mask(conf.reshape(-1), labels.reshape(-1), groups, num_groups,
                                   num_classes, self.ratio, self.margin,
                                   self.floor, cap).view_as(conf)
        if self.training:
            cutoff = conf.new_ones(num_classes).scatter_reduce(
                0, labels[keep], conf[keep], reduce='amin', include_self=True)
            self._last_cutoff = cutoff.detach()
        return labels, keep.to(probs.dtype)

    def extra_log(self) -> dict[str, float]:
        """``thr_<c>``: the window threshold (``scope='window'``), otherwise the lowest
        confidence kept for class ``c`` in the last training call (1.0 if none)."""
        if self.scope == 'window':
            values = self.window_thresholds()[0]
        elif self._last_cutoff is not None:
            values = self._last_cutoff
        else:
            return {}
        return {f'thr_{c}': float(v) for c, v in enumerate(values.tolist())}

    def extra_repr(self) -> str:
        return (f'ratio={self.ratio}, margin={self.margin}, floor={self.floor}, '
                f'scope={self.scope}, prior={self.prior}' + (f', window={self.window}'
                                         if self.scope == 'window' else ''))
