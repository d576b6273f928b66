"""Resize to one size, for classification images of many sizes (users' own photos)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import cv2
import numpy as np

from ssvision.registry import TRANSFORMS

from .augment import ConfigMixin, _restore_channels

__all__ = ['ResizeImage', 'RESIZE_FITS']

#: how the image meets the target size
RESIZE_FITS = ('crop', 'stretch')
#: results keys a plain image resize would leave misaligned
_GEOMETRY_KEYS = ('gt_seg', 'true_seg', 'valid_mask', 'gt_bboxes', 'true_bboxes')


@TRANSFORMS.register_module()
class ResizeImage(ConfigMixin):
    """Resize ``results['img']`` (uint8 ``(H, W, C)``, C = 1 or 3) to ``(h, w)``; no
    randomness.

    * ``fit='crop'`` (default): scale by ``s = max(h / H, w / W)`` so the image covers the
      target with its aspect ratio kept, then cut the centre ``(h, w)``;
    * ``fit='stretch'``: resize to ``(h, w)`` directly (the aspect ratio changes).

    Shrinking uses area averaging (``cv2.INTER_AREA``, no aliasing), enlarging bilinear
    interpolation. Classification only: a results dict with masks or boxes is refused
    (they would not follow; segmentation and detection views resize them themselves).

    Args:
        size (int | tuple[int, int]): target ``(h, w)``; an int is a square.
        fit (str): ``'crop'`` or ``'stretch'``.
    """

    def __init__(self, size: Union[int, Sequence[int]], fit: str = 'crop') -> None:
        size = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
        if len(size) != 2 or min(int(v) for v in size) < 1:
            raise ValueError(f'size must be a positive int or (h, w), got {size}')
        if fit not in RESIZE_FITS:
            raise ValueError(f'fit must be one of {RESIZE_FITS}, got {fit!r}')
        self.size = (int(size[0]), int(size[1]))
        self.fit = fit
        self._set_cfg_args(size=self.size, fit=fit)

    def __call__(self, results: dict) -> dict:
        present = [k for k in _GEOMETRY_KEYS if results.get(k) is not None]
        if present:
            raise ValueError(f'ResizeImage resizes images only, but the results hold '
                             f'{present}; use the segmentation / detection views')
        img = results['img']
        h, w = self.size
        ih, iw = img.shape[:2]
        if self.fit == 'crop':
            s = max(h / ih, w / iw)
            sh, sw = max(h, round(ih * s)), max(w, round(iw * s))
        else:
            sh, sw = h, w
        if (sh, sw) != (ih, iw):
            shrink = sh * sw < ih * iw
            out = cv2.resize(img, (sw, sh),
                             interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
            img = _restore_channels(out, img)
        y, x = (sh - h) // 2, (sw - w) // 2
        results['img'] = np.ascontiguousarray(img[y:y + h, x:x + w])
        return results
