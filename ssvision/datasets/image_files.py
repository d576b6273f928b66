"""Image files as users have them: found at any depth, checked cheaply, failures counted.

A folder of user images may hold files that are not images after all (an HTML error
page saved as ``.jpg``, a zero-byte download, a truncated copy). Two checks find them:

* **at build time**, in the main process, :func:`check_images` reads each file's
  *header* with Pillow (``Image.open``, which identifies the format and parses the size
  and mode without decoding pixels): about 40 microseconds per file from a warm disk
  cache, 0.4 s for 10,000 files (one file open and a few KiB read each on a cold disk).
  ``check='decode'`` decodes every file instead (milliseconds per photo: minutes for a
  large folder; an audit, not a default); ``check='none'`` trusts the listing.
* **at load time**, a file whose header was fine but whose pixels are not (a truncated
  JPEG or PNG) fails to decode inside a DataLoader worker. :class:`UnreadableLog`
  records it in a small file shared by every process that loads the dataset, so the
  count reaches the main process whatever the number of workers or their start method.

Labeled data are few and an unreadable labeled file cannot be skipped (its label would
go with it), so the labeled datasets decode every file once at build instead
(:func:`decode_files`, several threads: OpenCV releases the GIL while decoding) and name
the files that fail. :func:`image_size` gives the size an image will have once read
(from its header, EXIF orientation applied as OpenCV applies it).
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .base import read_image

__all__ = ['IMG_EXTENSIONS', 'CHECK_MODES', 'find_images', 'check_images',
           'describe_files', 'UnreadableLog', 'decode_files', 'image_size',
           'resolve_check']

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.pgm', '.tif', '.tiff', '.webp')
#: how image files are checked when a dataset is built
CHECK_MODES = ('header', 'decode', 'none')
#: files named in one warning or error message
NAMED_FILES = 5
#: threads that decode files at build
DECODE_THREADS = 8
#: formats whose EXIF orientation OpenCV applies when it decodes them
_EXIF_ROTATED_FORMATS = ('JPEG', 'MPO', 'PNG')


def find_images(root: str, extensions: Sequence[str] = IMG_EXTENSIONS) -> list[str]:
    """Every file under ``root`` (any depth, symbolic links followed) whose extension,
    case-insensitive, is in ``extensions``; sorted by path.

    Raises:
        FileNotFoundError: ``root`` is not a folder (the message names it).
        ValueError: no image file under ``root`` (the message names it).
    """
    root = str(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f'image folder not found: {root}')
    extensions = tuple(e.lower() for e in extensions)
    paths = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames.sort()
        paths += [os.path.join(dirpath, fn) for fn in sorted(filenames)
                  if os.path.splitext(fn)[1].lower() in extensions]
    if not paths:
        raise ValueError(f'{root}: no image files with extensions {extensions} '
                         '(searched every sub-folder)')
    return paths


def _header_problem(path: str) -> str | None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.size  # noqa: B018  (parsed from the header)
    except Exception as e:  # noqa: BLE001  Pillow raises many types for a bad header
        return f'{type(e).__name__}: {e}'.replace(str(path), '<file>')
    return None


def _decode_problem(path: str, color_type: str) -> str | None:
    try:
        read_image(path, color_type)
    except OSError as e:
        return str(e).replace(str(path), '<file>')
    return None


def resolve_check(check: str | None, subset: str | None) -> str:
    """The build-time check of a dataset: ``check``, or by default ``'decode'`` for data
    whose labels are used (``subset`` ``'labeled'``, ``'test'`` or None) and ``'header'``
    for an ``'unlabeled'`` subset."""
    if check is None:
        return 'header' if subset == 'unlabeled' else 'decode'
    if check not in CHECK_MODES:
        raise ValueError(f'check must be one of {CHECK_MODES} or None, got {check!r}')
    return check


def parallel_map(fn: Callable[[Any], Any], paths: Sequence[Any]) -> list[Any]:
    """``[fn(p) for p in paths]`` on up to :data:`DECODE_THREADS` threads, in order
    (file reads and OpenCV / Pillow decoding release the GIL)."""
    threads = min(DECODE_THREADS, os.cpu_count() or 1, len(paths))
    if threads <= 1:
        return [fn(p) for p in paths]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(fn, paths))


def decode_files(paths: Sequence[str], color_type: str = 'color'
                 ) -> list[tuple[int, int] | str]:
    """Decode every file as :func:`~ssvision.datasets.read_image` will when it is loaded.

    Args:
        paths: image files.
        color_type: ``'color'`` or ``'grayscale'``.

    Returns:
        list: per file, in input order, its ``(height, width)`` once decoded, or the
        reason (a str) it cannot be read.
    """
    def one(path: str) -> tuple[int, int] | str:
        try:
            return tuple(read_image(path, color_type).shape[:2])
        except OSError as e:
            return str(e).replace(str(path), '<file>')

    return parallel_map(one, paths)


def image_size(path: str) -> tuple[int, int]:
    """``(height, width)`` of an image as :func:`~ssvision.datasets.read_image` returns
    it, from the file's header (Pillow decodes no pixels).

    OpenCV turns JPEG and PNG files by their EXIF orientation (tags 5 to 8 swap height
    and width); Pillow's header size is the stored one, so it is swapped here likewise.

    Raises:
        FileNotFoundError: no such file.
        OSError: the header cannot be read (the message names the file).
    """
    from PIL import Image

    if not os.path.isfile(path):
        raise FileNotFoundError(f'image file not found: {path}')
    try:
        with Image.open(path) as im:
            w, h = im.size
            # the EXIF block read with the header (``getexif`` would decode a PNG to find
            # one after the pixels)
            raw = im.info.get('exif') if im.format in _EXIF_ROTATED_FORMATS else None
            turned = False
            if raw:
                exif = Image.Exif()
                exif.load(raw)
                turned = exif.get(0x0112, 1) in (5, 6, 7, 8)
    except Exception as e:  # noqa: BLE001  Pillow raises many types for a bad header
        raise OSError(f'cannot read the header of image file {path}: '
                      f'{type(e).__name__}: {e}') from e
    return (w, h) if turned else (h, w)


def check_images(paths: Sequence[str], check: str = 'header',
                 color_type: str = 'color') -> tuple[list[str], list[tuple[str, str]]]:
    """Split image files into readable ones and unreadable ones (see the module docstring).

    Args:
        paths: image files.
        check: ``'header'`` (Pillow parses each header), ``'decode'`` (OpenCV decodes each
            file as :func:`~ssvision.datasets.read_image` will) or ``'none'``.
        color_type: how ``'decode'`` reads the files.

    Returns:
        tuple: ``(readable paths, [(path, reason), ...])``, both in input order.
    """
    if check not in CHECK_MODES:
        raise ValueError(f'check must be one of {CHECK_MODES}, got {check!r}')
    if check == 'none':
        return list(paths), []
    if check == 'header':
        problems = [_header_problem(p) for p in paths]
    else:
        problems = parallel_map(lambda p: _decode_problem(p, color_type), paths)
    good, bad = [], []
    for path, problem in zip(paths, problems):
        if problem is None:
            good.append(path)
        else:
            bad.append((path, problem))
    return good, bad


def describe_files(files: Sequence[str | tuple[str, str]], limit: int = NAMED_FILES) -> str:
    """``'a.jpg (reason), b.jpg (reason) and 3 more'``: the first ``limit`` files named."""
    named = [f if isinstance(f, str) else f'{f[0]} ({f[1]})' for f in files[:limit]]
    more = len(files) - len(named)
    return ', '.join(named) + (f' and {more} more' if more > 0 else '')


def _remove_if_owner(path: str, owner: int) -> None:
    if os.getpid() == owner:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


class UnreadableLog:
    """Files that failed to decode at load time, shared by a dataset's processes.

    Each failure is one line (the path, json-quoted) appended to a file in the temporary
    folder; appends of a short line are atomic, so DataLoader workers (forked or
    spawned: only the file name is pickled) write to it concurrently and the main
    process reads it. The file is created on the first failure and removed when the
    creating process's log is garbage-collected or exits.
    """

    def __init__(self) -> None:
        self.path = os.path.join(tempfile.gettempdir(),
                                 f'ssvision-unreadable-{os.getpid()}-{uuid.uuid4().hex}.txt')
        self._owner = os.getpid()
        weakref.finalize(self, _remove_if_owner, self.path, self._owner)

    def __getstate__(self) -> dict:
        return {'path': self.path, '_owner': self._owner}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)  # a copy never removes the creator's file

    def add(self, path: str) -> int:
        """Record one failure.

        Returns:
            int: its position among all failures recorded so far by every process
            (1 for the first), so exactly one process sees each position.
        """
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (json.dumps(str(path)) + '\n').encode())
            end = os.lseek(fd, 0, os.SEEK_CUR)
        finally:
            os.close(fd)
        with open(self.path, 'rb') as f:
            return f.read(end).count(b'\n')

    def files(self) -> list[str]:
        """Failed files, each once, in the order they first failed."""
        try:
            with open(self.path, encoding='utf-8') as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return []
        return list(dict.fromkeys(json.loads(line) for line in lines if line))

    def __len__(self) -> int:
        return len(self.files())
