from .semi_preprocessor import SemiDataPreprocessor

__all__ = ['SemiDataPreprocessor']
