"""Self-supervised rotation prediction (RotNet) as an auxiliary loss."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ssvision.registry import MODELS

from ..network import require
from .base import AuxContext, BaseAuxHead

#: Rotations by 0, 90, 180 and 270 degrees.
NUM_ROTATIONS = 4


def rotate_batch(images: torch.Tensor, k: torch.Tensor | int) -> torch.Tensor:
    """Rotate each image counter-clockwise by ``k * 90`` degrees.

    Args:
        images: ``(N, C, H, W)`` with ``H == W``.
        k: ``(N,)`` long rotation indices (taken mod 4) or one int for all images.

    Returns:
        ``(N, C, H, W)`` rotated images (``torch.rot90`` over ``(H, W)``).
    """
    if images.dim() != 4:
        raise ValueError(f'rotate_batch expects (N, C, H, W) images, got {tuple(images.shape)}')
    if images.shape[-1] != images.shape[-2]:
        raise ValueError('rotation prediction needs square images (a 90 degree rotation '
                         f'changes the shape otherwise), got H x W = {images.shape[-2]} x '
                         f'{images.shape[-1]}; crop or resize the views to a square')
    if isinstance(k, int):
        return torch.rot90(images, k % NUM_ROTATIONS, dims=(2, 3))
    k = k.to(images.device).long() % NUM_ROTATIONS
    all_rot = torch.stack([torch.rot90(images, r, dims=(2, 3)) for r in range(NUM_ROTATIONS)])
    return all_rot[k, torch.arange(images.shape[0], device=images.device)]


@MODELS.register_module()
class RotationHead(BaseAuxHead):
    """Predict which of four rotations was applied to an image.

    The images of ``views`` present in ``ctx.inputs`` are concatenated and the first
    ``max_images`` kept; each is rotated by ``k_i * 90`` degrees with
    ``k_i ~ U{0, 1, 2, 3}`` (``torch.randint`` on the images' device, global RNG), and::

        aux_rot_loss = loss_weight * mean_i CE(W . student.extract_feat(rot(x_i, k_i)) + b, k_i)
        aux_rot_acc  = mean_i [argmax_r logits_ir == k_i]          (detached, logged only)

    Labels are not used, so any view works. The extra forward runs in the student's
    mode (train: the rotated images enter the BN statistics). Needs square images.
    Classification-style: ``extract_feat`` must return pooled ``(N, D)`` features.

    Args:
        loss_weight (float): multiplier. Default 0.5.
        views (Sequence[str]): ``ctx.inputs`` keys to take images from (missing ones are
            skipped). Default ``('sup', 'unsup_teacher')``.
        max_images (int): at most this many images per iteration. Default 64.
        in_features (int | None): size of ``extract_feat``'s output; None takes
            ``student.feat_dim`` at :meth:`setup`. Default None.
    """

    def __init__(self, loss_weight: float = 0.5, views: Sequence[str] = ('sup', 'unsup_teacher'),
                 max_images: int = 64, in_features: int | None = None) -> None:
        super().__init__(loss_weight)
        if isinstance(views, str):
            views = (views,)
        self.views = tuple(views)
        if not self.views:
            raise ValueError('views must name at least one input view')
        if max_images < 1:
            raise ValueError(f'max_images must be >= 1, got {max_images}')
        self.max_images = int(max_images)
        self.classifier = (nn.LazyLinear(NUM_ROTATIONS) if in_features is None
                           else nn.Linear(int(in_features), NUM_ROTATIONS))

    def setup(self, student: nn.Module) -> None:
        """Size the rotation classifier from ``student.feat_dim`` when not given."""
        require(student, 'extract_feat', type(self).__name__)
        if isinstance(self.classifier, nn.LazyLinear):
            self.classifier = nn.Linear(int(student.feat_dim), NUM_ROTATIONS)

    def loss(self, ctx: AuxContext) -> dict[str, torch.Tensor]:
        images = [ctx.inputs[v] for v in self.views if v in ctx.inputs]
        if not images:
            raise KeyError(f'{type(self).__name__}: none of the views {self.views} is in the '
                           f'batch (views: {sorted(ctx.inputs)})')
        x = torch.cat(images, dim=0)[:self.max_images]
        k = torch.randint(0, NUM_ROTATIONS, (x.shape[0],), device=x.device)
        feat = ctx.student.extract_feat(rotate_batch(x, k))
        if feat.dim() != 2:
            raise TypeError(f'{type(self).__name__} needs pooled (N, D) features, got '
                            f'{tuple(feat.shape)}')
        logits = self.classifier(feat).float()
        loss = F.cross_entropy(logits, k)
        acc = (logits.argmax(dim=1) == k).float().mean().detach()
        return {'aux_rot_loss': self.loss_weight * loss, 'aux_rot_acc': acc}
