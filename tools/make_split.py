"""Classification split files: ``ssvision split cls`` from a checkout
(see :mod:`ssvision.tools.split`)."""

import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from ssvision.tools.split import *  # noqa: E402, F401, F403
from ssvision.tools.split import main  # noqa: E402

if __name__ == '__main__':
    main()
