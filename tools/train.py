"""Train a semi-supervised model: ``ssvision train`` from a checkout (see
:mod:`ssvision.tools.train`)."""

import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from ssvision.tools.train import *  # noqa: E402, F401, F403
from ssvision.tools.train import main  # noqa: E402, F401  (tests call it)

if __name__ == '__main__':
    from ssvision.cli import main as cli
    sys.exit(cli(['train', *sys.argv[1:]]))  # the command's short error messages
