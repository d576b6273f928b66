from .hooks import *  # noqa: F401,F403
from .log_processor import SemiLogProcessor
from .loops import SemiIterBasedTrainLoop
from .rng import get_rng_states, preserved_rng, set_rng_states

__all__ = ['SemiLogProcessor', 'SemiIterBasedTrainLoop', 'get_rng_states', 'preserved_rng',
           'set_rng_states']
