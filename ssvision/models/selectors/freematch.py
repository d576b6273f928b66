"""FreeMatch's self-adaptive (global x class-wise) confidence thresholds."""

from __future__ import annotations

import torch

from ssvision.registry import MODELS

from ._dist import sum_across_ranks
from .base import BaseSelector

#: Added inside the logarithm of the fairness loss (USB's value); floor of divisors.
_EPS = 1e-12


def _positions(probs: torch.Tensor) -> torch.Tensor:
    """``(N, C, *)`` -> ``(L, C)``: every pixel of a dense input is a sample."""
    return probs.movedim(1, -1).reshape(-1, probs.shape[1])


def _sum_norm(x: torch.Tensor) -> torch.Tensor:
    return x / x.sum()


def _inv_or_zero(x: torch.Tensor) -> torch.Tensor:
    """``1 / x`` where it is finite, 0 where ``x == 0`` (a class absent from a
    histogram drops out)."""
    inv = 1.0 / x
    return torch.where(torch.isinf(inv), torch.zeros_like(inv), inv)


@MODELS.register_module()
class FreeMatchSelector(BaseSelector):
    """Self-adaptive thresholding (FreeMatch: Self-adaptive Thresholding for
    Semi-supervised Learning, Wang et al., ICLR 2023), step for step as USB 0.3.2's
    ``FreeMatchThresholdingHook`` with its defaults (mean confidence, not a quantile;
    no clipping of ``tau``), checked against it by ``tests/parity``.

    Buffers, each an exponential moving average with momentum ``m``:
    ``tau`` (global, initialised to ``1/C``), ``p_tilde`` ``(C,)`` (initialised to
    ``1/C`` each) and ``label_hist`` ``(C,)`` (initialised to ``1/C`` each). Every
    position (every pixel of a dense input) is a sample. Each training call first
    updates, with ``q_i`` the teacher probabilities of the batch's ``L`` positions::

        tau        <- m * tau        + (1 - m) * mean_i max_c q_ic
        p_tilde    <- m * p_tilde    + (1 - m) * mean_i q_i
        label_hist <- m * label_hist + (1 - m) * hist_c(argmax q_i) / L

    (under torch.distributed the sums and ``L`` are added over all ranks first, so
    the means are over the global batch and the state stays identical). Then the
    class thresholds are ``T_c = (p_tilde_c / max_k p_tilde_k) * tau`` and position
    ``i`` is kept (weight 1) iff ``max_c q_ic >= T_{argmax q_i}``. Eval mode only
    reads the state.

    ``label_hist`` serves only :meth:`fairness_loss`, FreeMatch's self-adaptive
    fairness regulariser, which an algorithm may add.

    Args:
        num_classes (int): number of classes ``C``.
        ema_momentum (float): ``m`` in ``[0, 1)``. Default 0.999.
    """

    def __init__(self, num_classes: int, ema_momentum: float = 0.999) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f'num_classes must be >= 1, got {num_classes}')
        if not 0 <= ema_momentum < 1:
            raise ValueError(f'ema_momentum must be in [0, 1), got {ema_momentum}')
        self.num_classes, self.ema_momentum = int(num_classes), float(ema_momentum)
        uniform = torch.full((self.num_classes,), 1.0 / self.num_classes)
        self.register_buffer('tau', torch.tensor(1.0 / self.num_classes))
        self.register_buffer('p_tilde', uniform.clone())
        self.register_buffer('label_hist', uniform.clone())

    def class_thresholds(self) -> torch.Tensor:
        """``(C,)`` thresholds ``T_c = p_tilde_c / max p_tilde * tau`` (pure)."""
        return self.p_tilde / self.p_tilde.max().clamp(min=_EPS) * self.tau

    @torch.no_grad()
    def _update(self, flat: torch.Tensor) -> None:
        flat = flat.to(self.p_tilde.dtype)  # half-precision sums overflow on dense inputs
        conf, labels = flat.max(dim=1)
        stats = torch.cat([
            conf.sum().view(1), flat.sum(dim=0),
            torch.bincount(labels, minlength=self.num_classes).to(flat.dtype),
            flat.new_tensor([flat.shape[0]])])
        stats = sum_across_ranks(stats)
        total = stats[-1]
        if total <= 0:
            return
        c, m = self.num_classes, self.ema_momentum
        self.tau.mul_(m).add_((1 - m) * stats[0] / total)
        self.p_tilde.mul_(m).add_((1 - m) * stats[1:1 + c] / total)
        self.label_hist.mul_(m).add_((1 - m) * stats[1 + c:1 + 2 * c] / total)

    def select(self, probs: torch.Tensor,
               sample_idx: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if probs.shape[1] != self.num_classes:
            raise ValueError(f'expected {self.num_classes} classes, got {probs.shape[1]}')
        if self.training:
            self._update(_positions(probs))
        conf, labels = probs.max(dim=1)
        thr = self.class_thresholds().to(probs.dtype)
        return labels, (conf >= thr[labels]).to(probs.dtype)

    def fairness_loss(self, student_probs_strong: torch.Tensor,
                      mask: torch.Tensor) -> torch.Tensor:
        """FreeMatch's self-adaptive fairness loss (to be minimised), as USB 0.3.2's
        ``entropy_loss`` computes it (checked against it by ``tests/parity``).

        Over the selected positions ``S = {i : mask_i > 0}`` of the student's
        strong-view probabilities ``Q``: ``p_bar = mean_{i in S} Q_i`` and
        ``h_bar = hist_c(argmax Q_i, i in S) / |S|``. With ``SumNorm(x) = x / sum(x)``
        and ``inv(x) = 1 / x`` where ``x > 0``, else 0 (a class that no selected sample
        predicts, or that the teacher's histogram lacks, drops out instead of getting
        the weight ``1 / eps``)::

            a   = SumNorm(p_tilde * inv(label_hist))     (teacher statistics, constant)
            b   = SumNorm(p_bar * inv(h_bar))
            L_f = sum_c a_c * log(b_c + 1e-12)          (= -H(a, b))

        Minimising it raises the cross-entropy between the two normalised marginals,
        pushing the student's batch marginal away from the classes it over-predicts
        (the regulariser encourages diverse predictions). Statistics are local to this
        process. When nothing is selected it is a zero that keeps the graph (USB skips
        the term).

        Args:
            student_probs_strong: ``(N, C, *)`` student probabilities on the strong
                view (with gradient).
            mask: ``(N, *)`` the selection weights returned by :meth:`select`.

        Returns:
            Scalar loss.
        """
        flat = _positions(student_probs_strong)
        sel = mask.reshape(-1) > 0
        if not bool(sel.any()):
            return student_probs_strong.sum() * 0.0
        chosen = flat[sel]
        p_bar = chosen.mean(dim=0)
        h_bar = torch.bincount(chosen.detach().argmax(dim=1),
                               minlength=self.num_classes).to(p_bar.dtype) / chosen.shape[0]
        a = _sum_norm(self.p_tilde.to(p_bar.dtype) * _inv_or_zero(
            self.label_hist.to(p_bar.dtype)))
        b = _sum_norm(p_bar * _inv_or_zero(h_bar))
        return (a * torch.log(b + _EPS)).sum()

    def extra_log(self) -> dict[str, float]:
        """``thr_<c>`` per-class thresholds and ``sel_global`` (``tau``)."""
        out = {f'thr_{c}': v for c, v in enumerate(self.class_thresholds().tolist())}
        out['sel_global'] = float(self.tau)
        return out

    def extra_repr(self) -> str:
        return f'num_classes={self.num_classes}, ema_momentum={self.ema_momentum}'
