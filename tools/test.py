"""Evaluate a checkpoint: ``ssvision test`` from a checkout (see :mod:`ssvision.tools.test`)."""

import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from ssvision.tools.test import *  # noqa: E402, F401, F403
from ssvision.tools.test import main  # noqa: E402, F401  (tests call it)

if __name__ == '__main__':
    from ssvision.cli import main as cli
    sys.exit(cli(['test', *sys.argv[1:]]))  # the command's short error messages
