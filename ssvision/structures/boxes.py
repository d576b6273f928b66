"""Box geometry: boxes between views of one image, IoU, and box-to-box comparisons.

Coordinates are continuous pixel edges (a box ``x1, y1, x2, y2`` covers
``x1 <= x <= x2``); a view's homography takes a point of the original image to the view.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .instances import DetInstances

__all__ = ['project_boxes', 'transfer_boxes', 'pairwise_iou', 'flip_uncertainty',
           'box_precision']


def project_boxes(boxes: np.ndarray | torch.Tensor, matrix, img_shape: Sequence[int],
                  min_size: float = 1.0):
    """Map boxes through a 3x3 matrix; clip to the image; flag the ones still valid.

    Each box's four corners are mapped, the result is their bounding box (exact for
    scaling, flips and translations; the tight box of the moved rectangle under
    rotation / shear), clipped to ``[0, W] x [0, H]``.

    Args:
        boxes: ``(n, 4)`` ``x1, y1, x2, y2``.
        matrix: ``(3, 3)`` homogeneous transform (numpy or torch).
        img_shape: ``(H, W)`` of the target view.
        min_size: a clipped box narrower or lower than this is invalid.

    Returns:
        ``(boxes (n, 4), keep (n,) bool)`` of the input's type (the boxes before
        filtering, so callers can apply ``keep`` to labels alike).
    """
    is_torch = isinstance(boxes, torch.Tensor)
    b = boxes if is_torch else torch.as_tensor(np.asarray(boxes, dtype=np.float64))
    m = torch.as_tensor(matrix, dtype=b.dtype if b.is_floating_point() else torch.float64,
                        device=b.device)
    b = b.to(m.dtype).reshape(-1, 4)
    x1, y1, x2, y2 = b.unbind(1)
    corners = torch.stack([torch.stack([x1, y1], 1), torch.stack([x2, y1], 1),
                           torch.stack([x1, y2], 1), torch.stack([x2, y2], 1)], 1)  # n,4,2
    homog = torch.cat([corners, torch.ones_like(corners[..., :1])], dim=2) @ m.T
    pts = homog[..., :2] / homog[..., 2:].clamp_min(1e-12)
    h, w = float(img_shape[0]), float(img_shape[1])
    out = torch.stack([pts[..., 0].amin(1).clamp(0, w), pts[..., 1].amin(1).clamp(0, h),
                       pts[..., 0].amax(1).clamp(0, w), pts[..., 1].amax(1).clamp(0, h)], 1)
    keep = ((out[:, 2] - out[:, 0]) >= min_size) & ((out[:, 3] - out[:, 1]) >= min_size)
    if is_torch:
        return out.to(boxes.dtype if boxes.is_floating_point() else torch.float32), keep
    return out.numpy().astype(np.float32), keep.numpy()


def transfer_boxes(inst: DetInstances, h_from: torch.Tensor, h_to: torch.Tensor,
                   img_shape: Sequence[int], min_size: float = 2.0) -> tuple[DetInstances,
                                                                              torch.Tensor]:
    """Move boxes from one view to another of the same image (``h_*``: original image
    -> view matrices); clip to ``img_shape``, drop boxes under ``min_size``.

    Returns:
        ``(moved instances, keep mask over the input boxes)``.
    """
    h_from, h_to = torch.as_tensor(h_from), torch.as_tensor(h_to)
    m = h_to.double() @ torch.linalg.inv(h_from.double().to(h_to.device))
    boxes, keep = project_boxes(inst.bboxes, m, img_shape, min_size)
    moved = DetInstances(boxes, inst.labels, inst.scores)
    return moved[keep], keep


def pairwise_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    from torchvision.ops import box_iou
    if len(a) == 0 or len(b) == 0:
        return a.new_zeros(len(a), len(b))
    return box_iou(a, b)


def flip_uncertainty(dets: DetInstances, flipped: DetInstances, width: float) -> torch.Tensor:
    """Per box of ``dets``: mean |side difference| / (w, h) to the best same-class match
    (IoU >= 0.5) among ``flipped`` (detections on the horizontally flipped image, mapped
    back here); ``inf`` without a match."""
    if len(dets) == 0:
        return dets.bboxes.new_zeros(0)
    fb = flipped.bboxes.clone()
    fb[:, 0], fb[:, 2] = width - flipped.bboxes[:, 2], width - flipped.bboxes[:, 0]
    iou = pairwise_iou(dets.bboxes, fb)
    iou = iou * (dets.labels[:, None] == flipped.labels[None, :])
    out = torch.full((len(dets),), float('inf'), device=dets.bboxes.device)
    if iou.numel() == 0:
        return out
    best, idx = iou.max(dim=1)
    matched = best >= 0.5
    if matched.any():
        b, m = dets.bboxes[matched], fb[idx[matched]]
        wh = (b[:, 2:] - b[:, :2]).clamp_min(1e-6).repeat(1, 2)
        out[matched] = ((b - m).abs() / wh).mean(dim=1)
    return out


def box_precision(pred: DetInstances, true: DetInstances, iou_thr: float = 0.5) -> tuple[
        int, int]:
    """``(true positives, predictions)``: greedy by score, one match per true box,
    same class, IoU >= ``iou_thr``."""
    if len(pred) == 0:
        return 0, 0
    if len(true) == 0:
        return 0, len(pred)
    order = torch.argsort(pred.scores, descending=True) if pred.scores is not None else \
        torch.arange(len(pred), device=pred.bboxes.device)
    iou = pairwise_iou(pred.bboxes[order], true.bboxes)
    iou = iou * (pred.labels[order][:, None] == true.labels[None, :])
    used = torch.zeros(len(true), dtype=torch.bool, device=iou.device)
    tp = 0
    for i in range(len(order)):
        cand = iou[i].masked_fill(used, 0)
        j = int(cand.argmax())
        if cand[j] >= iou_thr:
            used[j] = True
            tp += 1
    return tp, len(pred)
