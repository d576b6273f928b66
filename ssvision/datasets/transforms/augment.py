"""Image augmentations for classification pipelines (weak, RandAugment, Cutout).

All transforms are plain ``dict -> dict`` callables that read and write ``results['img']``
(``np.ndarray`` uint8 ``(H, W, C)``, C = 1 or 3; a gray image keeps its channel axis).

Randomness lives in one place, :meth:`RandomTransformMixin.get_rng`: when
``results['sample_seed']`` is present, the generator is a counter-based Philox keyed by
``(sample_seed, salt)`` with a fixed per-class ``salt``, so a sample's augmentation depends
only on its seed (any process, any worker). Without a sample seed the
transform's own generator is used, seeded by its optional ``seed`` argument (re-created in
each dataloader worker so that workers do not repeat each other).
"""

from __future__ import annotations

import copy
import math
import os
import zlib
from typing import Any, Callable, Optional, Sequence, Union

import albumentations as A
import cv2
import numpy as np

from ssvision.registry import TRANSFORMS

__all__ = [
    'ConfigMixin', 'RandomTransformMixin', 'WeakAugment', 'RandAugment', 'Cutout',
    'RANDAUGMENT_OPS', 'cutout',
]

_U32 = 2**32
_U64 = 2**64


class ConfigMixin:
    """Gives a transform ``__repr__`` and ``to_cfg`` from its constructor arguments.

    Subclasses call :meth:`_set_cfg_args` in ``__init__`` with every constructor argument,
    in signature order. ``repr(TRANSFORMS.build(t.to_cfg())) == repr(t)`` then holds.
    """

    _cfg_args: dict

    def _set_cfg_args(self, **kwargs: Any) -> None:
        self._cfg_args = copy.deepcopy(kwargs)

    def to_cfg(self) -> dict:
        """Returns the config dict (``type`` + constructor arguments) rebuilding this transform.

        Returns:
            dict: ``dict(type=ClassName, **args)``, buildable by ``TRANSFORMS.build``.
        """
        return dict(type=type(self).__name__, **copy.deepcopy(self._cfg_args))

    def __repr__(self) -> str:
        args = ', '.join(f'{k}={v!r}' for k, v in self._cfg_args.items())
        return f'{type(self).__name__}({args})'


class RandomTransformMixin:
    """Per-sample random generator: from ``results['sample_seed']`` or an internal one.

    Subclasses call :meth:`_init_random` in ``__init__`` and :meth:`get_rng` in ``__call__``.
    The salt is derived from the class name, so two different transforms seeded by the same
    ``sample_seed`` draw independent numbers.
    """

    _seed: Optional[int]
    _rng: Optional[np.random.Generator]
    _rng_pid: Optional[int]

    def _init_random(self, seed: Optional[int]) -> None:
        self._seed = seed
        self._rng = None
        self._rng_pid = None
        self._salt = zlib.crc32(type(self).__name__.encode())

    def _internal_rng(self) -> np.random.Generator:
        pid = os.getpid()
        if self._rng is None or self._rng_pid != pid:
            if self._seed is None:
                self._rng = np.random.default_rng()
            else:
                # A forked dataloader worker gets its own stream (worker id 0 -> 1, ...).
                import torch.utils.data

                info = torch.utils.data.get_worker_info()
                worker = 0 if info is None else info.id + 1
                self._rng = np.random.default_rng(
                    [int(self._seed) % _U64, self._salt, worker])
            self._rng_pid = pid
        return self._rng

    def get_rng(self, results: dict) -> np.random.Generator:
        """Returns the generator for one call.

        With a ``sample_seed``: a Philox generator keyed by ``(sample_seed, salt)``, its
        counter at 0. Philox is counter-based, so distinct keys give independent streams
        without seeding work: the transform keeps one generator and re-keys it per call
        (about 4 µs, against about 20 µs for ``np.random.default_rng([seed, salt])``,
        whose seed hashing was a sixth of a weak view's cost). The generator is valid
        until the transform's next call, and a transform instance is not to be called
        from several threads at once (DataLoader workers are processes, each with its
        own copy).

        Args:
            results (dict): The results dict; its ``sample_seed`` is used when present.

        Returns:
            np.random.Generator: The generator of ``(sample_seed, salt)``, or the
            transform's internal generator when there is no ``sample_seed``.
        """
        seed = results.get('sample_seed')
        if seed is None:
            return self._internal_rng()
        gen = self.__dict__.get('_keyed')
        if gen is None:
            gen = self._keyed = np.random.Generator(np.random.Philox(key=0))
        gen.bit_generator.state = {
            'bit_generator': 'Philox',
            'state': {'counter': np.zeros(4, dtype=np.uint64),
                      'key': np.array([int(seed) % _U64, self._salt], dtype=np.uint64)},
            'buffer': np.zeros(4, dtype=np.uint64), 'buffer_pos': 4, 'has_uint32': 0,
            'uinteger': 0}
        return gen

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        if self._seed is not None:
            state['_rng'] = None  # re-derived in the new process
            state['_rng_pid'] = None
        return state


def _restore_channels(out: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Gives ``out`` the channel axis of ``ref`` back (cv2 drops a single channel)."""
    if out.ndim == 2 and ref.ndim == 3:
        out = out[..., None]
    return np.ascontiguousarray(out)


def _run_albu(transform: Callable, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Runs an albumentations transform / Compose seeded from ``rng`` on one image."""
    transform.set_random_seed(int(rng.integers(_U32)))
    return _restore_channels(transform(image=img)['image'], img)


_PAD_MODES = {
    'reflect': cv2.BORDER_REFLECT_101,  # torchvision / numpy 'reflect' (edge not repeated)
    'symmetric': cv2.BORDER_REFLECT,  # edge repeated
    'edge': cv2.BORDER_REPLICATE,
    'constant': cv2.BORDER_CONSTANT,
    'wrap': cv2.BORDER_WRAP,
}


@TRANSFORMS.register_module()
class WeakAugment(ConfigMixin, RandomTransformMixin):
    """FixMatch weak view: random horizontal flip, then pad-and-random-crop (translation).

    The image is flipped with probability ``flip_prob``, padded by
    ``round(pad_ratio * H)`` rows above and below and ``round(pad_ratio * W)`` columns left
    and right, and cropped back to ``(H, W)`` at a uniform offset. Three draws per call
    (flip, row offset, column offset) and one OpenCV border call: about 25 µs for a
    32x32 image, 5x less than the same ops as an albumentations ``Compose`` with its
    per-call seeding (the version before 2026-12-02; same law, other draws).

    Args:
        flip_prob (float): Probability of the horizontal flip. Defaults to 0.5.
        pad_ratio (float): Padding on each side as a fraction of the image size.
            Defaults to 0.125 (4 pixels on a 32-pixel image).
        pad_mode (str): ``'reflect'`` (edge pixel not repeated), ``'symmetric'``,
            ``'edge'``, ``'constant'`` (zeros) or ``'wrap'``. Defaults to ``'reflect'``.
        seed (int, optional): Seed of the internal generator used when the results carry
            no ``sample_seed``. Defaults to None (fresh entropy).
    """

    def __init__(self, flip_prob: float = 0.5, pad_ratio: float = 0.125, pad_mode: str = 'reflect',
                 seed: Optional[int] = None) -> None:
        if not 0.0 <= flip_prob <= 1.0:
            raise ValueError(f'flip_prob must be in [0, 1], got {flip_prob}')
        if pad_ratio < 0:
            raise ValueError(f'pad_ratio must be >= 0, got {pad_ratio}')
        if pad_mode not in _PAD_MODES:
            raise ValueError(f'pad_mode must be one of {sorted(_PAD_MODES)}, got {pad_mode!r}')
        self.flip_prob = flip_prob
        self.pad_ratio = pad_ratio
        self.pad_mode = pad_mode
        self._set_cfg_args(flip_prob=flip_prob, pad_ratio=pad_ratio, pad_mode=pad_mode,
                           seed=seed)
        self._init_random(seed)

    def __call__(self, results: dict) -> dict:
        img = results['img']
        rng = self.get_rng(results)
        h, w = img.shape[:2]
        pad_h, pad_w = int(round(self.pad_ratio * h)), int(round(self.pad_ratio * w))
        flip = rng.random() < self.flip_prob
        y, x = int(rng.integers(2 * pad_h + 1)), int(rng.integers(2 * pad_w + 1))
        if flip:
            img = img[:, ::-1]
        if pad_h or pad_w:
            padded = cv2.copyMakeBorder(np.ascontiguousarray(img), pad_h, pad_h, pad_w, pad_w,
                                        _PAD_MODES[self.pad_mode], value=0)
            img = _restore_channels(padded, img)[y:y + h, x:x + w]
        results['img'] = np.ascontiguousarray(img)
        return results


def cutout(img: np.ndarray, side: int, fill: Union[int, Sequence[int]],
           rng: np.random.Generator) -> np.ndarray:
    """Fills one ``side x side`` square at a random centre (may be partly outside).

    Args:
        img (np.ndarray): ``(H, W, C)`` or ``(H, W)`` image; not modified.
        side (int): Side of the square in pixels; ``<= 0`` returns a copy.
        fill (int | Sequence[int]): Fill value (scalar or one per channel).
        rng (np.random.Generator): Generator drawing the centre.

    Returns:
        np.ndarray: The image with the hole.
    """
    out = img.copy()
    if side <= 0:
        return out
    h, w = img.shape[:2]
    cy, cx = int(rng.integers(h)), int(rng.integers(w))
    y0, x0 = cy - side // 2, cx - side // 2
    y1, x1 = min(y0 + side, h), min(x0 + side, w)
    y0, x0 = max(y0, 0), max(x0, 0)
    out[y0:y1, x0:x1] = np.asarray(fill, dtype=img.dtype)
    return out


@TRANSFORMS.register_module()
class Cutout(ConfigMixin, RandomTransformMixin):
    """Cutout: one square hole filled with a constant.

    The square has side ``round(ratio * min(H, W))`` (fixed, as in FixMatch's strong
    augmentation) and a centre drawn uniformly over the image, so it may be partly outside.

    Args:
        ratio (float): Side of the hole as a fraction of ``min(H, W)``. Defaults to 0.5.
        fill (int | Sequence[int]): Fill value, scalar or one per channel. Defaults to 128.
        prob (float): Probability of applying the hole. Defaults to 1.0.
        seed (int, optional): Seed of the internal generator used when the results carry
            no ``sample_seed``. Defaults to None.
    """

    def __init__(self, ratio: float = 0.5, fill: Union[int, Sequence[int]] = 128, prob: float = 1.0,
                 seed: Optional[int] = None) -> None:
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f'ratio must be in [0, 1], got {ratio}')
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f'prob must be in [0, 1], got {prob}')
        self.ratio = ratio
        self.fill = fill
        self.prob = prob
        self._set_cfg_args(ratio=ratio, fill=fill, prob=prob, seed=seed)
        self._init_random(seed)

    def __call__(self, results: dict) -> dict:
        img = results['img']
        rng = self.get_rng(results)
        if rng.random() < self.prob:
            side = int(round(self.ratio * min(img.shape[:2])))
            results['img'] = cutout(img, side, self.fill, rng)
        return results


# Name -> signed (a random sign is drawn for signed ops).
RANDAUGMENT_OPS: dict[str, bool] = {
    'Identity': False,
    'AutoContrast': False,
    'Equalize': False,
    'Rotate': True,
    'Solarize': False,
    'Color': True,
    'Posterize': False,
    'Contrast': True,
    'Brightness': True,
    'Sharpness': False,
    'ShearX': True,
    'ShearY': True,
    'TranslateX': True,
    'TranslateY': True,
}

_MAX_ROTATE = 30.0  # degrees
_MAX_SHEAR = math.degrees(math.atan(0.3))  # ~16.7 degrees: PIL shear factor 0.3
_MAX_TRANSLATE = 0.3  # fraction of the image side
_MAX_ENHANCE = 0.9  # enhancement factor 1 +- 0.9
_MAX_SHARPEN = 0.9  # Sharpen blend alpha


@TRANSFORMS.register_module()
class RandAugment(ConfigMixin, RandomTransformMixin):
    """RandAugment with a fixed magnitude, followed by Cutout (FixMatch strong view).

    Each call picks ``num_ops`` ops uniformly (with replacement) from ``ops`` and applies
    each at strength ``s = magnitude / max_magnitude`` of its range below; a signed op
    gets a random sign. Then :func:`cutout` with side ``round(cutout_ratio * min(H, W))``
    (skipped when ``cutout_ratio`` is None). Geometric ops fill uncovered pixels with
    ``fill``. Works on gray (C = 1) and RGB images.

    ============  ======================================  ======  ==========================
    op            parameter at strength ``s``             signed  implementation
    ============  ======================================  ======  ==========================
    Identity      --                                      no      none
    AutoContrast  -- (per-channel min/max stretch)        no      ``A.AutoContrast``
    Equalize      -- (per-channel histogram equalisation) no      ``A.Equalize``
    Rotate        angle ``30 * s`` degrees                yes     ``A.Affine(rotate)``
    Solarize      invert pixels ``>= 255 * (1 - s)``      no      ``A.Solarize``
                  (identity at ``s = 0``)
    Color         saturation factor ``1 + 0.9 * s``       yes     ``A.ColorJitter``
                  (identity on gray images)
    Posterize     keep ``8 - round(4 * s)`` bits          no      ``A.Posterize``
    Contrast      contrast factor ``1 + 0.9 * s``         yes     ``A.ColorJitter``
    Brightness    brightness factor ``1 + 0.9 * s``       yes     ``A.ColorJitter``
    Sharpness     sharpen blend alpha ``0.9 * s``         no      ``A.Sharpen``
    ShearX        shear ``16.7 * s`` degrees (factor 0.3)  yes     ``A.Affine(shear)``
    ShearY        shear ``16.7 * s`` degrees (factor 0.3)  yes     ``A.Affine(shear)``
    TranslateX    shift ``0.3 * s`` of the width          yes     ``A.Affine(translate)``
    TranslateY    shift ``0.3 * s`` of the height         yes     ``A.Affine(translate)``
    ============  ======================================  ======  ==========================

    Sharpness is unsigned: albumentations' ``Sharpen`` cannot blur (PIL's factor < 1).

    Args:
        num_ops (int): Number of ops applied per call. Defaults to 2.
        magnitude (float): Strength, in ``[0, max_magnitude]``. Defaults to 10.
        max_magnitude (float): Magnitude of full strength. Defaults to 10.
        ops (Sequence[str], optional): Names of the ops to choose from (see the table).
            Defaults to None (all of them).
        cutout_ratio (float, optional): Cutout side as a fraction of ``min(H, W)``;
            None disables Cutout. Defaults to 0.5.
        fill (int): Fill value of geometric ops and Cutout. Defaults to 128.
        seed (int, optional): Seed of the internal generator used when the results carry
            no ``sample_seed``. Defaults to None.
    """

    def __init__(self, num_ops: int = 2, magnitude: float = 10, max_magnitude: float = 10,
                 ops: Optional[Sequence[str]] = None, cutout_ratio: Optional[float] = 0.5,
                 fill: int = 128, seed: Optional[int] = None) -> None:
        if num_ops < 0:
            raise ValueError(f'num_ops must be >= 0, got {num_ops}')
        if max_magnitude <= 0 or not 0 <= magnitude <= max_magnitude:
            raise ValueError(
                f'need 0 <= magnitude <= max_magnitude, max_magnitude > 0; got '
                f'magnitude={magnitude}, max_magnitude={max_magnitude}')
        if ops is not None:
            ops = tuple(ops)
            unknown = [op for op in ops if op not in RANDAUGMENT_OPS]
            if unknown or not ops:
                raise ValueError(
                    f'unknown or empty ops {unknown}; choose from {list(RANDAUGMENT_OPS)}')
        if cutout_ratio is not None and not 0.0 <= cutout_ratio <= 1.0:
            raise ValueError(f'cutout_ratio must be in [0, 1] or None, got {cutout_ratio}')
        self.num_ops = num_ops
        self.magnitude = magnitude
        self.max_magnitude = max_magnitude
        self.ops = ops
        self.cutout_ratio = cutout_ratio
        self.fill = fill
        self._set_cfg_args(num_ops=num_ops, magnitude=magnitude, max_magnitude=max_magnitude,
                           ops=ops, cutout_ratio=cutout_ratio, fill=fill, seed=seed)
        self._init_random(seed)
        self._op_names = list(ops if ops is not None else RANDAUGMENT_OPS)
        strength = magnitude / max_magnitude
        # name -> (transform for sign +1, transform for sign -1); None = identity.
        self._op_transforms = {
            name: (self._build_op(name, strength), self._build_op(name, -strength))
            for name in self._op_names
        }

    def _build_op(self, name: str, s: float) -> Optional[A.BasicTransform]:
        """The albumentations transform of op ``name`` at signed strength ``s``."""
        fill = self.fill

        def jitter(brightness: float = 1.0, contrast: float = 1.0,
                   saturation: float = 1.0) -> A.ColorJitter:
            return A.ColorJitter(brightness=(brightness, brightness),
                                 contrast=(contrast, contrast),
                                 saturation=(saturation, saturation), hue=(0.0, 0.0), p=1.0)

        def affine(**kwargs: Any) -> A.Affine:
            return A.Affine(**kwargs, interpolation=cv2.INTER_LINEAR,
                            border_mode=cv2.BORDER_CONSTANT, fill=fill, p=1.0)

        if name == 'Identity':
            return None
        if name == 'AutoContrast':
            return A.AutoContrast(p=1.0)
        if name == 'Equalize':
            return A.Equalize(p=1.0)
        if name == 'Rotate':
            return affine(rotate=(_MAX_ROTATE * s, _MAX_ROTATE * s))
        if name == 'Solarize':
            threshold = 1.0 - abs(s)
            return None if threshold >= 1.0 else A.Solarize(
                threshold_range=(threshold, threshold), p=1.0)
        if name == 'Color':
            return jitter(saturation=1.0 + _MAX_ENHANCE * s)
        if name == 'Posterize':
            bits = 8 - int(round(4 * abs(s)))
            return None if bits >= 8 else A.Posterize(num_bits=bits, p=1.0)
        if name == 'Contrast':
            return jitter(contrast=1.0 + _MAX_ENHANCE * s)
        if name == 'Brightness':
            return jitter(brightness=1.0 + _MAX_ENHANCE * s)
        if name == 'Sharpness':
            alpha = _MAX_SHARPEN * abs(s)
            return A.Sharpen(alpha=(alpha, alpha), lightness=(1.0, 1.0), p=1.0)
        if name in ('ShearX', 'ShearY'):
            v = _MAX_SHEAR * s
            sx, sy = (v, 0.0) if name == 'ShearX' else (0.0, v)
            return affine(shear={'x': (sx, sx), 'y': (sy, sy)})
        if name in ('TranslateX', 'TranslateY'):
            v = _MAX_TRANSLATE * s
            tx, ty = (v, 0.0) if name == 'TranslateX' else (0.0, v)
            return affine(translate_percent={'x': (tx, tx), 'y': (ty, ty)})
        raise KeyError(name)  # pragma: no cover - names are validated in __init__

    def __call__(self, results: dict) -> dict:
        img = results['img']
        rng = self.get_rng(results)
        for _ in range(self.num_ops):
            name = self._op_names[int(rng.integers(len(self._op_names)))]
            negative = RANDAUGMENT_OPS[name] and bool(rng.integers(2))
            transform = self._op_transforms[name][int(negative)]
            if transform is not None:
                img = _run_albu(transform, img, rng)
        if self.cutout_ratio is not None:
            side = int(round(self.cutout_ratio * min(img.shape[:2])))
            img = cutout(img, side, self.fill, rng)
        results['img'] = np.ascontiguousarray(img)
        return results
