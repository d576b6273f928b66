from .base import BaseTask
from .classification import ClassificationTask
from .detection import DetectionTask
from .segmentation import SegmentationTask

__all__ = ['BaseTask', 'ClassificationTask', 'DetectionTask', 'SegmentationTask']
