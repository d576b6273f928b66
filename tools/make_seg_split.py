"""Segmentation split files: ``ssvision split seg`` from a checkout
(see :mod:`ssvision.tools.split_seg`)."""

import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from ssvision.tools.split_seg import *  # noqa: E402, F401, F403
from ssvision.tools.split_seg import main  # noqa: E402

if __name__ == '__main__':
    main()
