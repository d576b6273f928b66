"""LoRot: predict the rotation (and place) of one locally rotated patch."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ssvision.registry import MODELS

from ..network import require
from .base import AuxContext, BaseAuxHead
from .rotation import NUM_ROTATIONS

#: LoRot-E's patch is one of the four quadrants (row-major: top-left, top-right,
#: bottom-left, bottom-right).
NUM_QUADRANTS = 4
VARIANTS = ('E', 'I')


def rotate_patches(images: torch.Tensor, top: torch.Tensor, left: torch.Tensor,
                   size: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """A copy of ``images`` with, in image ``i``, the square patch of side ``size_i`` at
    ``(top_i, left_i)`` rotated counter-clockwise by ``k_i * 90`` degrees.

    Args:
        images: ``(N, C, H, W)``.
        top, left, size, k: ``(N,)`` integers; each patch lies inside its image.

    Returns:
        ``(N, C, H, W)`` (``torch.rot90`` over ``(H, W)`` inside each patch).
    """
    if images.dim() != 4:
        raise ValueError(f'rotate_patches expects (N, C, H, W), got {tuple(images.shape)}')
    out = images.clone()
    h, w = images.shape[-2:]
    for i, (t, lf, s, r) in enumerate(zip(top.tolist(), left.tolist(), size.tolist(),
                                          k.tolist())):
        if not (0 <= t and 0 <= lf and t + s <= h and lf + s <= w and s >= 1):
            raise ValueError(f'patch {i} ({t}, {lf}, side {s}) is outside the {h}x{w} image')
        if r % NUM_ROTATIONS:
            out[i, :, t:t + s, lf:lf + s] = torch.rot90(images[i, :, t:t + s, lf:lf + s],
                                                        r % NUM_ROTATIONS, dims=(1, 2))
    return out


@MODELS.register_module()
class LocalRotationHead(BaseAuxHead):
    """Localizable rotation (LoRot) as an auxiliary loss for the supervised objective.

    Tailoring Self-Supervision for Supervised Learning (Moon, Kim and Heo, ECCV 2022).
    The images of ``views`` present in ``ctx.inputs`` are concatenated and the first
    ``max_images`` kept; in each, one square patch is rotated by ``k_i * 90`` degrees
    (``k_i ~ U{0..3}``, ``torch.randint`` on the images' device, global RNG), and a
    linear classifier on ``student.extract_feat`` of the result predicts::

        LoRot-E (variant='E'): patch = quadrant q_i ~ U{0..3} (side min(H, W) // 2,
                               row-major corners), label = 4 q_i + k_i  (16 classes)
        LoRot-I (variant='I'): patch of side ~ U[patch_range] * min(H, W) at a uniform
                               position, label = k_i  (4 classes)

        aux_lorot_loss = loss_weight * mean_i CE(W . feat_i + b, label_i)
        aux_lorot_acc  = mean_i [argmax = label_i]          (detached, logged only)

    ``k_i = 0`` leaves the image unchanged (a valid class, as in LoRot). With no image
    to rotate (none of ``views`` in the batch, or empty) the loss is exactly 0.

    Defaults read from the paper's code (wjun0830/Localizable-Rotation; no parity test
    compares with it yet): LoRot-E with
    quadrant patches and a 16-way joint head, weight ``lambda = 0.1`` (its long-tailed
    CIFAR scripts; 0.5 in its OOD scripts); LoRot-I rotates a square of side 2..16
    pixels on 32 x 32 images, here ``patch_range=(1/16, 1/2)`` of the side. Used
    here: LoRot-E, weight 0.1. LoRot's code rotates the training images themselves
    (the classifier also sees them); here the recipe's views stay clean and the head
    runs its own forward on rotated copies (like :class:`RotationHead`), in the
    student's mode (train: the copies enter BN statistics); it costs one forward of
    up to ``max_images`` images. Labels are not used, so unlabeled views work too.
    Classification-style: ``extract_feat`` must return pooled ``(N, D)`` features.

    Args:
        loss_weight (float): multiplier ``lambda``. Default 0.1.
        variant (str): ``'E'`` or ``'I'``. Default ``'E'``.
        views (Sequence[str]): ``ctx.inputs`` keys to take images from (missing ones
            are skipped). Default ``('sup',)`` (LoRot trains on labeled images).
        max_images (int): at most this many images per iteration. Default 64.
        patch_range (tuple[float, float]): LoRot-I's patch side as fractions of
            ``min(H, W)``. Default ``(1/16, 1/2)``.
        in_features (int | None): size of ``extract_feat``'s output; None takes
            ``student.feat_dim`` at :meth:`setup`.
    """

    def __init__(self, loss_weight: float = 0.1, variant: str = 'E',
                 views: Sequence[str] = ('sup',), max_images: int = 64,
                 patch_range: tuple[float, float] = (1 / 16, 1 / 2),
                 in_features: int | None = None) -> None:
        super().__init__(loss_weight)
        if variant not in VARIANTS:
            raise ValueError(f'variant must be one of {VARIANTS}, got {variant!r}')
        if isinstance(views, str):
            views = (views,)
        self.views = tuple(views)
        if not self.views:
            raise ValueError('views must name at least one input view')
        if max_images < 1:
            raise ValueError(f'max_images must be >= 1, got {max_images}')
        lo, hi = (float(v) for v in patch_range)
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f'patch_range must satisfy 0 < low <= high <= 1, got {patch_range}')
        self.variant = variant
        self.max_images = int(max_images)
        self.patch_range = (lo, hi)
        self.num_labels = NUM_QUADRANTS * NUM_ROTATIONS if variant == 'E' else NUM_ROTATIONS
        self.classifier = (nn.LazyLinear(self.num_labels) if in_features is None
                           else nn.Linear(int(in_features), self.num_labels))

    def setup(self, student: nn.Module) -> None:
        """Size the classifier from ``student.feat_dim`` when not given."""
        require(student, 'extract_feat', type(self).__name__)
        if isinstance(self.classifier, nn.LazyLinear):
            self.classifier = nn.Linear(int(student.feat_dim), self.num_labels)

    def sample(self, n: int, height: int, width: int, device) -> tuple[torch.Tensor, ...]:
        """Random patches and labels for ``n`` images: ``(top, left, size, k, label)``."""
        side = min(height, width)
        k = torch.randint(0, NUM_ROTATIONS, (n,), device=device)
        if self.variant == 'E':
            q = torch.randint(0, NUM_QUADRANTS, (n,), device=device)
            size = torch.full((n,), side // 2, device=device, dtype=torch.long)
            top = torch.where(q >= 2, height - size, torch.zeros_like(size))
            left = torch.where(q % 2 == 1, width - size, torch.zeros_like(size))
            return top, left, size, k, q * NUM_ROTATIONS + k
        lo = max(int(round(self.patch_range[0] * side)), 1)
        hi = max(int(round(self.patch_range[1] * side)), lo)
        size = torch.randint(lo, hi + 1, (n,), device=device)
        top = (torch.rand(n, device=device) * (height - size + 1)).long()
        left = (torch.rand(n, device=device) * (width - size + 1)).long()
        return top, left, size, k, k

    def loss(self, ctx: AuxContext) -> dict[str, torch.Tensor]:
        images = [ctx.inputs[v] for v in self.views if v in ctx.inputs]
        x = torch.cat(images, dim=0)[:self.max_images] if images else None
        if x is None or x.shape[0] == 0:
            # nothing rotated: an exact 0 that keeps the classifier in the graph
            zero = next(iter(ctx.logits.values())).new_zeros(()).float()
            for p in self.classifier.parameters():
                if not isinstance(p, nn.parameter.UninitializedParameter):
                    zero = zero + 0.0 * p.sum()
            return {'aux_lorot_loss': zero, 'aux_lorot_acc': zero.detach()}
        if min(x.shape[-2:]) < 2:
            raise ValueError(f'{type(self).__name__} needs images of at least 2 x 2 pixels, '
                             f'got {tuple(x.shape[-2:])}')
        top, left, size, k, label = self.sample(x.shape[0], x.shape[-2], x.shape[-1], x.device)
        feat = ctx.student.extract_feat(rotate_patches(x, top, left, size, k))
        if feat.dim() != 2:
            raise TypeError(f'{type(self).__name__} needs pooled (N, D) features, got '
                            f'{tuple(feat.shape)}')
        logits = self.classifier(feat).float()
        loss = F.cross_entropy(logits, label)
        acc = (logits.argmax(dim=1) == label).float().mean().detach()
        return {'aux_lorot_loss': self.loss_weight * loss, 'aux_lorot_acc': acc}
