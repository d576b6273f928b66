"""Where data is looked for: search paths with an environment override.

Configs name data relative to the folder a run starts in (``data/splits/...``,
``data/scenes/...``), and system-wide datasets by their install folder. Neither is a
fixed machine path: :func:`find_data` looks in

1. ``$SSVISION_DATA`` (a ``data/...`` path is looked up with ``data/`` replaced by it);
2. the path as given (relative to the current folder);
3. for system datasets, the folders their packages install to (Debian's
   ``dataset-fashion-mnist`` installs to ``/usr/share/datasets``).

and returns the first that exists, or the path as given (so the error a reader raises
names what was asked for).
"""

from __future__ import annotations

import os
import os.path as osp
from collections.abc import Sequence

#: Environment variable naming the data folder (default: ``./data``).
DATA_ENV = 'SSVISION_DATA'

#: Folders system packages install datasets to, searched last.
SYSTEM_DATA_DIRS = ('/usr/share/datasets', '/usr/local/share/datasets')


def data_dir() -> str:
    """The data folder: ``$SSVISION_DATA`` or ``data`` (relative to the current folder)."""
    return os.environ.get(DATA_ENV) or 'data'


def in_data_dir(path: str, root: str | None = None) -> str:
    """``data/...`` placed in the data folder ``root`` (default :func:`data_dir`); other
    relative paths are placed under it as they are."""
    norm = os.fspath(path).replace('\\', '/')
    rel = norm[len('data/'):] if norm.startswith('data/') else norm
    return osp.join(root or data_dir(), rel)


def search_paths(path: str, system: Sequence[str] = ()) -> list[str]:
    """The candidates :func:`find_data` tries for ``path``, in order."""
    path = os.fspath(path)
    if osp.isabs(path):
        return [path]
    out = []
    env = os.environ.get(DATA_ENV)
    if env:
        out.append(in_data_dir(path, env))
    out.append(path)
    for root in system:
        out.append(osp.join(root, path))
    return out


def find_data(path: str | None, system: Sequence[str] = ()) -> str | None:
    """The first existing candidate of :func:`search_paths`, else ``path`` unchanged.

    Args:
        path: a data file or folder (None passes through).
        system: extra roots tried last for a relative name, e.g.
            :data:`SYSTEM_DATA_DIRS`.
    """
    if path is None:
        return None
    for cand in search_paths(path, system):
        if osp.exists(cand):
            return cand
    return os.fspath(path)


def find_dataset(name: str, what: str | None = None, hint: str = '') -> str:
    """The folder of a named dataset: ``$SSVISION_DATA/NAME``, ``./data/NAME``, then
    ``NAME`` under :data:`SYSTEM_DATA_DIRS`; the first that exists.

    Raises:
        FileNotFoundError: none exists; the message lists every place looked in, the
            environment variable, and ``hint`` (how to install the data).
    """
    cands = []
    if os.environ.get(DATA_ENV):
        cands.append(osp.join(os.environ[DATA_ENV], name))
    cands.append(osp.join('data', name))
    cands += [osp.join(root, name) for root in SYSTEM_DATA_DIRS]
    for cand in cands:
        if osp.isdir(cand):
            return cand
    raise FileNotFoundError(
        f'{what or name} not found; looked in {", ".join(cands)} (set ${DATA_ENV} to the '
        f'folder that holds {name}/, or pass root=){"; " + hint if hint else ""}')
