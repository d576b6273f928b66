"""Box-aware views for detection: every geometric op records its matrix.

Coordinates are continuous pixel *edges*: the image spans ``[0, W] x [0, H]`` and a box
``(x1, y1, x2, y2)`` covers ``x1 <= x <= x2``. ``results['homography']`` is the 3x3
matrix taking a point of the original image to the current view (identity when no
geometric op ran). Each geometric op left-multiplies its own matrix, moves every box
key present (``gt_bboxes`` with ``gt_labels``, ``true_bboxes`` with ``true_labels``)
with :func:`ssvision.structures.project_boxes`, and drops the boxes that leave the view
(clipped boxes narrower or lower than ``min_size`` pixels); boxes are never kept
invalid. A teacher box predicted in view ``t`` lies in view ``s`` at ``H_s @ inv(H_t)``
(:func:`ssvision.structures.transfer_boxes`).

Results keys: ``img`` uint8 ``(H, W, 3)``, ``gt_bboxes`` float32 ``(n, 4)``,
``gt_labels`` int64 ``(n,)`` (labeled), ``true_bboxes`` / ``true_labels`` (unlabeled with
known boxes: health logging only), ``homography`` float64 ``(3, 3)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Optional

import cv2
import numpy as np
import torch

from ssvision.registry import TRANSFORMS
from ssvision.structures import DetInstances, project_boxes

from .augment import ConfigMixin, RandomTransformMixin
from .formatting import _to_python

__all__ = ['DetWeakAugment', 'DetStrongAugment', 'PackDetInputs', 'BOX_KEYS']

#: (boxes key, labels key) pairs moved by the geometric ops
BOX_KEYS = (('gt_bboxes', 'gt_labels'), ('true_bboxes', 'true_labels'))


def _apply_geometry(results: dict, matrix: np.ndarray, img: np.ndarray,
                    min_size: float) -> dict:
    """Store the new image, compose the homography, move and filter every box key."""
    results['img'] = np.ascontiguousarray(img)
    results['homography'] = matrix @ np.asarray(results.get('homography', np.eye(3)),
                                                dtype=np.float64)
    shape = img.shape[:2]
    for box_key, label_key in BOX_KEYS:
        if box_key not in results:
            continue
        boxes, keep = project_boxes(results[box_key], matrix, shape, min_size)
        results[box_key] = boxes[keep].reshape(-1, 4)
        results[label_key] = np.asarray(results[label_key], dtype=np.int64)[keep]
    return results


def _check_rgb(img: np.ndarray, who: str) -> None:
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f'{who} needs a uint8 (H, W, 3) image, got {img.dtype} {img.shape}')


@TRANSFORMS.register_module()
class DetWeakAugment(ConfigMixin, RandomTransformMixin):
    """Weak detection view: random resize (short side), horizontal flip.

    1. When ``short_side`` is given, rescale by ``s`` so the short side becomes
       ``U(short_side)`` pixels, lowered so the long side stays ``<= max_long_side``;
       the output is ``(round(s * H), round(s * W))`` and the matrix scales by the
       exact ratios of output to input size.
    2. Flip horizontally with probability ``flip_prob`` (``x -> W - x``).

    Run it before :class:`~ssvision.datasets.transforms.MultiBranch` so the teacher's
    weak view and the student's strong views of an unlabeled image share it.

    Args:
        short_side (tuple[int, int], optional): short-side range; None keeps the size.
        max_long_side (int, optional): cap on the long side after resizing.
        flip_prob (float): Defaults to 0.5.
        min_size (float): boxes smaller than this after the op are dropped.
        seed (int, optional): seed used without ``sample_seed``.
    """

    def __init__(self, short_side: Optional[Sequence[int]] = None,
                 max_long_side: Optional[int] = None, flip_prob: float = 0.5,
                 min_size: float = 1.0, seed: Optional[int] = None) -> None:
        if short_side is not None:
            short_side = tuple(int(v) for v in short_side)
            if len(short_side) != 2 or not 0 < short_side[0] <= short_side[1]:
                raise ValueError(f'short_side must be (low, high), 0 < low <= high, got '
                                 f'{short_side}')
        if not 0.0 <= flip_prob <= 1.0:
            raise ValueError(f'flip_prob must be in [0, 1], got {flip_prob}')
        self.short_side, self.max_long_side = short_side, max_long_side
        self.flip_prob, self.min_size = float(flip_prob), float(min_size)
        self._set_cfg_args(short_side=short_side, max_long_side=max_long_side,
                           flip_prob=flip_prob, min_size=min_size, seed=seed)
        self._init_random(seed)

    def __call__(self, results: dict) -> dict:
        img = results['img']
        _check_rgb(img, 'DetWeakAugment')
        rng = self.get_rng(results)
        target = rng.uniform(*self.short_side) if self.short_side else None
        flip = bool(rng.random() < self.flip_prob)
        if target is not None:
            h, w = img.shape[:2]
            s = target / min(h, w)
            if self.max_long_side is not None:
                s = min(s, self.max_long_side / max(h, w))
            nh, nw = max(1, round(s * h)), max(1, round(s * w))
            if (nh, nw) != (h, w):
                img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
                results = _apply_geometry(results, np.diag([nw / w, nh / h, 1.0]), img,
                                          self.min_size)
        if flip:
            w = results['img'].shape[1]
            m = np.array([[-1.0, 0, w], [0, 1, 0], [0, 0, 1]])
            results = _apply_geometry(results, m, cv2.flip(results['img'], 1), self.min_size)
        results.setdefault('homography', np.eye(3))
        return results


@TRANSFORMS.register_module()
class DetStrongAugment(ConfigMixin, RandomTransformMixin):
    """Strong detection view, geometric part: random affine, then cutout.

    * with probability ``affine_prob``, one affine map about the image centre: scale
      ``U(scale)``, rotation ``U(-rotate, rotate)`` degrees, shear ``U(-shear, shear)``
      degrees along x, translation ``U(-translate, translate)`` of the width / height;
      the output keeps the input size (``fill`` outside); boxes move through the matrix
      and are clipped / dropped (see the module docstring);
    * with probability ``cutout_prob``, ``n ~ U{cutout_num}`` rectangles of side
      ``U(cutout_size)`` of the short side are filled with ``fill``; boxes stay (the
      object is still there, partly hidden).

    Colour ops are :class:`~ssvision.datasets.transforms.SegStrongAugment` (photometric
    only; registered for detection configs as ``PhotometricAugment`` too); put it before
    this transform in the strong branch.

    Args:
        affine_prob (float): Defaults to 0.7.
        scale (tuple[float, float]): Defaults to (0.75, 1.25).
        rotate (float): max degrees. Defaults to 0 (axis-aligned boxes stay tight).
        shear (float): max degrees. Defaults to 0.
        translate (float): max fraction of the side. Defaults to 0.1.
        cutout_prob (float): Defaults to 0.7.
        cutout_num (tuple[int, int]): Defaults to (1, 5).
        cutout_size (tuple[float, float]): fraction of the short side. Defaults to
            (0.05, 0.2).
        fill (int): Defaults to 114.
        min_size (float): Defaults to 2.0.
        seed (int, optional): seed used without ``sample_seed``.
    """

    def __init__(self, affine_prob: float = 0.7, scale: Sequence[float] = (0.75, 1.25),
                 rotate: float = 0.0, shear: float = 0.0, translate: float = 0.1,
                 cutout_prob: float = 0.7, cutout_num: Sequence[int] = (1, 5),
                 cutout_size: Sequence[float] = (0.05, 0.2), fill: int = 114,
                 min_size: float = 2.0, seed: Optional[int] = None) -> None:
        for name, p in (('affine_prob', affine_prob), ('cutout_prob', cutout_prob)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f'{name} must be in [0, 1], got {p}')
        scale = tuple(float(v) for v in scale)
        if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
            raise ValueError(f'scale must be (low, high), 0 < low <= high, got {scale}')
        if rotate < 0 or shear < 0 or not 0 <= translate < 1:
            raise ValueError('rotate, shear must be >= 0 and translate in [0, 1)')
        cutout_num = tuple(int(v) for v in cutout_num)
        cutout_size = tuple(float(v) for v in cutout_size)
        self.affine_prob, self.scale, self.rotate = affine_prob, scale, float(rotate)
        self.shear, self.translate = float(shear), float(translate)
        self.cutout_prob, self.cutout_num, self.cutout_size = cutout_prob, cutout_num, \
            cutout_size
        self.fill, self.min_size = int(fill), float(min_size)
        self._set_cfg_args(affine_prob=affine_prob, scale=scale, rotate=rotate, shear=shear,
                           translate=translate, cutout_prob=cutout_prob,
                           cutout_num=cutout_num, cutout_size=cutout_size, fill=fill,
                           min_size=min_size, seed=seed)
        self._init_random(seed)

    @staticmethod
    def affine_matrix(shape: Sequence[int], scale: float, angle: float, shear: float,
                      tx: float, ty: float) -> np.ndarray:
        """3x3 matrix (edge coordinates): about the centre, scale * rotate * shear, then
        translate by ``(tx, ty)`` pixels."""
        h, w = shape[:2]
        c = np.array([[1, 0, w / 2], [0, 1, h / 2], [0, 0, 1]], dtype=np.float64)
        c_inv = np.array([[1, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1]], dtype=np.float64)
        a = math.radians(angle)
        rot = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0],
                        [0, 0, 1]])
        sh = np.array([[1, math.tan(math.radians(shear)), 0], [0, 1, 0], [0, 0, 1]])
        sc = np.diag([scale, scale, 1.0])
        t = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]], dtype=np.float64)
        return t @ c @ sc @ rot @ sh @ c_inv

    def __call__(self, results: dict) -> dict:
        img = results['img']
        _check_rgb(img, 'DetStrongAugment')
        rng = self.get_rng(results)
        h, w = img.shape[:2]
        # fixed number of draws: the stream does not depend on outcomes
        use_affine, use_cutout = rng.random(2) < (self.affine_prob, self.cutout_prob)
        s = rng.uniform(*self.scale)
        angle = rng.uniform(-self.rotate, self.rotate)
        shear = rng.uniform(-self.shear, self.shear)
        tx, ty = rng.uniform(-self.translate, self.translate, size=2) * (w, h)
        n_cut = int(rng.integers(self.cutout_num[0], self.cutout_num[1] + 1))
        cuts = rng.random((max(n_cut, 0), 3))
        if use_affine:
            m = self.affine_matrix((h, w), s, angle, shear, tx, ty)
            # OpenCV samples at pixel centres: centre = edge - 0.5
            to_c = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]])
            to_e = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
            m_cv = (to_c @ m @ to_e)[:2]
            out = cv2.warpAffine(img, m_cv, (w, h), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=(self.fill,) * 3)
            results = _apply_geometry(results, m, out, self.min_size)
        else:
            results.setdefault('homography', np.eye(3))
        if use_cutout and n_cut > 0:
            img = results['img'].copy()
            side = min(h, w)
            for fy, fx, fs in cuts:
                size = max(1, int(round(side * (self.cutout_size[0] + fs * (
                    self.cutout_size[1] - self.cutout_size[0])))))
                y0, x0 = int(fy * max(h - size, 0)), int(fx * max(w - size, 0))
                img[y0:y0 + size, x0:x0 + size] = self.fill
            results['img'] = img
        return results


@TRANSFORMS.register_module()
class PackDetInputs(ConfigMixin):
    """Ends a detection pipeline.

    Returns ``{'inputs': Tensor uint8 (3, H, W), 'data_samples': {...}}`` with
    ``gt_instances`` (labeled; empty :class:`~ssvision.structures.DetInstances` when
    absent), ``true_instances`` (unlabeled images with known boxes; empty otherwise),
    ``homography`` float32 ``(3, 3)`` (original image -> this view), ``img_shape`` and
    ``ori_shape`` (``(H, W)`` tuples) and every key of ``meta_keys`` (-1 when absent).

    Args:
        meta_keys (Sequence[str]): Defaults to ``('sample_idx', 'img_id')``.
    """

    def __init__(self, meta_keys: Sequence[str] = ('sample_idx', 'img_id')) -> None:
        self.meta_keys = tuple(meta_keys)
        self._set_cfg_args(meta_keys=self.meta_keys)

    def __call__(self, results: dict) -> dict:
        img = np.asarray(results['img'])
        _check_rgb(img, 'PackDetInputs')
        inputs = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        samples: dict[str, Any] = {}
        for (box_key, label_key), out_key in zip(BOX_KEYS, ('gt_instances', 'true_instances')):
            if box_key in results:
                samples[out_key] = DetInstances(np.asarray(results[box_key], np.float32),
                                                np.asarray(results[label_key], np.int64))
            else:
                samples[out_key] = DetInstances()
        samples['homography'] = torch.as_tensor(
            np.asarray(results.get('homography', np.eye(3)), dtype=np.float32))
        samples['img_shape'] = tuple(int(v) for v in img.shape[:2])
        samples['ori_shape'] = tuple(int(v) for v in results.get('ori_shape', img.shape[:2]))
        for key in self.meta_keys:
            samples[key] = _to_python(results.get(key, -1))
        return {'inputs': inputs, 'data_samples': samples}
