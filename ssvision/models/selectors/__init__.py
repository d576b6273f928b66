from .base import BaseSelector
from .box_selectors import ClassAwareBoxSelector, FixedScoreBoxSelector
from .class_aware_topk import ClassAwareTopKSelector, class_topk_mask
from .class_peak import ClassPeakSelector, class_peak_mask
from .fixed_threshold import FixedThresholdSelector, fixed_threshold
from .flexmatch import FlexMatchSelector
from .freematch import FreeMatchSelector
from .softmatch import SoftMatchSelector

__all__ = [
    'BaseSelector', 'ClassAwareBoxSelector', 'FixedScoreBoxSelector',
    'ClassAwareTopKSelector', 'ClassPeakSelector', 'FixedThresholdSelector',
    'FlexMatchSelector', 'FreeMatchSelector', 'SoftMatchSelector', 'class_peak_mask',
    'class_topk_mask', 'fixed_threshold'
]
