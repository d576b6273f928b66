"""Evaluation metrics."""

from .metrics import SemiAccuracy

__all__ = ['SemiAccuracy']
