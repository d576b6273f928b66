"""Export a trained network (plain weights or ONNX): ``ssvision export`` from a checkout
(see :mod:`ssvision.tools.export`)."""

import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from ssvision.tools.export import main  # noqa: E402

if __name__ == '__main__':
    main()
