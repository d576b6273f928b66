"""Export a trained network (plain weights or ONNX): ``ssvision export`` from a checkout
(see :mod:`ssvision.tools.export`)."""

import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from ssvision.tools.export import main  # noqa: E402, F401  (tests call it)

if __name__ == '__main__':
    from ssvision.cli import main as cli
    sys.exit(cli(['export', *sys.argv[1:]]))  # the command's short error messages
