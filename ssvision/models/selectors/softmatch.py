"""SoftMatch's truncated-Gaussian soft weights with uniform alignment of the confidences."""

from __future__ import annotations

import torch

from ssvision.registry import MODELS

from ._dist import sum_across_ranks
from .base import BaseSelector

#: Floor of the variance (a collapsed variance gives weight 0 below mu).
_EPS = 1e-12
#: Added to both distributions of the uniform alignment (USB's value).
_ALIGN_EPS = 1e-6
_INIT_VAR = 1.0


def _positions(probs: torch.Tensor) -> torch.Tensor:
    """``(N, C, *)`` -> ``(L, C)``: every pixel of a dense input is a sample."""
    return probs.movedim(1, -1).reshape(-1, probs.shape[1])


@MODELS.register_module()
class SoftMatchSelector(BaseSelector):
    """Soft sample weights from a truncated Gaussian of the confidence (SoftMatch:
    Addressing the Quantity-Quality Trade-off in Semi-supervised Learning, Chen et al.,
    ICLR 2023), step for step as USB 0.3.2's ``DistAlignEMAHook`` (uniform target) and
    ``SoftMatchWeightingHook`` with their defaults, checked against them by
    ``tests/parity``.

    Buffers: ``mu`` (initialised to ``1/C``) and ``var`` (initialised to 1), EMAs of
    the mean and variance of the confidence, and ``p_model`` ``(C,)``, the EMA of the
    mean teacher probabilities (used with ``dist_align``; all zeros until the first
    training batch sets it to that batch's mean). Every position (every pixel of a
    dense input) is a sample.

    Pseudo-labels are always ``y_i = argmax p_i`` of the teacher's probabilities ``p``.
    With ``dist_align`` (uniform alignment, SoftMatch's default) the *confidence* used
    for the weight comes from the aligned copy (the input is untouched)::

        q_i = Normalize(p_i * (u + 1e-6) / (p_model + 1e-6)),   u = 1/C uniform

    otherwise ``q_i = p_i``; ``conf_i = max_c q_ic``. Alignment re-weights how much each
    sample counts, not which class it is trained on.

    Each training call updates, in this order (``L`` positions, momentum ``m``;
    under torch.distributed sums and ``L`` are added over ranks first):

    - with ``dist_align``: ``p_model <- mean_i p_i`` on the first batch, then
      ``p_model <- m * p_model + (1 - m) * mean_i p_i`` (the target ``u`` is fixed),
    - ``mu  <- m * mu  + (1 - m) * mean_i conf_i``,
    - ``var <- m * var + (1 - m) * sum_i (conf_i - mean conf)^2 / (L - 1)`` (unbiased;
      skipped when ``L < 2``).

    Weight (``s = n_sigma``), with the state after this update::

        w_i = lambda_max                                              if conf_i >= mu
        w_i = lambda_max * exp(-(conf_i - mu)^2 / (2 * var / s^2))    otherwise

    ``n_sigma = 1`` is a Gaussian with standard deviation ``sqrt(var)``; the default 2
    (USB's) halves the width (weight ``exp(-2)`` one standard deviation below ``mu``).
    ``var`` is clamped to at least ``1e-12``. Eval mode only reads the state (an unset
    ``p_model`` aligns nothing).

    Args:
        num_classes (int): number of classes ``C``.
        ema_momentum (float): ``m`` in ``[0, 1)``. Default 0.999.
        n_sigma (float): width divisor ``s > 0`` of the Gaussian. Default 2.0.
        lambda_max (float): largest weight, in ``(0, 1]``. Default 1.0.
        dist_align (bool): uniform distribution alignment of the confidences.
            Default True.
    """

    def __init__(self, num_classes: int, ema_momentum: float = 0.999, n_sigma: float = 2.0,
                 lambda_max: float = 1.0, dist_align: bool = True) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f'num_classes must be >= 1, got {num_classes}')
        if not 0 <= ema_momentum < 1:
            raise ValueError(f'ema_momentum must be in [0, 1), got {ema_momentum}')
        if n_sigma <= 0:
            raise ValueError(f'n_sigma must be > 0, got {n_sigma}')
        if not 0 < lambda_max <= 1:
            raise ValueError(f'lambda_max must be in (0, 1], got {lambda_max}')
        self.num_classes, self.ema_momentum = int(num_classes), float(ema_momentum)
        self.n_sigma, self.lambda_max = float(n_sigma), float(lambda_max)
        self.dist_align = bool(dist_align)
        self.register_buffer('mu', torch.tensor(1.0 / self.num_classes))
        self.register_buffer('var', torch.tensor(_INIT_VAR))
        # zeros: no batch seen yet (a real p_model sums to 1)
        self.register_buffer('p_model', torch.zeros(self.num_classes))

    def align(self, probs: torch.Tensor) -> torch.Tensor:
        """Uniformly aligned copy of ``probs (N, C, *)`` with the current ``p_model``
        (pure): ``p * (u + 1e-6) / (p_model + 1e-6)`` renormalised over ``C``."""
        shape = (1, -1) + (1,) * (probs.dim() - 2)
        target = torch.full_like(self.p_model, 1.0 / self.num_classes)
        scale = ((target + _ALIGN_EPS) / (self.p_model + _ALIGN_EPS)).to(probs.dtype)
        aligned = probs * scale.view(shape)
        return aligned / aligned.sum(dim=1, keepdim=True)

    def weights(self, conf: torch.Tensor) -> torch.Tensor:
        """Truncated-Gaussian weights of confidences ``conf`` (any shape, pure)."""
        mu = self.mu.to(conf.dtype)
        var = self.var.to(conf.dtype).clamp(min=_EPS)
        gauss = torch.exp(-(conf - mu) ** 2 / (2 * var / self.n_sigma ** 2))
        return self.lambda_max * torch.where(conf >= mu, torch.ones_like(conf), gauss)

    @torch.no_grad()
    def _update_p_model(self, probs: torch.Tensor) -> None:
        flat = _positions(probs).to(self.p_model.dtype)
        stats = sum_across_ranks(torch.cat([flat.sum(dim=0), flat.new_tensor([flat.shape[0]])]))
        if stats[-1] > 0:
            mean = stats[:-1] / stats[-1]
            m = self.ema_momentum
            unset = self.p_model.sum() <= 0
            self.p_model.copy_(torch.where(unset, mean, self.p_model * m + mean * (1 - m)))

    @torch.no_grad()
    def _update_gaussian(self, conf: torch.Tensor) -> None:
        # float64 sums: the one-pass variance loses digits in float32
        conf = conf.reshape(-1).double()
        stats = sum_across_ranks(torch.stack([
            conf.sum(), (conf ** 2).sum(), conf.new_tensor(float(conf.numel()))]))
        s1, s2, total = stats
        if total <= 0:
            return
        m = self.ema_momentum
        mean = s1 / total
        self.mu.mul_(m).add_(((1 - m) * mean).to(self.mu.dtype))
        if total >= 2:
            batch_var = ((s2 - total * mean ** 2) / (total - 1)).clamp(min=0.0)
            self.var.mul_(m).add_(((1 - m) * batch_var).to(self.var.dtype))

    def select(self, probs: torch.Tensor,
               sample_idx: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if probs.shape[1] != self.num_classes:
            raise ValueError(f'expected {self.num_classes} classes, got {probs.shape[1]}')
        labels = probs.argmax(dim=1)  # from the raw probabilities, aligned or not
        if self.dist_align:
            if self.training:
                self._update_p_model(probs)
            probs = self.align(probs)
        conf = probs.max(dim=1).values
        if self.training:
            self._update_gaussian(conf)
        return labels, self.weights(conf)

    def extra_log(self) -> dict[str, float]:
        """``sel_mu`` and ``sel_sigma`` (the Gaussian's centre and ``sqrt(var)``)."""
        return {'sel_mu': float(self.mu), 'sel_sigma': float(self.var.clamp(min=0).sqrt())}

    def extra_repr(self) -> str:
        return (f'num_classes={self.num_classes}, ema_momentum={self.ema_momentum}, '
                f'n_sigma={self.n_sigma}, lambda_max={self.lambda_max}, '
                f'dist_align={self.dist_align}')
