"""DSSN's adaptive binary mask: per image, each class keeps the pixels near its own peak."""

from __future__ import annotations

import torch

from ssvision.registry import MODELS

from .base import BaseSelector


def class_peak_mask(probs: torch.Tensor, high: float = 0.92, scale: float = 0.96
                    ) -> torch.Tensor:
    """Pixels within ``scale`` of their class's peak confidence in their image.

    For image ``n`` and class ``c`` let ``m_nc = max_p probs[n, c, p]`` (over every
    pixel of the image) and ``t_nc = scale * m_nc`` if ``m_nc > high`` else ``m_nc``.
    Pixel ``p`` is kept iff ``probs[n, c, p] > t_nc`` for some class ``c`` (strict).
    A class whose peak is ``<= high`` keeps nothing (no probability exceeds its own
    maximum). With ``high * scale >= 0.5`` the class that passes is the argmax, and at
    most one class passes per pixel.

    Args:
        probs: ``(N, C, *)`` probabilities (each position sums to 1 over ``C``).
        high: peak a class must exceed for its pixels to count. Default 0.92.
        scale: fraction of the peak a kept pixel must exceed. Default 0.96.

    Returns:
        ``(N, *)`` bool mask.
    """
    flat = probs.reshape(probs.shape[0], probs.shape[1], -1)
    peak = flat.amax(dim=2, keepdim=True)
    thr = torch.where(peak > high, peak * scale, peak)
    return (flat > thr).any(dim=1).reshape(probs.shape[:1] + probs.shape[2:])


@MODELS.register_module()
class ClassPeakSelector(BaseSelector):
    """DSSN's pseudo-label selection (the authors' ``get_adaptive_binary_mask``).

    Labels are the argmax; the weight is 1 on the pixels :func:`class_peak_mask` keeps
    and 0 elsewhere. Per image each class keeps the pixels whose probability exceeds
    ``scale`` times the class's peak in that image, and only classes whose peak exceeds
    ``high`` keep anything: a confident class keeps its most confident region, an
    unsure one nothing, and no class is measured against another's confidence. The
    authors' Pascal VOC / COCO setting is ``high=0.92, scale=0.96`` (the default);
    their Cityscapes script computes ``high=0.3, scale=0.5`` and then keeps every pixel
    (``keep_all=True``). Stateless; for a classification batch ``(N, C)`` every image
    is one position, so the rule reduces to a threshold of ``high``.

    Args:
        high (float): peak above which a class keeps pixels. Default 0.92.
        scale (float): fraction of the peak a kept pixel must exceed. Default 0.96.
        keep_all (bool): keep every pixel (the Cityscapes script). Default False.
    """

    def __init__(self, high: float = 0.92, scale: float = 0.96, keep_all: bool = False
                 ) -> None:
        super().__init__()
        if not 0.0 <= high <= 1.0 or not 0.0 < scale <= 1.0:
            raise ValueError(f'high must be in [0, 1] and scale in (0, 1], got {high}, '
                             f'{scale}')
        self.high, self.scale, self.keep_all = float(high), float(scale), bool(keep_all)

    def select(self, probs: torch.Tensor,
               sample_idx: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        labels = probs.argmax(dim=1)
        if self.keep_all:
            return labels, torch.ones_like(labels, dtype=probs.dtype)
        return labels, class_peak_mask(probs, self.high, self.scale).to(probs.dtype)

    def extra_repr(self) -> str:
        return f'high={self.high}, scale={self.scale}, keep_all={self.keep_all}'
