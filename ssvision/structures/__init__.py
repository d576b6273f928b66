"""Data structures and their geometry: per-image boxes and boxes between views."""

from .boxes import box_precision, flip_uncertainty, pairwise_iou, project_boxes, transfer_boxes
from .instances import DetInstances

__all__ = ['DetInstances', 'project_boxes', 'transfer_boxes', 'pairwise_iou',
           'flip_uncertainty', 'box_precision']
