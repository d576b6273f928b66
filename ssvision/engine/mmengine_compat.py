"""The one place ssvision reaches into mmengine beyond its public API.

Everything else uses public mmengine names. The three uses below have no public
equivalent in mmengine 0.10; they are checked against the installed version once, so a
new mmengine that moves them fails here with a clear message instead of deep in a run.
The last one, :func:`register_config_prefix`, extends mmengine's config loader so that
``_base_`` may name a config shipped inside ssvision (``ssvision::GROUP/NAME.py``).
"""

from __future__ import annotations

import warnings

import mmengine
from mmengine.model import is_model_wrapper
from torch import nn

#: mmengine minor versions these private uses were written and tested against.
TESTED = ('0.10',)

if not mmengine.__version__.startswith(TESTED):  # pragma: no cover - version dependent
    warnings.warn(f'ssvision was tested with mmengine {TESTED}, found {mmengine.__version__}; '
                  'check ssvision/engine/mmengine_compat.py', stacklevel=2)


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DDP / FSDP wrapper (public API)."""
    return model.module if is_model_wrapper(model) else model


def infinite_iterator(dataloader):
    """mmengine's endless dataloader iterator (private ``_InfiniteDataloaderIterator``):
    restarts the loader at the end of an epoch, calling the sampler's ``set_epoch``."""
    try:
        from mmengine.runner.loops import _InfiniteDataloaderIterator
    except ImportError as err:  # pragma: no cover - version dependent
        raise ImportError('mmengine.runner.loops._InfiniteDataloaderIterator is gone in '
                          f'mmengine {mmengine.__version__}; update '
                          'ssvision/engine/mmengine_compat.py') from err
    return _InfiniteDataloaderIterator(dataloader)


def built_loop(runner, name: str):
    """``runner.train_loop`` / ``val_loop`` if it was built already, else None.

    The public properties build a loop from its config on first access (and a train
    loop refuses to build outside training), so a hook that only wants to look at an
    existing loop reads mmengine's private ``_train_loop`` / ``_val_loop``.
    """
    if name not in ('train', 'val'):
        raise ValueError(f"name must be 'train' or 'val', got {name!r}")
    loop = getattr(runner, f'_{name}_loop', None)
    return None if loop is None or isinstance(loop, dict) else loop


def register_config_prefix() -> None:
    """Let config files inherit ssvision's packaged configs (``ssvision::...``).

    mmengine resolves ``_base_ = ['pkg::path']`` with its private
    ``Config._get_cfg_path``, which wants an OpenMMLab ``.mim`` folder, a model index
    and an entry in its package table. This wraps it: names with ssvision's prefix map
    to :func:`ssvision.utils.config.config_path` (no scope change, exactly as if the
    file had been named by its path); everything else goes to mmengine unchanged.
    Idempotent.
    """
    from mmengine.config import Config

    from ssvision.utils.config import PACKAGE_PREFIX, config_path

    original = Config.__dict__.get('_get_cfg_path')
    if original is None:  # pragma: no cover - version dependent
        warnings.warn('mmengine.config.Config._get_cfg_path is gone in mmengine '
                      f'{mmengine.__version__}: ssvision:: _base_ entries will not resolve; '
                      'update ssvision/engine/mmengine_compat.py', stacklevel=2)
        return
    inner = original.__func__ if isinstance(original, staticmethod) else original
    if getattr(inner, '_ssvision_prefix', False):
        return

    def _get_cfg_path(cfg_path, filename):
        if isinstance(cfg_path, str) and cfg_path.startswith(PACKAGE_PREFIX):
            return config_path(cfg_path), None
        return inner(cfg_path, filename)

    _get_cfg_path._ssvision_prefix = True
    Config._get_cfg_path = staticmethod(_get_cfg_path)
