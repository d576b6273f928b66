"""The one place ssvision reaches into mmengine beyond its public API.

Everything else uses public mmengine names. The uses below have no public equivalent in
mmengine 0.10; they are checked against the installed version once, so a new mmengine
that moves them fails here with a clear message instead of deep in a run.
:func:`register_config_prefix` extends mmengine's config loader so that ``_base_`` may
name a config shipped inside ssvision (``ssvision::GROUP/NAME.py``).

:func:`install_atomic_checkpoints` (run when this module is imported, i.e. by every
``import ssvision``) makes training checkpoints safe against a failed write: mmengine
0.10 writes a checkpoint's bytes straight into its final file, so a full disk or a
file-size limit leaves a truncated ``iter_N.pth`` that looks like a checkpoint and
cannot be loaded. With it, checkpoints (and the work dir's ``last_checkpoint`` file)
are written to a temporary file in the same folder and renamed into place only when
complete (:func:`ssvision.utils.atomic.atomic_write`), and the old checkpoints that
``max_keep_ckpts`` or a new best checkpoint retire are deleted only after the new one is
in place.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import logging
import os
import os.path as osp
import warnings

import mmengine
from mmengine.model import is_model_wrapper
from torch import nn

from ssvision.utils.atomic import AtomicFile, atomic_write

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


def is_resuming(runner) -> bool:
    """Whether ``runner`` resumes a training run (mmengine keeps it in ``_resume``)."""
    return bool(getattr(runner, '_resume', False))


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


def init_iter_train_loop(loop, runner, dataloader, max_iters: int, val_begin: int,
                         val_interval: int, dynamic_intervals) -> None:
    """``IterBasedTrainLoop.__init__`` without its dataloader iterator: the state
    mmengine keeps in the loop's private ``_max_iters`` / ``_max_epochs`` / ``_epoch`` /
    ``_iter`` and its public fields; the caller creates the iterator when training
    starts (creating it draws worker seeds from the global RNG)."""
    from mmengine.runner.base_loop import BaseLoop
    from mmengine.runner.utils import calc_dynamic_intervals

    BaseLoop.__init__(loop, runner, dataloader)
    loop._max_iters = int(max_iters)
    if loop._max_iters != max_iters:
        raise ValueError(f'max_iters must be an integer, got {max_iters}')
    loop._max_epochs = 1
    loop._epoch = 0
    loop._iter = 0
    loop.val_begin = val_begin
    loop.val_interval = val_interval
    loop.stop_training = False
    if hasattr(loop.dataloader.dataset, 'metainfo'):
        loop.runner.visualizer.dataset_meta = loop.dataloader.dataset.metainfo
    loop.dataloader_iterator = None
    loop.dynamic_milestones, loop.dynamic_intervals = calc_dynamic_intervals(
        loop.val_interval, dynamic_intervals)


def update_val_interval(loop) -> None:
    """Switch ``loop.val_interval`` at a ``dynamic_intervals`` milestone (mmengine's
    private ``_decide_current_val_interval``)."""
    loop._decide_current_val_interval()


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


# ------------------------------------------------------------------------ checkpoints
#: Paths the wrapped save_checkpoint completed inside a CheckpointHook call (None when
#: no such call is running); a retired checkpoint is never deleted if it was just written
#: under the same name.
_written: list[str] | None = None


def _is_local(filename, file_client_args, backend_args) -> bool:
    if not isinstance(filename, (str, os.PathLike)) or '://' in os.fspath(filename):
        return False
    if file_client_args is not None:
        return file_client_args.get('backend', 'disk') in ('disk', 'local')
    return (backend_args or {}).get('backend', 'local') == 'local'


def _atomic_save_checkpoint(original):
    """mmengine's ``save_checkpoint(checkpoint, filename, ...)``, writing local files
    through :func:`atomic_write` (other backends, such as object stores, unchanged)."""

    @functools.wraps(original)
    def save_checkpoint(checkpoint, filename, file_client_args=None, backend_args=None):
        if not _is_local(filename, file_client_args, backend_args):
            return original(checkpoint, filename, file_client_args=file_client_args,
                            backend_args=backend_args)
        try:
            with atomic_write(filename) as tmp:
                original(checkpoint, tmp, file_client_args=file_client_args,
                         backend_args=backend_args)
        except OSError as err:
            raise OSError(
                err.errno, f'could not write the checkpoint {filename} ({err.strerror or err});'
                ' nothing was written under that name and the earlier checkpoints are '
                'untouched: free disk space (or raise the file-size limit, ulimit -f) and '
                'continue with ssvision train CONFIG --resume') from err
        if _written is not None:
            _written.append(osp.abspath(os.fspath(filename)))

    save_checkpoint._ssvision_atomic = True
    return save_checkpoint


def _removals_after_save(method):
    """A CheckpointHook method that deletes retired checkpoints (``max_keep_ckpts``, the
    previous best) and then saves a new one, changed to delete them only once the new
    one was saved: a failed save leaves every earlier checkpoint in place."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        global _written
        backend = getattr(self, 'file_backend', None)
        if backend is None or _written is not None:  # not set up yet, or nested
            return method(self, *args, **kwargs)
        pending: list[tuple] = []
        real = {name: getattr(backend, name) for name in ('remove', 'rmtree')}
        shadowed = {name: name in vars(backend) for name in real}
        for name in real:
            setattr(backend, name, functools.partial(_defer, pending, real[name]))
        _written = []
        try:
            method(self, *args, **kwargs)
            written = set(_written)
        finally:
            _written = None
            for name, fn in real.items():
                if shadowed[name]:
                    setattr(backend, name, fn)
                else:
                    delattr(backend, name)
        for remove, path in pending:
            if osp.abspath(os.fspath(path)) not in written:
                with contextlib.suppress(FileNotFoundError):
                    remove(path)

    wrapper._ssvision_atomic = True
    return wrapper


def _defer(pending: list, remove, path) -> None:
    pending.append((remove, path))


def _open_for_checkpoint_hook(file, mode='r', *args, **kwargs):
    """``open`` as CheckpointHook sees it: writes (its ``last_checkpoint`` file) are
    atomic (:class:`AtomicFile`), reads are the builtin's."""
    if isinstance(file, (str, os.PathLike)) and 'w' in mode and '+' not in mode:
        return AtomicFile(file, mode, *args, **kwargs)
    return builtins.open(file, mode, *args, **kwargs)


def install_atomic_checkpoints() -> None:
    """Make mmengine 0.10's checkpoint writing atomic (see the module docstring).

    * ``save_checkpoint`` (the function ``Runner.save_checkpoint`` ends in, imported by
      name into ``mmengine.runner.runner``, and the one ``CheckpointHook`` publishes
      with) writes local files through :func:`atomic_write`;
    * ``CheckpointHook`` writes ``last_checkpoint`` through :class:`AtomicFile` (its
      module's ``open``) and deletes retired checkpoints after the new one is saved.

    Idempotent; the changes are checked against mmengine's code and a missing name
    gives a warning (checkpoints are then written as mmengine writes them).
    """
    import importlib

    from mmengine.hooks import checkpoint_hook

    for module_name in ('mmengine.runner.checkpoint', 'mmengine.runner.runner',
                        'mmengine.runner'):
        module = importlib.import_module(module_name)
        fn = getattr(module, 'save_checkpoint', None)
        if fn is None:  # pragma: no cover - version dependent
            warnings.warn(f'{module_name}.save_checkpoint is gone in mmengine '
                          f'{mmengine.__version__}: checkpoints are not written atomically; '
                          'update ssvision/engine/mmengine_compat.py', stacklevel=2)
        elif not getattr(fn, '_ssvision_atomic', False):
            module.save_checkpoint = _atomic_save_checkpoint(fn)
    hook = checkpoint_hook.CheckpointHook
    for name in ('_save_checkpoint_with_step', '_save_best_checkpoint'):
        method = hook.__dict__.get(name)
        if method is None:  # pragma: no cover - version dependent
            warnings.warn(f'CheckpointHook.{name} is gone in mmengine {mmengine.__version__}: '
                          'retired checkpoints are deleted before the new one is saved; '
                          'update ssvision/engine/mmengine_compat.py', stacklevel=2)
        elif not getattr(method, '_ssvision_atomic', False):
            setattr(hook, name, _removals_after_save(method))
    writer = hook.__dict__.get('_save_checkpoint_with_step')
    if writer is not None and 'open' in getattr(writer, '__wrapped__', writer).__code__.co_names:
        checkpoint_hook.open = _open_for_checkpoint_hook
    else:  # pragma: no cover - version dependent
        warnings.warn('CheckpointHook no longer writes last_checkpoint with open() in '
                      f'mmengine {mmengine.__version__}: it is not written atomically; '
                      'update ssvision/engine/mmengine_compat.py', stacklevel=2)


# every ssvision run imports this module (ssvision/__init__.py): checkpoints written by
# any Runner in the process are atomic from here on
install_atomic_checkpoints()


# ----------------------------------------------------------------- a quiet console
#: Console records shortened to one line (all of them stay in the run's log file):
#: mmengine's environment table, the full config and the hook table.
_LONG_BLOCKS = (('System environment:', 'environment'), ('Config:\n', 'config'),
                ('Hooks will be executed in the following order', 'hooks'))
#: mmengine deprecation notices about its own internals, not the user's config.
_NOISE = ('"FileClient" will be deprecated', '"HardDiskBackend" is the alias of')
QUIET_ENV = 'SSVISION_VERBOSE'


class _QuietConsole(logging.Filter):
    """A console-handler filter: the environment, config and hook tables become one
    line naming the log file that holds them; mmengine's own deprecation notices go.
    Records are never changed (the file handler formats the same record): the one line
    comes from :meth:`format`, which replaces the console handler's own."""

    def __init__(self, handler: logging.Handler, log_file: str | None) -> None:
        super().__init__()
        self.log_file = log_file
        self.told = False
        self._format = handler.format
        handler.format = self.format

    @staticmethod
    def _block(record: logging.LogRecord) -> bool:
        msg = str(record.msg)
        return any(marker in msg for marker, _ in _LONG_BLOCKS)

    def filter(self, record: logging.LogRecord) -> bool:
        msg = str(record.msg)
        if any(n in msg for n in _NOISE):
            return False
        if self._block(record):
            if self.told:
                return False
            self.told = True
        return True

    def format(self, record: logging.LogRecord) -> str:
        if not self._block(record):
            return self._format(record)
        where = self.log_file or 'the run\'s log file'
        line = logging.makeLogRecord(dict(record.__dict__, args=(), msg=(
            f'environment, config and hooks: {where} ({QUIET_ENV}=1 prints them here)')))
        return self._format(line)


def install_quiet_console() -> None:
    """Give every mmengine logger's console handler :class:`_QuietConsole` (unless
    ``SSVISION_VERBOSE=1``): a user's console shows the run, the log file the rest."""
    from mmengine.logging import MMLogger
    init = MMLogger.__init__
    if getattr(init, '_ssvision_quiet', False):
        return

    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        if os.environ.get(QUIET_ENV) == '1':
            return
        files = [h.baseFilename for h in self.handlers if isinstance(h, logging.FileHandler)]
        for handler in self.handlers:
            if type(handler) is logging.StreamHandler:
                handler.addFilter(_QuietConsole(handler, files[0] if files else None))

    __init__._ssvision_quiet = True
    MMLogger.__init__ = __init__


install_quiet_console()
