from .classification import ClassificationTask
from .segmentation import SegmentationTask

__all__ = ['ClassificationTask', 'SegmentationTask']
