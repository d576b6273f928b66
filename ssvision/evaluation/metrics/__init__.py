from .accuracy import SemiAccuracy
from .coco_det import CocoDetMetric
from .iou import SegIoU

__all__ = ['CocoDetMetric', 'SegIoU', 'SemiAccuracy']
