"""Semantic segmentation task adapter: how to run a segmentor and score its outputs."""

from __future__ import annotations

import math
from typing import Union

import torch
import torch.nn.functional as F
from torch import nn

from ssvision.registry import MODELS

from .base import BaseTask

#: Label of pixels that carry no class (VOC borders, padding); excluded from losses.
IGNORE_INDEX = 255

_Size = Union[int, tuple[int, int]]


def _pair(value: _Size) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    h, w = value
    return int(h), int(w)


def _starts(length: int, window: int, stride: int) -> list[int]:
    """Window offsets covering ``[0, length)``: every ``stride``, the last one flush
    with the end (so windows never leave the image when ``length >= window``)."""
    if length <= window:
        return [0]
    n = math.ceil((length - window) / stride) + 1
    return sorted({min(i * stride, length - window) for i in range(n)})


@MODELS.register_module()
class SegmentationTask(BaseTask):
    """What the semi-supervised recipe needs to know about semantic segmentation.

    Predictions are ``(N, K, H, W)`` probabilities. Per-pixel losses are normalised
    like :class:`ClassificationTask`'s per-sample ones: weighted (pseudo-label)
    losses divide by the number of pixels ``N * H * W``, not by the number selected,
    so they are exactly 0 when nothing is selected. The supervised loss is the mean
    over labeled (non-ignored) pixels, 0 when every pixel is ignored.

    Validation / test predictions go through :meth:`infer`, which follows ``test_cfg``:
    ``dict(mode='whole')`` (default) runs the network on the whole image;
    ``dict(mode='slide', window=(h, w), stride=(sh, sw))`` averages overlapping windows
    (:meth:`sliding_window_predict`), for images larger than the training crop. The
    teacher's pseudo-labels during training always come from :meth:`predict` on the
    (cropped) batch.

    Args:
        ignore_index (int): label of pixels without a class. Default 255.
        test_cfg (dict, optional): inference mode, see above.
    """

    dense = True

    def __init__(self, ignore_index: int = IGNORE_INDEX, test_cfg: dict | None = None) -> None:
        self.ignore_index = int(ignore_index)
        test_cfg = dict(test_cfg or dict(mode='whole'))
        mode = test_cfg.pop('mode', 'whole')
        if mode == 'whole':
            if test_cfg:
                raise ValueError(f"test_cfg mode='whole' takes no options, got {test_cfg}")
        elif mode == 'slide':
            if set(test_cfg) != {'window', 'stride'}:
                raise ValueError("test_cfg mode='slide' needs exactly window= and stride=, "
                                 f'got {sorted(test_cfg)}')
            (wh, ww), (sh, sw) = _pair(test_cfg['window']), _pair(test_cfg['stride'])
            if not (0 < sh <= wh and 0 < sw <= ww):
                raise ValueError(f'test_cfg stride {(sh, sw)} must be in [1, window {(wh, ww)}]')
        else:
            raise ValueError(f"test_cfg mode must be 'whole' or 'slide', got {mode!r}")
        self.test_cfg = dict(mode=mode, **test_cfg)

    @staticmethod
    def forward(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, K, H, W)`` of ``model`` for images ``(N, C, H, W)``.

        A raw torchvision segmentation model (returning ``{'out': ...}``) works too.
        """
        out = model(inputs)
        return out['out'] if isinstance(out, dict) else out

    @torch.no_grad()
    def predict(self, model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        """Probabilities ``(N, K, H, W)`` float32 (softmax over classes), without gradients."""
        return self.forward(model, inputs).float().softmax(dim=1)

    @torch.no_grad()
    def infer(self, model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        """Validation / test probabilities ``(N, K, H, W)``, whole image or sliding
        windows as ``test_cfg`` says."""
        if self.test_cfg['mode'] == 'slide':
            return self.sliding_window_predict(model, inputs, self.test_cfg['window'],
                                               self.test_cfg['stride'])
        return self.predict(model, inputs)

    def _check(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if logits.dim() != 4 or labels.shape != logits.shape[:1] + logits.shape[2:]:
            raise ValueError(f'expected logits (N, K, H, W) and labels (N, H, W), got '
                             f'{tuple(logits.shape)} and {tuple(labels.shape)}')
        return labels.long()

    @staticmethod
    def targets(data_samples: dict) -> torch.Tensor:
        """The labeled targets, ``data_samples['gt_seg']``."""
        return data_samples['gt_seg']

    def sup_loss(self, logits: torch.Tensor, data_samples: dict) -> torch.Tensor:
        """Cross entropy against ``data_samples['gt_seg']`` ``(N, H, W)``.

        ``sum over labeled pixels of CE / number of labeled pixels``; pixels equal to
        ``ignore_index`` are skipped; exactly 0 (not NaN) when all are ignored.
        """
        labels = self._check(logits, data_samples['gt_seg'])
        ce = F.cross_entropy(logits.float(), labels, ignore_index=self.ignore_index,
                             reduction='none')
        valid = (labels != self.ignore_index).sum()
        return ce.sum() / valid.clamp_min(1)

    def hard_loss(self, logits: torch.Tensor, labels: torch.Tensor,
                  weight: torch.Tensor) -> torch.Tensor:
        """``sum_p w_p * CE(logits_p, labels_p) / (N * H * W)`` over pixels ``p``.

        Args:
            logits: ``(N, K, H, W)``.
            labels: ``(N, H, W)`` pseudo-labels (``ignore_index`` pixels add 0).
            weight: ``(N, H, W)`` in [0, 1].
        """
        labels = self._check(logits, labels)
        ce = F.cross_entropy(logits.float(), labels, ignore_index=self.ignore_index,
                             reduction='none')
        return (ce * weight).sum() / max(labels.numel(), 1)

    @torch.no_grad()
    def sliding_window_predict(self, model: nn.Module, inputs: torch.Tensor,
                               window: _Size, stride: _Size) -> torch.Tensor:
        """Probabilities ``(N, K, H, W)`` averaged over overlapping windows.

        Windows of size ``window`` start every ``stride`` pixels; the last row / column
        of windows is moved back to end at the image border, so every pixel is
        covered and no window leaves the image. Each pixel's result is the mean of
        the softmax probabilities of the windows covering it; with non-overlapping
        windows (``stride == window`` dividing the image) it is exactly each window's
        own prediction. A side smaller than the window is zero-padded at the
        bottom / right up to the window (0 is the mean colour after
        ``SemiDataPreprocessor``'s normalisation) and the padding is cropped off the
        result. The model's train / eval mode is left as it is.

        Args:
            model: segmentor.
            inputs: ``(N, C, H, W)`` normalised images.
            window: ``(h, w)`` or an int.
            stride: ``(sh, sw)`` or an int, each in ``[1, window]``.

        Returns:
            ``(N, K, H, W)`` float32 probabilities.
        """
        (wh, ww), (sh, sw) = _pair(window), _pair(stride)
        if not (0 < sh <= wh and 0 < sw <= ww):
            raise ValueError(f'stride {(sh, sw)} must be in [1, window {(wh, ww)}]')
        n, _, h, w = inputs.shape
        pad_h, pad_w = max(wh - h, 0), max(ww - w, 0)
        x = F.pad(inputs, (0, pad_w, 0, pad_h)) if pad_h or pad_w else inputs
        ph, pw = x.shape[-2:]
        total = count = None
        for y0 in _starts(ph, wh, sh):
            for x0 in _starts(pw, ww, sw):
                crop = x[:, :, y0:y0 + wh, x0:x0 + ww]
                probs = self.predict(model, crop)
                if total is None:
                    total = probs.new_zeros(n, probs.shape[1], ph, pw)
                    count = probs.new_zeros(1, 1, ph, pw)
                total[:, :, y0:y0 + wh, x0:x0 + ww] += probs
                count[:, :, y0:y0 + wh, x0:x0 + ww] += 1
        return (total / count)[:, :, :h, :w]

    def pack_predictions(self, scores: dict[str, torch.Tensor],
                         data_samples: dict | None,
                         inputs: torch.Tensor | None = None) -> list[dict]:
        """Per-image validation outputs for :class:`~ssvision.evaluation.SegIoU`.

        Args:
            scores: ``{name: (N, K, H, W)}`` probabilities or logits per network.
            data_samples: batch samples with ``gt_seg`` ``(N, H, W)``; without it every
                pixel is ``ignore_index``.

        Returns:
            One ``{'gt_seg': (H, W) long, 'pred': {name: (H, W) long argmax}}`` per
            image, on the CPU.

        Raises:
            ValueError: a score map's size differs from the ground truth's.
        """
        preds = {name: s.argmax(dim=1).cpu() for name, s in scores.items()}
        first = next(iter(preds.values()))
        gt = (data_samples or {}).get('gt_seg')
        if gt is None:
            gt = torch.full_like(first, self.ignore_index)
        gt = torch.as_tensor(gt).long().cpu()
        for name, pred in preds.items():
            if pred.shape != gt.shape:
                raise ValueError(f'{name} predictions {tuple(pred.shape)} and gt_seg '
                                 f'{tuple(gt.shape)} differ in size')
        return [{'gt_seg': gt[i], 'pred': {name: p[i] for name, p in preds.items()}}
                for i in range(gt.shape[0])]
