"""Packing transforms: turn a results dict into model inputs and data samples."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ssvision.registry import TRANSFORMS

from .augment import ConfigMixin

__all__ = ['PackClsInputs']


def _to_python(value: Any) -> Any:
    """Numpy scalars / 0-d arrays -> Python scalars; anything else unchanged."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value.item()
    return value


@TRANSFORMS.register_module()
class PackClsInputs(ConfigMixin):
    """Ends a classification pipeline.

    Turns ``results['img']`` (uint8 ``(H, W, C)``; a 2-D image gets a channel axis) into a
    contiguous ``torch.uint8`` tensor ``(C, H, W)`` and collects ``meta_keys`` into the
    data sample; a missing key (for example ``true_label`` of a labeled sample) becomes -1.

    Args:
        meta_keys (Sequence[str]): Keys copied into ``data_samples``.
            Defaults to ``('gt_label', 'true_label', 'sample_idx')``.

    Returns from ``__call__``:
        ``{'inputs': Tensor (C, H, W) uint8, 'data_samples': {key: value}}``.
    """

    def __init__(self, meta_keys: Sequence[str] = ('gt_label', 'true_label', 'sample_idx')) -> None:
        self.meta_keys = tuple(meta_keys)
        self._set_cfg_args(meta_keys=self.meta_keys)

    def __call__(self, results: dict) -> dict:
        img = np.asarray(results['img'])
        if img.ndim == 2:
            img = img[..., None]
        if img.ndim != 3:
            raise ValueError(f'expected an (H, W, C) image, got shape {img.shape}')
        if img.dtype != np.uint8:
            raise TypeError(f'expected a uint8 image, got {img.dtype}')
        inputs = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        data_samples = {key: _to_python(results.get(key, -1)) for key in self.meta_keys}
        return {'inputs': inputs, 'data_samples': data_samples}
