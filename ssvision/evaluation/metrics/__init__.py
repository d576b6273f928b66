from .accuracy import SemiAccuracy
from .iou import SegIoU

__all__ = ['SegIoU', 'SemiAccuracy']
