"""Atomic file writes: a file appears under its name only once completely written."""

from __future__ import annotations

import builtins
import contextlib
import os
import os.path as osp
import uuid
from collections.abc import Iterator

__all__ = ['atomic_write', 'AtomicFile', 'temporary_path']


def temporary_path(path: str | os.PathLike) -> str:
    """A new, unused file name beside ``path`` for writing it atomically.

    Hidden (a leading dot) and ending in ``path``'s own extension (some writers, such
    as ``torch.export.save``, check it): ``DIR/.NAME.tmp-<8 hex>.EXT``. The file is
    created empty (exclusively, with the permissions a plain ``open`` would give), so
    two writers never share one.
    """
    path = os.fspath(path)
    folder, base = osp.split(osp.abspath(path))
    stem, ext = osp.splitext(base)
    while True:
        tmp = osp.join(folder, f'.{stem}.tmp-{uuid.uuid4().hex[:8]}{ext}')
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:  # pragma: no cover - a 32-bit name collision
            continue


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)


def _fsync_path(path: str, directory: bool = False) -> None:
    """Flush a file (or a folder's entries) to the disk; best effort for folders
    (some file systems refuse to open them)."""
    try:
        fd = os.open(path, os.O_RDONLY | (getattr(os, 'O_DIRECTORY', 0) if directory else 0))
    except OSError:
        if directory:
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, fsync: bool = True) -> Iterator[str]:
    """Write ``path`` all at once: yields a temporary file name beside it
    (:func:`temporary_path`) for the caller to write; when the block ends without an
    error the file is flushed to the disk and renamed over ``path`` (``os.replace``).
    On any error (a full disk, a file-size limit, an interrupt) the temporary file is
    removed and ``path`` keeps what it had before, so a failed write never leaves a
    truncated file under a real name. The folder is created when missing.

    ::

        with atomic_write('out/model.pth') as tmp:
            torch.save(state, tmp)

    Args:
        path: the final file.
        fsync: flush the data (and the rename) to the disk before returning, so a
            machine crash cannot leave an empty file under the name either. Default
            True.
    """
    path = os.fspath(path)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    tmp = temporary_path(path)
    try:
        yield tmp
        if fsync:
            _fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        _remove_quietly(tmp)
        raise
    if fsync:
        _fsync_path(osp.dirname(osp.abspath(path)), directory=True)


class AtomicFile:
    """A file opened for writing that appears under its name only when closed after a
    complete write (see :func:`atomic_write`).

    Used as ``open`` is (``with AtomicFile(path, 'w') as f: f.write(...)``); everything
    but :meth:`close` goes to the underlying file object. Leaving the ``with`` block on
    an exception discards the write and leaves ``path`` as it was.
    """

    def __init__(self, path: str | os.PathLike, mode: str = 'w', *args, fsync: bool = True,
                 **kwargs) -> None:
        if not any(c in mode for c in 'wx') or '+' in mode:
            raise ValueError(f'AtomicFile writes whole files (mode w / wb), got {mode!r}')
        self.path, self._fsync, self._done = os.fspath(path), fsync, False
        os.makedirs(osp.dirname(osp.abspath(self.path)), exist_ok=True)
        self._tmp = temporary_path(self.path)
        try:
            self._file = builtins.open(self._tmp, mode.replace('x', 'w'), *args, **kwargs)
        except BaseException:
            _remove_quietly(self._tmp)
            raise

    def __getattr__(self, name: str):
        if name == '_file':  # __init__ failed before opening it
            raise AttributeError(name)
        return getattr(self._file, name)

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()

    def close(self) -> None:
        """Finish the write: flush, rename into place. A failure discards it."""
        if self._done:
            return
        self._done = True
        try:
            self._file.flush()
            if self._fsync:
                os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self._tmp, self.path)
        except BaseException:
            self._file.close()
            _remove_quietly(self._tmp)
            raise

    def discard(self) -> None:
        """Drop what was written; ``path`` stays as it was."""
        if not self._done:
            self._done = True
            self._file.close()
            _remove_quietly(self._tmp)
