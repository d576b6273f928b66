from .base import AuxContext, BaseAuxHead
from .deep_supervision import DeepSupervisionContrastHead
from .rotation import RotationHead, rotate_batch
from .siamese_consistency import DualSiameseConsistencyHead

__all__ = [
    'AuxContext', 'BaseAuxHead', 'DeepSupervisionContrastHead', 'DualSiameseConsistencyHead',
    'RotationHead', 'rotate_batch'
]
