from .batch_augment import BatchColorAugment, BatchRandAugment
from .det_preprocessor import DetDataPreprocessor
from .semi_preprocessor import SemiDataPreprocessor

__all__ = ['BatchColorAugment', 'BatchRandAugment', 'DetDataPreprocessor',
           'SemiDataPreprocessor']
