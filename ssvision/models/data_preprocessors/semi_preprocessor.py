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

    **Strong views on the device** (``batch_augments``, training batches only): a dict
    ``view -> augment config``, e.g. ``dict(unsup_student=dict(type='BatchRandAugment',
    source='unsup_teacher'))``. After the move to the device and before normalisation,
    the view is made by the augment from the ``source`` view (default: the view itself,
    as the CPU pipeline sent it); a view made from another one shares its data samples.
    The CPU pipeline then sends the weak view only and its workers skip RandAugment (see
    :mod:`.batch_augment`). Each batch draws from a generator on the device seeded with
    ``(augment_seed or torch.initial_seed(), rank, iteration)``, so a resumed run makes
    the views it would have made (given the run's ``randomness.seed`` or
    ``augment_seed``), and no random state needs saving. The views are made in float32
    even under AMP.

    Args:
        mean (Sequence[float]): per-channel mean, default ``(127.5,)``.
        std (Sequence[float]): per-channel std, default ``(127.5,)``.
        gray_to_rgb (bool): repeat 1-channel images to 3 channels. Default False.
        non_blocking (bool): asynchronous host-to-device copies.
        batch_augments (dict, optional): see above.
        augment_seed (int, optional): base seed of the batch augments.
    """

    def __init__(self, mean: Sequence[float] = (127.5,), std: Sequence[float] = (127.5,),
                 gray_to_rgb: bool = False, non_blocking: bool = False,
                 batch_augments: dict[str, dict] | None = None,
                 augment_seed: int | None = None) -> None:
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
        self.batch_augments: dict[str, tuple[str, Any]] = {}
        for view, cfg in (batch_augments or {}).items():
            cfg = dict(cfg)
            source = cfg.pop('source', view)
            self.batch_augments[view] = (source, MODELS.build(cfg))
        self.augment_seed = augment_seed
        self._calls = 0

    def _to_device(self, img: torch.Tensor) -> torch.Tensor:
        if img.dim() != 4:
            raise ValueError(f'expected images of shape (N, C, H, W), got {tuple(img.shape)}')
        return img.to(self.device, non_blocking=self._non_blocking).float()

    def _normalize(self, img: torch.Tensor) -> torch.Tensor:
        img = self._to_device(img)
        if self.gray_to_rgb and img.shape[1] == 1:
            img = img.expand(-1, 3, -1, -1)
        channels = img.shape[1]
        if self.mean.numel() not in (1, channels):
            raise ValueError(f'mean has {self.mean.numel()} values but images have '
                             f'{channels} channels')
        return (img - self.mean) / self.std

    def _generator(self) -> torch.Generator:
        """This batch's generator: seeded by (base seed, rank, iteration)."""
        from mmengine.dist import get_rank
        from mmengine.logging import MessageHub
        it = MessageHub.get_current_instance().get_info('iter')
        if it is None:  # outside a runner: count the calls
            it, self._calls = self._calls, self._calls + 1
        from ssvision.datasets.transforms.multi_branch import branch_seed
        base = self.augment_seed if self.augment_seed is not None else torch.initial_seed()
        # SplitMix64 of (base, rank) then of the iteration: no two (rank, iteration)
        # pairs of a run share a stream
        seed = branch_seed(branch_seed(int(base), get_rank()), int(it))
        generator = torch.Generator(device=self.device)
        generator.manual_seed(seed)
        return generator

    def _augment(self, inputs: dict, data_samples) -> dict:
        inputs = {name: self._to_device(img) for name, img in inputs.items()}
        generator = self._generator()
        device_type = self.mean.device.type
        for view, (source, augment) in self.batch_augments.items():
            if source not in inputs:
                raise KeyError(f'batch_augments: view {view!r} is made from {source!r}, '
                               f'which the batch does not hold (views: {sorted(inputs)})')
            # mmengine runs the preprocessor inside the AMP context: the views are made
            # in float32 whatever the training precision (a half-precision affine grid
            # moves pixels by a fraction)
            with torch.autocast(device_type, enabled=False):
                inputs[view] = augment(inputs[source], generator)
            if view != source and isinstance(data_samples, dict) and source in data_samples:
                data_samples.setdefault(view, data_samples[source])
        return inputs

    def forward(self, data: dict, training: bool = False) -> dict[str, Any]:
        inputs = data['inputs']
        data_samples = self.cast_data(data.get('data_samples', {}))
        if isinstance(inputs, dict):
            if training and self.batch_augments:
                inputs = self._augment(inputs, data_samples)
            inputs = {name: self._normalize(img) for name, img in inputs.items()}
        else:
            inputs = self._normalize(inputs)
        return dict(inputs=inputs, data_samples=data_samples)
