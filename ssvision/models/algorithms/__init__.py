from .base import SemiBase
from .dssn import DSSN
from .fixmatch import FixMatch
from .freematch import FreeMatch
from .mean_teacher import MeanTeacher
from .semi_detector import DetDataPreprocessor, SemiDetector
from .supervised import SupervisedOnly

__all__ = ['DSSN', 'DetDataPreprocessor', 'FixMatch', 'FreeMatch', 'MeanTeacher', 'SemiBase',
           'SemiDetector', 'SupervisedOnly']
