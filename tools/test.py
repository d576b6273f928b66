"""Evaluate a checkpoint: ``ssvision test`` from a checkout (see :mod:`ssvision.tools.test`)."""

import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from ssvision.tools.test import *  # noqa: E402, F401, F403
from ssvision.tools.test import main  # noqa: E402

if __name__ == '__main__':
    main()
