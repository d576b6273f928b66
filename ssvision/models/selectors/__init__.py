from .base import BaseSelector
from .fixed_threshold import FixedThresholdSelector, fixed_threshold

__all__ = ['BaseSelector', 'FixedThresholdSelector', 'fixed_threshold']
