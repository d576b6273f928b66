"""Batch mixers: mix the student's unlabeled views and their pseudo-labels alike."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ssvision.registry import MODELS

__all__ = ['UnlabeledCutMix']


@MODELS.register_module()
class UnlabeledCutMix:
    """CutMix between the unlabeled images of a batch (dense tasks; UniMatch and DSSN
    use it with ``prob=0.5``).

    One set of boxes and partners ``perm`` (no image is its own partner) is drawn per
    call and applied to every student view and, identically, to the teacher's
    probabilities, pseudo-labels and weights, so each mixed pixel is supervised by the
    pseudo-label of the image it came from. Boxes come from
    :func:`~ssvision.datasets.transforms.cutmix.cutmix_box_masks` with probability
    ``prob`` per image. The recipe builds it from ``semi_train_cfg.cutmix_prob``.

    Args:
        prob (float): probability that an image gets a box from its partner.
    """

    def __init__(self, prob: float = 0.5) -> None:
        if not 0 <= prob <= 1:
            raise ValueError(f'cutmix prob must be in [0, 1], got {prob}')
        self.prob = float(prob)

    def __call__(self, inputs: dict, views: Sequence[str], probs: torch.Tensor,
                 labels: torch.Tensor, weight: torch.Tensor,
                 *extra: torch.Tensor) -> tuple:
        """Returns a shallow copy of ``inputs`` with the ``views`` mixed, and the mixed
        ``probs`` ``(N, C, H, W)``, ``labels`` and ``weight`` ``(N, H, W)``, then each of
        ``extra`` (per-pixel maps ``(N, H, W)``, e.g. the valid mask) mixed alike."""
        from ssvision.datasets.transforms.cutmix import (
            apply_cutmix,
            cutmix_box_masks,
            cutmix_partners,
        )
        if probs.dim() != 4:
            raise ValueError('cutmix_prob > 0 needs dense predictions (N, C, H, W); got '
                             f'{tuple(probs.shape)}')
        n, _, h, w = probs.shape
        masks = cutmix_box_masks(n, h, w, prob=self.prob, device=probs.device)
        perm = cutmix_partners(n, device=probs.device)
        inputs = dict(inputs)
        for view in views:
            (inputs[view],) = apply_cutmix(inputs[view], masks, perm)
        mixed = apply_cutmix(probs, masks, perm, labels, weight, *extra)
        return (inputs, *mixed)
