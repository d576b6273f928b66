from .base import AuxContext, BaseAuxHead
from .class_space_shrink import ClassSpaceShrinkHead, shrink_class_space
from .deep_supervision import DeepSupervisionContrastHead
from .local_rotation import LocalRotationHead, rotate_patches
from .rotation import RotationHead, rotate_batch
from .siamese_consistency import DualSiameseConsistencyHead
from .weak_strong_contrast import WeakStrongContrastHead

__all__ = [
    'AuxContext', 'BaseAuxHead', 'DeepSupervisionContrastHead', 'DualSiameseConsistencyHead',
    'ClassSpaceShrinkHead', 'LocalRotationHead', 'rotate_patches', 'shrink_class_space',
    'RotationHead', 'WeakStrongContrastHead', 'rotate_batch'
]
