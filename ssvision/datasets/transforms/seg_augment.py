"""Segmentation views: weak (geometric), strong (photometric) and packing.

Mask-aware transforms read ``results['img']`` (uint8 ``(H, W, C)``) and move every mask
present under :data:`SEG_MASK_KEYS` (``gt_seg``, ``true_seg``, ``valid_mask``) with the
same geometry: images are resampled with ``interpolation`` (bilinear by default), masks
with centre-aligned nearest neighbour (``cv2.INTER_NEAREST_EXACT``, which lines up with
bilinear; plain ``INTER_NEAREST`` is shifted by half a pixel). Padding fills images with
``pad_value`` and label maps with ``ignore_index``; ``valid_mask`` is 1 on image pixels
and 0 on padding.

**Views share one geometry.** :class:`SegWeakAugment` is the only geometric transform and
records what it did in ``results['geometry']``. The strong views are *photometric ops on
top of the weak view's output* (as UniMatch and DSSN build them), so a strong view's pixel
``(y, x)`` shows the same scene point as the weak view's, and a pseudo-label computed on
the weak view is a per-pixel target for every strong view. An unlabeled pipeline is::

    [SegWeakAugment(...),                       # seeded by the sample's seed
     MultiBranch(branches=dict(
         unsup_teacher=[PackSegInputs()],
         unsup_student=[SegStrongAugment(), PackSegInputs()],
         unsup_student2=[SegStrongAugment(), PackSegInputs()]))]

Putting ``SegWeakAugment`` *inside* each branch would break this: every branch gets its
own seed from :class:`MultiBranch`, hence its own crop. CutMix between images of a batch
is applied later, on tensors (:mod:`.cutmix`).

Randomness: :class:`~.augment.RandomTransformMixin` (``sample_seed`` when present).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional, Union

import albumentations as A
import cv2
import numpy as np
import torch

from ssvision.registry import TRANSFORMS

from .augment import ConfigMixin, RandomTransformMixin, _restore_channels, _run_albu
from .formatting import _to_python

__all__ = ['SegWeakAugment', 'SegStrongAugment', 'PackSegInputs', 'SEG_MASK_KEYS',
           'IGNORE_INDEX']

IGNORE_INDEX = 255  #: label of pixels no loss looks at (padding, unknown)
SEG_LABEL_KEYS = ('gt_seg', 'true_seg')  #: label maps, padded with ``ignore_index``
VALID_KEY = 'valid_mask'  #: uint8 map, 1 on image pixels, 0 on padding
SEG_MASK_KEYS = SEG_LABEL_KEYS + (VALID_KEY,)

_INTERPOLATIONS = {
    'nearest': cv2.INTER_NEAREST_EXACT,
    'bilinear': cv2.INTER_LINEAR,
    'bicubic': cv2.INTER_CUBIC,
    'area': cv2.INTER_AREA,
}


def _pair(value: Union[int, Sequence[int]], name: str) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)):
        value = (value, value)
    value = tuple(int(v) for v in value)
    if len(value) != 2 or min(value) < 1:
        raise ValueError(f'{name} must be a positive int or (h, w), got {value}')
    return value  # type: ignore[return-value]


def _resize_mask(mask: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Nearest (centre-aligned) resize keeping the dtype (cv2 turns int64 into int32)."""
    dtype = mask.dtype
    src = mask.astype(np.int32) if dtype in (np.int64, np.uint32, bool) else mask
    out = cv2.resize(src, (size_hw[1], size_hw[0]), interpolation=cv2.INTER_NEAREST_EXACT)
    return out.astype(dtype, copy=False)


def _pad_crop_flip(arr: np.ndarray, crop: tuple[int, int, int, int], flip: bool,
                   fill: Any) -> np.ndarray:
    """Crop ``(y, x, h, w)`` of ``arr`` padded at the bottom / right with ``fill``."""
    y, x, h, w = crop
    out = np.empty((h, w) + arr.shape[2:], dtype=arr.dtype)
    out[...] = np.asarray(fill, dtype=arr.dtype)
    src = arr[y:y + h, x:x + w]
    out[:src.shape[0], :src.shape[1]] = src
    if flip:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


@TRANSFORMS.register_module()
class SegWeakAugment(ConfigMixin, RandomTransformMixin):
    """Weak segmentation view: random rescale, pad-if-needed, random crop, h-flip.

    1. Rescale by ``s ~ U(scale_range)``: the image to ``(round(s * H), round(s * W))``
       (at least 1) with ``interpolation``, the masks with nearest neighbour.
    2. Pad at the bottom and right up to ``crop_size`` where smaller (image with
       ``pad_value``, label maps with ``ignore_index``, ``valid_mask`` with 0), so the
       origin does not move.
    3. Crop ``crop_size`` at a uniform top-left ``(y, x)``.
    4. Flip left-right with probability ``flip_prob``.

    Writes ``results['geometry'] = dict(scale=s, crop=(y, x, h, w), flip=bool,
    ori_shape=(H, W), scaled_shape=(sH, sW))`` (crop in the rescaled image's pixels,
    before the flip) and ``results['valid_mask']`` (uint8 ``(h, w)``, 1 on image pixels).
    A view's pixel ``(i, j)`` comes from the rescaled pixel
    ``(y + i, x + (w - 1 - j if flip else j))``.

    Args:
        scale_range (tuple[float, float]): Range of the rescale factor.
            Defaults to (0.5, 2.0).
        crop_size (int | tuple[int, int]): Output ``(h, w)``. Defaults to (64, 64).
        flip_prob (float): Probability of the flip. Defaults to 0.5.
        ignore_index (int): Fill of label maps. Defaults to 255.
        pad_value (int | Sequence[int]): Fill of the image, scalar or per channel.
            Defaults to 0.
        interpolation (str): Image resampling, ``'bilinear'``, ``'nearest'``,
            ``'bicubic'`` or ``'area'``. Defaults to ``'bilinear'``.
        seed (int, optional): Seed of the internal generator used without
            ``sample_seed``. Defaults to None.
    """

    def __init__(self, scale_range: Sequence[float] = (0.5, 2.0),
                 crop_size: Union[int, Sequence[int]] = (64, 64), flip_prob: float = 0.5,
                 ignore_index: int = IGNORE_INDEX, pad_value: Union[int, Sequence[int]] = 0,
                 interpolation: str = 'bilinear', seed: Optional[int] = None) -> None:
        scale_range = tuple(float(s) for s in scale_range)
        if len(scale_range) != 2 or not 0 < scale_range[0] <= scale_range[1]:
            raise ValueError(f'scale_range must be (low, high), 0 < low <= high, got '
                             f'{scale_range}')
        crop_size = _pair(crop_size, 'crop_size')
        if not 0.0 <= flip_prob <= 1.0:
            raise ValueError(f'flip_prob must be in [0, 1], got {flip_prob}')
        if interpolation not in _INTERPOLATIONS:
            raise ValueError(f'interpolation must be one of {sorted(_INTERPOLATIONS)}, got '
                             f'{interpolation!r}')
        if not isinstance(pad_value, (int, np.integer)):
            pad_value = tuple(int(v) for v in pad_value)
        self.scale_range = scale_range
        self.crop_size = crop_size
        self.flip_prob = flip_prob
        self.ignore_index = ignore_index
        self.pad_value = pad_value
        self.interpolation = interpolation
        self._set_cfg_args(scale_range=scale_range, crop_size=crop_size, flip_prob=flip_prob,
                           ignore_index=ignore_index, pad_value=pad_value,
                           interpolation=interpolation, seed=seed)
        self._init_random(seed)

    def __call__(self, results: dict) -> dict:
        img = results['img']
        rng = self.get_rng(results)
        h, w = img.shape[:2]
        scale = float(rng.uniform(*self.scale_range))
        sh, sw = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
        ch, cw = self.crop_size
        y = int(rng.integers(max(sh, ch) - ch + 1))
        x = int(rng.integers(max(sw, cw) - cw + 1))
        flip = bool(rng.random() < self.flip_prob)
        crop = (y, x, ch, cw)

        if (sh, sw) != (h, w):
            scaled = cv2.resize(img, (sw, sh), interpolation=_INTERPOLATIONS[self.interpolation])
            img = _restore_channels(scaled, img)
        results['img'] = _pad_crop_flip(img, crop, flip, self.pad_value)
        if VALID_KEY not in results:
            results[VALID_KEY] = np.ones((h, w), dtype=np.uint8)
        for key in SEG_MASK_KEYS:
            if results.get(key) is None:
                continue
            mask = np.asarray(results[key])
            if mask.shape != (h, w):
                raise ValueError(f'{key} has shape {mask.shape}, image is {(h, w)}')
            if (sh, sw) != (h, w):
                mask = _resize_mask(mask, (sh, sw))
            fill = 0 if key == VALID_KEY else self.ignore_index
            results[key] = _pad_crop_flip(mask, crop, flip, fill)
        results['geometry'] = dict(scale=scale, crop=crop, flip=flip, ori_shape=(h, w),
                                   scaled_shape=(sh, sw))
        return results


def check_photometric_args(color_jitter_prob: float, grayscale_prob: float,
                           blur_prob: float, brightness: float, contrast: float,
                           saturation: float, hue: float,
                           blur_sigma: Sequence[float]) -> tuple[float, float]:
    """Validate the photometric strong view's arguments (:class:`SegStrongAugment` and
    the device version, ``BatchColorAugment``); returns ``blur_sigma`` as floats."""
    for name, p in (('color_jitter_prob', color_jitter_prob),
                    ('grayscale_prob', grayscale_prob), ('blur_prob', blur_prob)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f'{name} must be in [0, 1], got {p}')
    if min(brightness, contrast, saturation) < 0 or not 0 <= hue <= 0.5:
        raise ValueError('brightness, contrast, saturation must be >= 0 and hue in '
                         '[0, 0.5]')
    blur_sigma = tuple(float(s) for s in blur_sigma)
    if len(blur_sigma) != 2 or not 0 < blur_sigma[0] <= blur_sigma[1]:
        raise ValueError(f'blur_sigma must be (low, high), 0 < low <= high, got '
                         f'{blur_sigma}')
    return blur_sigma


@TRANSFORMS.register_module()
class SegStrongAugment(ConfigMixin, RandomTransformMixin):
    """Strong segmentation view: photometric ops only, so every pixel keeps its place.

    Applied in order, each with its own probability:

    * colour jitter (``p = color_jitter_prob``): brightness, contrast and saturation
      factors ``U(max(0, 1 - v), 1 + v)`` and a hue shift ``U(-hue, hue)``
      (``A.ColorJitter``, random order);
    * grayscale (``p = grayscale_prob``), 3 channels kept (``A.ToGray``);
    * Gaussian blur (``p = blur_prob``), ``sigma ~ U(blur_sigma)``, kernel
      ``int(3.5 * sigma) * 2 + 1`` (``A.GaussianBlur``).

    Masks, ``valid_mask`` and ``geometry`` are untouched. Needs an RGB image.

    Args:
        color_jitter_prob (float): Defaults to 0.8.
        grayscale_prob (float): Defaults to 0.2.
        blur_prob (float): Defaults to 0.5.
        brightness (float): Defaults to 0.5.
        contrast (float): Defaults to 0.5.
        saturation (float): Defaults to 0.5.
        hue (float): In ``[0, 0.5]``. Defaults to 0.25.
        blur_sigma (tuple[float, float]): Defaults to (0.1, 2.0).
        seed (int, optional): Seed used without ``sample_seed``. Defaults to None.
    """

    def __init__(self, color_jitter_prob: float = 0.8, grayscale_prob: float = 0.2,
                 blur_prob: float = 0.5, brightness: float = 0.5, contrast: float = 0.5,
                 saturation: float = 0.5, hue: float = 0.25,
                 blur_sigma: Sequence[float] = (0.1, 2.0), seed: Optional[int] = None) -> None:
        blur_sigma = check_photometric_args(color_jitter_prob, grayscale_prob, blur_prob,
                                            brightness, contrast, saturation, hue, blur_sigma)
        self.color_jitter_prob = color_jitter_prob
        self.grayscale_prob = grayscale_prob
        self.blur_prob = blur_prob
        self._set_cfg_args(color_jitter_prob=color_jitter_prob, grayscale_prob=grayscale_prob,
                           blur_prob=blur_prob, brightness=brightness, contrast=contrast,
                           saturation=saturation, hue=hue, blur_sigma=blur_sigma, seed=seed)
        self._init_random(seed)
        self._jitter = A.ColorJitter(
            brightness=(max(0.0, 1 - brightness), 1 + brightness),
            contrast=(max(0.0, 1 - contrast), 1 + contrast),
            saturation=(max(0.0, 1 - saturation), 1 + saturation), hue=(-hue, hue), p=1.0)
        self._gray = A.ToGray(num_output_channels=3, p=1.0)
        self._blur = A.GaussianBlur(blur_limit=0, sigma_limit=blur_sigma, p=1.0)

    def __call__(self, results: dict) -> dict:
        img = results['img']
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f'SegStrongAugment needs an RGB (H, W, 3) image, got {img.shape}')
        rng = self.get_rng(results)
        # One draw per op whether applied or not: the stream does not depend on outcomes.
        apply = rng.random(3) < (self.color_jitter_prob, self.grayscale_prob, self.blur_prob)
        for use, transform in zip(apply, (self._jitter, self._gray, self._blur)):
            seed_rng = np.random.default_rng(int(rng.integers(2**32)))
            if use:
                img = _run_albu(transform, img, seed_rng)
        results['img'] = np.ascontiguousarray(img)
        return results


def _mask_tensor(mask: Any, shape: tuple[int, int], fill: int, dtype: torch.dtype,
                 key: str) -> torch.Tensor:
    if mask is None:
        return torch.full(shape, fill, dtype=dtype)
    mask = np.asarray(mask)
    if mask.shape != shape:
        raise ValueError(f'{key} has shape {mask.shape}, the image is {shape}')
    return torch.from_numpy(np.ascontiguousarray(mask.astype(np.int64))).to(dtype)


@TRANSFORMS.register_module()
class PackSegInputs(ConfigMixin):
    """Ends a segmentation pipeline.

    Returns ``{'inputs': Tensor uint8 (C, H, W), 'data_samples': {...}}`` with
    ``gt_seg`` and ``true_seg`` as long ``(H, W)`` (filled with ``ignore_index`` when
    absent: unlabeled / unknown), ``valid_mask`` bool ``(H, W)`` (all True when absent)
    and every key of ``meta_keys`` (-1 when absent).

    Args:
        meta_keys (Sequence[str]): Scalar keys copied into ``data_samples``.
            Defaults to ``('sample_idx',)``.
        ignore_index (int): Fill of absent label maps. Defaults to 255.
    """

    def __init__(self, meta_keys: Sequence[str] = ('sample_idx',),
                 ignore_index: int = IGNORE_INDEX) -> None:
        self.meta_keys = tuple(meta_keys)
        self.ignore_index = ignore_index
        self._set_cfg_args(meta_keys=self.meta_keys, ignore_index=ignore_index)

    def __call__(self, results: dict) -> dict:
        img = np.asarray(results['img'])
        if img.ndim == 2:
            img = img[..., None]
        if img.ndim != 3 or img.dtype != np.uint8:
            raise ValueError(f'expected a uint8 (H, W, C) image, got {img.dtype} {img.shape}')
        shape = img.shape[:2]
        inputs = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        data_samples: dict[str, Any] = {
            key: _mask_tensor(results.get(key), shape, self.ignore_index, torch.long, key)
            for key in SEG_LABEL_KEYS}
        data_samples[VALID_KEY] = _mask_tensor(results.get(VALID_KEY), shape, 1, torch.bool,
                                               VALID_KEY)
        for key in self.meta_keys:
            data_samples[key] = _to_python(results.get(key, -1))
        return {'inputs': inputs, 'data_samples': data_samples}
