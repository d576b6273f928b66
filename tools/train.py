"""Train a semi-supervised model: ``ssvision train`` from a checkout (see
:mod:`ssvision.tools.train`)."""

import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from ssvision.tools.train import *  # noqa: E402, F401, F403
from ssvision.tools.train import main  # noqa: E402

if __name__ == '__main__':
    main()
