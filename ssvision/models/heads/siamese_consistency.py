"""DSSN-style dual-level Siamese consistency: image level and feature level."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ssvision.registry import MODELS

from ..network import require
from .base import AuxContext, BaseAuxHead

#: Added to the standard deviation so constant logit vectors do not divide by 0.
_STD_EPS = 1e-6
_CONSISTENCIES = ('auto', 'standardized_mse', 'prob_mse', 'contrastive')
#: Fewest classes for which a standardized class vector carries more than a sign.
_MIN_STANDARDIZED_CLASSES = 3
_UNSUP_VIEWS = ('unsup_teacher', 'unsup_student', 'unsup_student2')


def standardize(logits: torch.Tensor, eps: float = _STD_EPS) -> torch.Tensor:
    """``(x - mean_K x) / (std_K x + eps)`` over the class axis (dim 1, population std).

    Args:
        logits: ``(N, K, *)``.

    Returns:
        Tensor of the same shape, every class vector with mean 0 and std ~1.
    """
    x = logits.float()
    mean = x.mean(dim=1, keepdim=True)
    std = x.std(dim=1, unbiased=False, keepdim=True)
    return (x - mean) / (std + eps)


def standardized_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample (per-pixel) ``mean_K (std(a) - std(b))^2``; ``(N, K, *) -> (N, *)``.

    Symmetric and without stop-gradient: both outputs receive gradients.
    """
    return ((standardize(a) - standardize(b)) ** 2).mean(dim=1)


def prob_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample (per-pixel) ``mean_K (softmax(a) - softmax(b))^2``; ``(N, K, *) -> (N, *)``.

    Bounded and smooth for any ``K >= 2``; both outputs receive gradients.
    """
    return ((a.float().softmax(dim=1) - b.float().softmax(dim=1)) ** 2).mean(dim=1)


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric sample-wise InfoNCE between two views; ``(N, K) -> (N,)``.

    With ``u = a / |a|``, ``v = b / |b|`` and ``s_ij = u_i . v_j / temperature``::

        loss_i = (CE(s_i., i) + CE(s_.i, i)) / 2

    positives are the same image in the other view, negatives the other images of the
    batch. Classification-only (one vector per image).
    """
    if a.dim() != 2:
        raise ValueError("consistency='contrastive' needs (N, K) outputs (classification); "
                         f"got shape {tuple(a.shape)}; use 'auto' for dense outputs")
    u = F.normalize(a.float(), dim=1)
    v = F.normalize(b.float(), dim=1)
    sim = u @ v.t() / temperature
    target = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(sim, target, reduction='none')
                  + F.cross_entropy(sim.t(), target, reduction='none'))


@MODELS.register_module()
class DualSiameseConsistencyHead(BaseAuxHead):
    """Dual-level Siamese consistency (DSSN): pull together two perturbed outputs.

    Image level: the student's outputs on two strong views of the same unlabeled images
    (``unsup_student``, ``unsup_student2``). Feature level: two head outputs of the
    features of ``feature_view`` under independent dropout masks (channel-wise for
    maps); with ``shared_features`` those features come from the student's main forward
    (UniMatch's ``need_fp``: no second encoder pass, BatchNorm sees the view once),
    else from an ``extract_feat`` of the head's own.

    The per-sample (per-pixel) term is :func:`standardized_mse`, :func:`prob_mse` or
    :func:`info_nce` (classification only); ``'auto'`` takes ``prob_mse`` for two
    classes, where a standardized vector keeps only a sign and the loss is a step with
    no useful gradient. Both sides get gradients; a pair's loss is
    ``sum_i w_i l_i / numel(l)`` with ``w`` the selection weights (``use_selection``),
    so it is 0 when nothing is selected. A term whose views are missing (burn-in, a
    batch without them) is an exact 0; both keys are always returned::

        aux_siamese_img_loss  = loss_weight * image_weight   * L_img
        aux_siamese_feat_loss = loss_weight * feature_weight * L_feat

    Args:
        loss_weight (float): multiplier of both terms. Default 1.0.
        feature_weight (float): extra multiplier of the feature-level term; 0 skips its
            forward. Default 1.0.
        image_weight (float): extra multiplier of the image-level term. Default 1.0.
        feature_dropout (float): dropout probability on the features. Default 0.5.
        consistency (str): ``'auto'``, ``'standardized_mse'``, ``'prob_mse'`` or
            ``'contrastive'``. Default ``'auto'``.
        temperature (float): InfoNCE temperature. Default 0.5.
        use_selection (bool): weight samples by the selector's weights. Default True.
        feature_view (str): unlabeled view whose features are perturbed. Default
            ``'unsup_student'``.
        shared_features (bool): take them from the student's main forward (see
            above). Default True.
    """

    required_views = ('unsup_student', 'unsup_student2')

    def __init__(self, loss_weight: float = 1.0, feature_weight: float = 1.0,
                 image_weight: float = 1.0, feature_dropout: float = 0.5,
                 consistency: str = 'auto', temperature: float = 0.5,
                 use_selection: bool = True, feature_view: str = 'unsup_student',
                 shared_features: bool = True) -> None:
        super().__init__(loss_weight)
        if consistency not in _CONSISTENCIES:
            raise ValueError(f'consistency must be one of {_CONSISTENCIES}, got {consistency!r}')
        if feature_weight < 0 or image_weight < 0:
            raise ValueError('feature_weight and image_weight must be >= 0, got '
                             f'{feature_weight}, {image_weight}')
        if not 0.0 <= feature_dropout < 1.0:
            raise ValueError(f'feature_dropout must be in [0, 1), got {feature_dropout}')
        if temperature <= 0:
            raise ValueError(f'temperature must be > 0, got {temperature}')
        if feature_view not in _UNSUP_VIEWS:
            raise ValueError(f'feature_view must be one of {_UNSUP_VIEWS} (views the selection '
                             f'weights refer to), got {feature_view!r}')
        self.feature_weight = float(feature_weight)
        self.image_weight = float(image_weight)
        self.feature_dropout = float(feature_dropout)
        self.consistency = consistency
        self.temperature = float(temperature)
        self.use_selection = bool(use_selection)
        self.feature_view = feature_view
        self.shared_features = bool(shared_features)
        if self.shared_features and self.feature_weight > 0:
            self.feature_views = (feature_view,)

    def setup(self, student: torch.nn.Module) -> None:
        """The feature level needs the student's ``extract_feat`` / ``forward_head``."""
        if self.feature_weight > 0:
            require(student, 'extract_feat',
                    f'{type(self).__name__} feature level (feature_weight > 0)')

    # ----------------------------------------------------------------- pieces
    def pair_loss(self, a: torch.Tensor, b: torch.Tensor,
                  weight: torch.Tensor | None) -> torch.Tensor:
        """``sum_i w_i * l_i(a, b) / numel(l)`` for outputs ``(N, K, *)``, ``w`` ``(N, *)``."""
        if a.shape != b.shape:
            raise ValueError(f'Siamese outputs differ in shape: {tuple(a.shape)} vs '
                             f'{tuple(b.shape)}')
        kind = self.consistency
        if kind == 'auto':
            kind = ('standardized_mse' if a.shape[1] >= _MIN_STANDARDIZED_CLASSES
                    else 'prob_mse')
        if kind == 'standardized_mse':
            if a.shape[1] < _MIN_STANDARDIZED_CLASSES:
                raise ValueError("consistency='standardized_mse' needs >= 3 classes (a "
                                 'standardized 2-vector is only a sign); use '
                                 "'prob_mse' or 'auto'")
            per = standardized_mse(a, b)
        elif kind == 'prob_mse':
            per = prob_mse(a, b)
        else:
            per = info_nce(a, b, self.temperature)
        if weight is not None:
            if weight.shape != per.shape:
                raise ValueError(f'selection weight has shape {tuple(weight.shape)}, the '
                                 f'per-sample loss {tuple(per.shape)}; the views must be '
                                 'of the same images as unsup_teacher')
            per = per * weight.detach().to(per.dtype)
        return per.sum() / max(per.numel(), 1)

    def _dropout(self, feat: torch.Tensor) -> torch.Tensor:
        if feat.dim() == 4:
            return F.dropout2d(feat, self.feature_dropout, training=True)
        return F.dropout(feat, self.feature_dropout, training=True)

    def feature_pair(self, student: torch.nn.Module, x: torch.Tensor,
                     feat: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Two head outputs of the features ``feat`` of ``x`` (``student.extract_feat(x)``
        when not given) under independent feature-dropout masks."""
        if feat is None:
            feat = student.extract_feat(x)
        size = tuple(x.shape[-2:])  # dense students upsample their logits to the input size
        return (student.forward_head(self._dropout(feat), size),
                student.forward_head(self._dropout(feat), size))

    # ----------------------------------------------------------------- loss
    def loss(self, ctx: AuxContext) -> dict[str, torch.Tensor]:
        weight = ctx.weight if self.use_selection else None
        zero = 0.0 * ctx.logits['sup'].float().sum()
        img = feat = zero
        if all(v in ctx.logits for v in self.required_views) and self.image_weight > 0:
            img = self.image_weight * self.pair_loss(
                ctx.logits['unsup_student'], ctx.logits['unsup_student2'], weight)
        if (ctx.probs is not None and self.feature_view in ctx.logits
                and self.feature_weight > 0):
            a, b = self.feature_pair(ctx.student, ctx.inputs[self.feature_view],
                                     ctx.features.get(self.feature_view)
                                     if self.shared_features else None)
            feat = self.feature_weight * self.pair_loss(a, b, weight)
        return {'aux_siamese_img_loss': self.loss_weight * img,
                'aux_siamese_feat_loss': self.loss_weight * feat}
