"""Predict on new images with a trained model: ``ssvision infer`` from a checkout
(see :mod:`ssvision.tools.infer`)."""

import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from ssvision.tools.infer import main  # noqa: E402, F401  (tests call it)

if __name__ == '__main__':
    from ssvision.cli import main as cli
    sys.exit(cli(['infer', *sys.argv[1:]]))  # the command's short error messages
