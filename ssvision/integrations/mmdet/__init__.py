"""ssvision inside mmdetection 3.x projects.

Add to an mmdetection config::

    custom_imports = dict(imports=['ssvision.integrations.mmdet'],
                          allow_failed_imports=False)
    model = dict(type='SsvSemiDetector', detector=detector, ...)

to wrap any mmdetection detector (two-stage or one-stage) in a mean-teacher detector
whose pseudo-boxes are chosen by ssvision's class-aware selector; see
:class:`SsvSemiDetector`. Needs mmdet 3.x with a full mmcv (ops compiled).
"""

from .semi_detector import SsvSemiDetector

__all__ = ['SsvSemiDetector']
