from .base import SemiBase
from .dssn import DSSN, DSSNTopK
from .fixmatch import FixMatch
from .freematch import FreeMatch
from .mean_teacher import MeanTeacher
from .semi_detector import SemiDetector
from .shrinkmatch import ShrinkMatch
from .supervised import SupervisedOnly
from .uda import UDA

__all__ = ['DSSN', 'DSSNTopK', 'FixMatch', 'FreeMatch', 'MeanTeacher',
           'SemiBase', 'SemiDetector', 'ShrinkMatch', 'SupervisedOnly', 'UDA']
