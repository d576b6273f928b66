"""The model zoo: ``ssvision zoo`` from a checkout (see :mod:`ssvision.tools.zoo`)."""

import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from ssvision.tools.zoo import *  # noqa: E402, F401, F403
from ssvision.tools.zoo import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
