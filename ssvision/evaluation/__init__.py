"""Evaluation metrics."""

from .metrics import SegIoU, SemiAccuracy

__all__ = ['SegIoU', 'SemiAccuracy']
