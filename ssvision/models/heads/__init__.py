from .base import AuxContext, BaseAuxHead, head_forward
from .deep_supervision import DeepSupervisionContrastHead
from .rotation import RotationHead, rotate_batch
from .siamese_consistency import DualSiameseConsistencyHead

__all__ = [
    'AuxContext', 'BaseAuxHead', 'DeepSupervisionContrastHead', 'DualSiameseConsistencyHead',
    'RotationHead', 'head_forward', 'rotate_batch'
]
