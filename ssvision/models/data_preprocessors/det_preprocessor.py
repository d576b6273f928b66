"""Detection batches: uint8 views to float images on the device, boxes moved alike."""

from __future__ import annotations

import torch
from mmengine.model import BaseDataPreprocessor

from ssvision.registry import MODELS
from ssvision.structures import DetInstances


@MODELS.register_module()
class DetDataPreprocessor(BaseDataPreprocessor):
    """uint8 images (a ``(N, 3, H, W)`` tensor or a list of ``(3, H, W)``, per view) to
    lists of float ``[0, 1]`` tensors on the device; data samples (boxes included) moved
    alike. Normalisation is the detector's own (torchvision's transform)."""

    def _images(self, x):
        if isinstance(x, torch.Tensor) and x.dim() == 4:
            x = list(x)
        if not isinstance(x, (list, tuple)):
            raise TypeError(f'expected a (N, 3, H, W) tensor or a list of images, got '
                            f'{type(x).__name__}')
        return [self.cast_data(img).float().div_(255.0) for img in x]

    def _samples(self, s):
        if isinstance(s, DetInstances):
            return s.to(self.device)
        if isinstance(s, dict):
            return {k: self._samples(v) for k, v in s.items()}
        if isinstance(s, list):
            return [self._samples(v) for v in s]
        if isinstance(s, torch.Tensor):
            return s.to(self.device)
        return s

    def forward(self, data: dict, training: bool = False) -> dict:
        inputs, samples = data['inputs'], data.get('data_samples')
        if isinstance(inputs, dict):
            inputs = {k: self._images(v) for k, v in inputs.items()}
        else:
            inputs = self._images(inputs)
        return {'inputs': inputs, 'data_samples': self._samples(samples)}
