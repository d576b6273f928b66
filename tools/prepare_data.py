"""Write the built-in data's split files: ``ssvision prepare`` from a checkout
(see :mod:`ssvision.tools.prepare`)."""

import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from ssvision.tools.prepare import *  # noqa: E402, F401, F403
from ssvision.tools.prepare import main  # noqa: E402

if __name__ == '__main__':
    main()
