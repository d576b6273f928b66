from .batch_augment import BatchRandAugment
from .semi_preprocessor import SemiDataPreprocessor

__all__ = ['BatchRandAugment', 'SemiDataPreprocessor']
