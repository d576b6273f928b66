"""Moves a (possibly multi-view) batch to the device and normalises its images."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from mmengine.model import BaseDataPreprocessor

from ssvision.registry import MODELS


@MODELS.register_module()
class SemiDataPreprocessor(BaseDataPreprocessor):
    """Normalises every view of a batch: ``x = (img - mean) / std``.

    ``inputs`` is a ``(N, C, H, W)`` uint8 tensor or a dict of them (one per view);
    ``data_samples`` is moved to the device unchanged. ``mean`` and ``std`` are per
    channel in 0..255 units; a single value serves every channel. Images with one
    channel are repeated to three when ``gray_to_rgb`` is set (for RGB backbones).

    Args:
        mean (Sequence[float]): per-channel mean, default ``(127.5,)``.
        std (Sequence[float]): per-channel std, default ``(127.5,)``.
        gray_to_rgb (bool): repeat 1-channel images to 3 channels. Default False.
        non_blocking (bool): asynchronous host-to-device copies.
    """

    def __init__(self, mean: Sequence[float] = (127.5,), std: Sequence[float] = (127.5,),
                 gray_to_rgb: bool = False, non_blocking: bool = False) -> None:
        super().__init__(non_blocking=non_blocking)
        if len(mean) != len(std):
            raise ValueError(f'mean {mean} and std {std} must have the same length')
        if any(s <= 0 for s in std):
            raise ValueError(f'std must be > 0, got {std}')
        self.register_buffer('mean', torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1),
                             persistent=False)
        self.register_buffer('std', torch.tensor(std, dtype=torch.float32).view(-1, 1, 1),
                             persistent=False)
        self.gray_to_rgb = gray_to_rgb

    def _normalize(self, img: torch.Tensor) -> torch.Tensor:
        if img.dim() != 4:
            raise ValueError(f'expected images of shape (N, C, H, W), got {tuple(img.shape)}')
        img = img.to(self.device, non_blocking=self._non_blocking).float()
        if self.gray_to_rgb and img.shape[1] == 1:
            img = img.expand(-1, 3, -1, -1)
        channels = img.shape[1]
        if self.mean.numel() not in (1, channels):
            raise ValueError(f'mean has {self.mean.numel()} values but images have '
                             f'{channels} channels')
        return (img - self.mean) / self.std

    def forward(self, data: dict, training: bool = False) -> dict[str, Any]:
        inputs = data['inputs']
        if isinstance(inputs, dict):
            inputs = {name: self._normalize(img) for name, img in inputs.items()}
        else:
            inputs = self._normalize(inputs)
        data_samples = self.cast_data(data.get('data_samples', {}))
        return dict(inputs=inputs, data_samples=data_samples)
