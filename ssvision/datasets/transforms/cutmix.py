"""Batch-level CutMix for segmentation, as pure functions over tensors.

Used by an algorithm after collation (not in the per-sample pipeline, which sees one
image at a time): draw boxes with :func:`cutmix_box_masks`, pick partners (e.g.
:func:`cutmix_partners`), then mix the strong views *and* their targets with
:func:`apply_cutmix`::

    out[i] = where(mask[i], x[perm[i]], x[i])

Inside the box, image ``i`` shows image ``perm[i]``; the same box moves the targets
(pseudo-labels computed on the *unmixed* weak views, confidence weights, probabilities,
``valid_mask``), which stay aligned because strong views share the weak geometry (see
:mod:`.seg_augment`). Nothing here modifies its inputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Optional

import torch

__all__ = ['cutmix_box_masks', 'apply_cutmix', 'cutmix_partners']


def cutmix_box_masks(n: int, h: int, w: int,
                     prob: float = 0.5,
                     area_range: Sequence[float] = (0.02, 0.4),
                     ratio_range: Sequence[float] = (0.3, 1 / 0.3),
                     generator: Optional[torch.Generator] = None,
                     device: Optional[torch.device] = None) -> torch.Tensor:
    """One random box per image, each present with probability ``prob``.

    For image ``i``: with probability ``prob`` a box of area ``A = a * h * w``,
    ``a ~ U(area_range)``, and aspect ratio (height / width) ``r``,
    ``log r ~ U(log ratio_range)``: ``bh = clip(round(sqrt(A * r)), 1, h)``,
    ``bw = clip(round(A / bh), 1, w)`` (then ``bh`` is recomputed from ``bw`` when ``bw``
    was clipped), so ``bh * bw`` equals ``A`` up to rounding. The top-left corner is
    uniform over the positions keeping the box inside the image. Otherwise the mask is
    empty (no mixing).

    Args:
        n: batch size ``N``.
        h: height ``H``.
        w: width ``W``.
        prob: probability that an image gets a box.
        area_range: box area as a fraction of ``h * w``, within ``(0, 1]``.
        ratio_range: box height / width range, ``0 < low <= high``.
        generator: CPU ``torch.Generator`` drawing every number (reproducible).
        device: device of the returned mask. Defaults to CPU.

    Returns:
        torch.Tensor: bool ``(N, H, W)``, True inside the box.
    """
    lo, hi = (float(v) for v in area_range)
    rlo, rhi = (float(v) for v in ratio_range)
    if not 0 < lo <= hi <= 1:
        raise ValueError(f'area_range must satisfy 0 < low <= high <= 1, got {area_range}')
    if not 0 < rlo <= rhi:
        raise ValueError(f'ratio_range must satisfy 0 < low <= high, got {ratio_range}')
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f'prob must be in [0, 1], got {prob}')
    if n < 0 or h < 1 or w < 1:
        raise ValueError(f'need n >= 0, h >= 1, w >= 1; got {n}, {h}, {w}')
    # All numbers are drawn (CPU, float64) whatever prob is: the stream has a fixed length.
    u = torch.rand(n, 5, generator=generator, dtype=torch.float64)
    use = u[:, 0] < prob
    area = (lo + (hi - lo) * u[:, 1]) * h * w
    ratio = torch.exp(math.log(rlo) + (math.log(rhi) - math.log(rlo)) * u[:, 2])
    bh = torch.sqrt(area * ratio).round().clamp(1, h)
    bw = (area / bh).round().clamp(1, w)
    bh = torch.where(bw >= w, (area / bw).round().clamp(1, h), bh)
    y0 = torch.floor(u[:, 3] * (h - bh + 1)).clamp(max=h - bh)
    x0 = torch.floor(u[:, 4] * (w - bw + 1)).clamp(max=w - bw)
    rows = torch.arange(h, dtype=torch.float64)[None, :, None]
    cols = torch.arange(w, dtype=torch.float64)[None, None, :]
    inside = ((rows >= y0[:, None, None]) & (rows < (y0 + bh)[:, None, None])
              & (cols >= x0[:, None, None]) & (cols < (x0 + bw)[:, None, None]))
    masks = inside & use[:, None, None]
    return masks.to(device) if device is not None else masks


def cutmix_partners(n: int, generator: Optional[torch.Generator] = None,
                    device: Optional[torch.device] = None) -> torch.Tensor:
    """Partner of each image: ``perm[i] = (i + k) % n`` with ``k ~ U{1, ..., n - 1}``.

    A cyclic shift, so no image is its own partner when ``n > 1`` (``n == 1`` gives
    ``[0]``: mixing with itself changes nothing).

    Returns:
        torch.Tensor: long ``(n,)``.
    """
    k = 0 if n <= 1 else int(torch.randint(1, n, (1,), generator=generator))
    perm = (torch.arange(n) + k) % max(n, 1)
    return perm.to(device) if device is not None else perm


def _mix(x: torch.Tensor, masks: torch.Tensor, perm: torch.Tensor, name: str) -> torch.Tensor:
    n, h, w = masks.shape
    if x.dim() < 3 or x.shape[0] != n or tuple(x.shape[-2:]) != (h, w):
        raise ValueError(f'{name} must be (N, ..., H, W) with N, H, W = {n}, {h}, {w}; '
                         f'got {tuple(x.shape)}')
    m = masks.view(n, *([1] * (x.dim() - 3)), h, w)
    return torch.where(m, x[perm], x)


def apply_cutmix(images: torch.Tensor, box_masks: torch.Tensor, perm: torch.Tensor,
                 *targets: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Paste box ``i`` of image ``perm[i]`` into image ``i``, and the same for targets.

    ``out[i] = where(box_masks[i], x[perm[i]], x[i])`` for ``x`` = ``images`` and each
    target; the partners are read from the unmixed inputs.

    Args:
        images: ``(N, C, H, W)`` (any dtype).
        box_masks: bool ``(N, H, W)`` (:func:`cutmix_box_masks`).
        perm: long ``(N,)``, partner of each image.
        *targets: tensors ``(N, H, W)`` or ``(N, K, H, W)`` (pseudo-label maps, weights,
            probabilities, valid masks).

    Returns:
        tuple[torch.Tensor, ...]: ``(mixed_images, *mixed_targets)``, new tensors (a
        1-tuple without targets).
    """
    if box_masks.dtype != torch.bool or box_masks.dim() != 3:
        raise ValueError(f'box_masks must be bool (N, H, W), got {box_masks.dtype} '
                         f'{tuple(box_masks.shape)}')
    if perm.dim() != 1 or perm.shape[0] != box_masks.shape[0] or \
            perm.dtype not in (torch.int64, torch.int32):
        raise ValueError(f'perm must be an integer (N,) tensor with N = {box_masks.shape[0]}, '
                         f'got {perm.dtype} {tuple(perm.shape)}')
    if images.dim() != 4:
        raise ValueError(f'images must be (N, C, H, W), got {tuple(images.shape)}')
    perm = perm.long()
    out = [_mix(images, box_masks, perm, 'images')]
    out += [_mix(t, box_masks, perm, f'target {j}') for j, t in enumerate(targets)]
    return tuple(out)
