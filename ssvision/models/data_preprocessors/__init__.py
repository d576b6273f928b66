from .batch_augment import BatchColorAugment, BatchRandAugment
from .semi_preprocessor import SemiDataPreprocessor

__all__ = ['BatchColorAugment', 'BatchRandAugment', 'SemiDataPreprocessor']
