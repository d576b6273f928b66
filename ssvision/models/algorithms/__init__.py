from .base import SemiBase
from .dssn import DSSN
from .fixmatch import FixMatch
from .freematch import FreeMatch
from .mean_teacher import MeanTeacher
from .supervised import SupervisedOnly

__all__ = ['DSSN', 'FixMatch', 'FreeMatch', 'MeanTeacher', 'SemiBase', 'SupervisedOnly']
