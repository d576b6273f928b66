"""Evaluation metrics."""

from .metrics import CocoDetMetric, SegIoU, SemiAccuracy

__all__ = ['CocoDetMetric', 'SegIoU', 'SemiAccuracy']
