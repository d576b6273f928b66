"""Configs shipped inside the package, addressed as ``ssvision::GROUP/NAME.py``.

The configs live in ``ssvision/configs`` (a checkout also shows them as the top-level
``configs`` folder), so a pip-installed user can run or inherit them from any folder::

    ssvision train ssvision::fixmatch/fixmatch_tinycnn_2k_mnist5k-4pc.py

    # my_config.py
    _base_ = ['ssvision::fixmatch/fixmatch_tinycnn_2k_mnist5k-4pc.py']
    train_cfg = dict(max_iters=500)

``_base_`` entries with the ``ssvision::`` prefix are resolved once ``ssvision`` is
imported (the tools import it first; importing it wraps mmengine's config lookup with
:func:`config_path`). mmengine's own
``package::`` lookup expects an OpenMMLab ``.mim`` folder and a model index, which
ssvision does not ship.
"""

from __future__ import annotations

import os
import os.path as osp

PACKAGE_PREFIX = 'ssvision::'


def configs_dir() -> str:
    """The folder of the packaged configs."""
    return osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs')


def config_path(name: str) -> str:
    """A config file's path from a path or a packaged name.

    Args:
        name: a file path, or ``ssvision::GROUP/NAME.py`` (``.py`` may be left out).

    Raises:
        FileNotFoundError: a packaged name that does not exist; the message lists the
            group's configs.
    """
    name = os.fspath(name)
    if not name.startswith(PACKAGE_PREFIX):
        return name
    rel = name[len(PACKAGE_PREFIX):].lstrip('/')
    if not rel.endswith('.py'):
        rel += '.py'
    path = osp.join(configs_dir(), rel)
    if not osp.isfile(path):
        group = osp.join(configs_dir(), osp.dirname(rel))
        known = sorted(f for f in os.listdir(group) if f.endswith('.py')) \
            if osp.isdir(group) else []
        hint = (f'; {osp.dirname(rel)}/ has: {", ".join(known)}' if known else
                '; groups: ' + ', '.join(sorted(d for d in os.listdir(configs_dir())
                                                if not d.startswith(('_', '.')))))
        raise FileNotFoundError(f'no packaged config {name}{hint}')
    return path
