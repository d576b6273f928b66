from .base import SemiBase
from .fixmatch import FixMatch
from .mean_teacher import MeanTeacher
from .supervised import SupervisedOnly

__all__ = ['FixMatch', 'MeanTeacher', 'SemiBase', 'SupervisedOnly']
