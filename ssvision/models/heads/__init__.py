from .base import AuxContext, BaseAuxHead

__all__ = ['AuxContext', 'BaseAuxHead']
