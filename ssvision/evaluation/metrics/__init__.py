from .accuracy import SemiAccuracy

__all__ = ['SemiAccuracy']
