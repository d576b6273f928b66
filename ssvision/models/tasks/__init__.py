from .classification import ClassificationTask

__all__ = ['ClassificationTask']
