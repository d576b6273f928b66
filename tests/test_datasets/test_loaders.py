"""Loaders read real images back from files written in each format."""

from __future__ import annotations

import gzip
import os
import pickle
import re
import struct

import cv2
import numpy as np
import pytest

from ssvision.datasets.cifar import CIFAR10, CIFAR100
from ssvision.datasets.digits import Digits8x8
from ssvision.datasets.image_folder import ImageFolder
from ssvision.datasets.mnist import (
    FASHION_MNIST_CLASSES,
    FashionMNIST,
    MNIST5k,
    MNISTIdx,
    read_idx,
    save_idx,
)
from ssvision.registry import DATASETS

FASHION_ROOT = '/usr/share/datasets/fashion-mnist'


@pytest.fixture(scope='module')
def digits():
    ds = Digits8x8()
    return ds._images, ds.labels


def _rgb32(images: np.ndarray) -> np.ndarray:
    """(N, 8, 8, 1) digits -> (N, 32, 32, 3) uint8 with distinct channels."""
    out = np.stack([cv2.resize(im[..., 0], (32, 32), interpolation=cv2.INTER_NEAREST)
                    for im in images])
    return np.ascontiguousarray(np.stack([out, 255 - out, out // 2], axis=-1))


def _write_idx_by_hand(path: str, array: np.ndarray) -> None:
    header = struct.pack('>BBBB', 0, 0, 0x08, array.ndim)
    header += struct.pack('>' + 'I' * array.ndim, *array.shape)
    with gzip.open(path, 'wb') as f:
        f.write(header + array.astype(np.uint8).tobytes())


# ----------------------------------------------------------------------------- idx
def test_digits8x8(digits):
    images, labels = digits
    assert images.shape == (1797, 8, 8, 1) and images.dtype == np.uint8
    assert images.max() == 255 and images.min() == 0
    assert np.bincount(labels).min() > 170


@pytest.mark.parametrize('gz', [True, False])
def test_idx_round_trip(tmp_path, digits, gz):
    images, labels = digits
    ext = '.gz' if gz else ''
    img_file, lab_file = str(tmp_path / f'img-idx3{ext}'), str(tmp_path / f'lab-idx1{ext}')
    if gz:  # independent writer for one of the cases
        _write_idx_by_hand(img_file, images[..., 0])
        _write_idx_by_hand(lab_file, labels)
        with open(img_file, 'rb') as f:
            assert f.read(2) == b'\x1f\x8b'
    else:
        save_idx(images[..., 0], img_file)
        save_idx(labels.astype(np.uint8), lab_file)
        with open(img_file, 'rb') as f:
            assert f.read(4) == b'\x00\x00\x08\x03'
    ds = MNISTIdx(img_file, lab_file)
    assert len(ds) == len(images)
    np.testing.assert_array_equal(ds._images, images)
    np.testing.assert_array_equal(ds.labels, labels)
    assert ds.names[:3] == [0, 1, 2]
    assert ds.metainfo['classes'] == tuple(str(i) for i in range(10))
    assert ds[5]['img'].shape == (8, 8, 1)


def test_idx_bad_files(tmp_path, digits):
    images, labels = digits
    bad = tmp_path / 'bad-idx3'
    bad.write_bytes(b'\x12\x34\x56\x78' + bytes(64))
    with pytest.raises(ValueError, match='not an idx file') as e:
        read_idx(str(bad))
    assert str(bad) in str(e.value)
    lab_file = str(tmp_path / 'lab-idx1')
    save_idx(labels[:10].astype(np.uint8), lab_file)
    with pytest.raises(ValueError, match='expected 3'):  # labels passed as images
        MNISTIdx(lab_file, lab_file)
    trunc = str(tmp_path / 'trunc-idx3')
    save_idx(images[:10, ..., 0], trunc)
    with open(trunc, 'rb') as f:
        data = f.read()
    with open(trunc, 'wb') as f:
        f.write(data[:-5])
    with pytest.raises(ValueError, match='header says'):
        read_idx(trunc)
    img_file = str(tmp_path / 'img-idx3')
    save_idx(images[:12, ..., 0], img_file)
    with pytest.raises(ValueError, match='12 images'):
        MNISTIdx(img_file, lab_file)
    with pytest.raises(FileNotFoundError, match='nope'):
        MNISTIdx(str(tmp_path / 'nope'), lab_file)


def test_label_out_of_range_names_file(tmp_path, digits):
    images, labels = digits
    img_file, lab_file = str(tmp_path / 'img-idx3.gz'), str(tmp_path / 'lab-idx1.gz')
    save_idx(images[..., 0], img_file)
    save_idx(labels.astype(np.uint8), lab_file)
    with pytest.raises(ValueError) as e:
        MNISTIdx(img_file, lab_file, num_classes=5)
    msg = str(e.value)
    assert lab_file in msg and 'label 5' in msg and 'num_classes=5' in msg


# ------------------------------------------------------------------ MNIST-like data
def test_mnist5k():
    ds = MNIST5k()
    assert len(ds) == 5000
    assert ds._images.shape == (5000, 28, 28, 1) and ds._images.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(ds.labels), [500] * 10)
    assert ds._images.max() == 255
    assert ds.source.endswith('mnist_5k.csv.gz')


def test_mnist5k_bad_csv(tmp_path):
    bad = tmp_path / 'x.csv'
    bad.write_text('1,2,3\n4,5,6\n')
    with pytest.raises(ValueError, match='784 pixels'):
        MNIST5k(csv_file=str(bad))


@pytest.mark.skipif(not os.path.isdir(FASHION_ROOT), reason='dataset-fashion-mnist missing')
def test_fashion_mnist():
    test = FashionMNIST(train=False)
    assert len(test) == 10000 and test._images.shape == (10000, 28, 28, 1)
    np.testing.assert_array_equal(np.bincount(test.labels), [1000] * 10)
    assert test.metainfo['classes'] == FASHION_MNIST_CLASSES
    train = DATASETS.build(dict(type='FashionMNIST', train=True))
    assert len(train) == 60000


def test_fashion_mnist_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        FashionMNIST(root=str(tmp_path))
    assert 'install with `apt-get install dataset-fashion-mnist` (or pass root=)' in str(e.value)


# ----------------------------------------------------------------------------- CIFAR
def test_cifar10_round_trip(tmp_path, digits):
    images, labels = digits
    rgb = _rgb32(images[:60])
    lab = labels[:60]
    names = [f'class_{i}'.encode() for i in range(10)]
    for b in range(6):  # python-2 style pickles: bytes keys, (N, 3072) R/G/B planes
        sl = slice(b * 10, (b + 1) * 10)
        d = {b'batch_label': b'batch', b'labels': [int(x) for x in lab[sl]],
             b'data': rgb[sl].transpose(0, 3, 1, 2).reshape(10, -1),
             b'filenames': [b'f.png'] * 10}
        name = f'data_batch_{b + 1}' if b < 5 else 'test_batch'
        with open(tmp_path / name, 'wb') as f:
            pickle.dump(d, f, protocol=2)
    with open(tmp_path / 'batches.meta', 'wb') as f:
        pickle.dump({b'label_names': names, b'num_vis': 3072}, f, protocol=2)
    train = CIFAR10(str(tmp_path))
    assert len(train) == 50
    np.testing.assert_array_equal(train._images, rgb[:50])
    np.testing.assert_array_equal(train.labels, lab[:50])
    assert train.metainfo['classes'] == tuple(f'class_{i}' for i in range(10))
    test = CIFAR10(str(tmp_path), train=False)
    np.testing.assert_array_equal(test._images, rgb[50:])
    assert test[3]['img'].shape == (32, 32, 3)
    os.remove(tmp_path / 'data_batch_3')
    with pytest.raises(FileNotFoundError, match='data_batch_3'):
        CIFAR10(str(tmp_path))


def test_cifar100_round_trip(tmp_path, digits):
    images, labels = digits
    root = tmp_path / 'cifar-100-python'
    root.mkdir()
    rgb = _rgb32(images[:40])
    fine = labels[:40] * 10 + np.arange(40) % 10
    coarse = labels[:40] // 5
    for name, sl in (('train', slice(0, 30)), ('test', slice(30, 40))):
        d = {'data': rgb[sl].transpose(0, 3, 1, 2).reshape(-1, 3072),
             'fine_labels': fine[sl].tolist(), 'coarse_labels': coarse[sl].tolist()}
        with open(root / name, 'wb') as f:
            pickle.dump(d, f)
    with open(root / 'meta', 'wb') as f:
        pickle.dump({'fine_label_names': [f'f{i}' for i in range(100)],
                     'coarse_label_names': [f'c{i}' for i in range(20)]}, f)
    ds = CIFAR100(str(tmp_path))  # parent folder is found too
    assert ds.num_classes == 100 and len(ds) == 30
    np.testing.assert_array_equal(ds._images, rgb[:30])
    np.testing.assert_array_equal(ds.labels, fine[:30])
    co = CIFAR100(str(root), train=False, label_key='coarse_labels')
    assert co.num_classes == 20 and co.metainfo['classes'][0] == 'c0'
    np.testing.assert_array_equal(co.labels, coarse[30:])


# ---------------------------------------------------------------------- image folder
def test_image_folder(tmp_path, digits):
    images, labels = digits
    rgb = _rgb32(images[:30])
    expected = {}
    for i in range(30):
        cls = f'digit_{labels[i]}'
        sub = tmp_path / cls / ('nested' if i % 2 else '')
        sub.mkdir(parents=True, exist_ok=True)
        ext = '.png' if i % 3 else '.PNG'
        path = sub / f'{i:03d}{ext}'
        assert cv2.imwrite(str(path), cv2.cvtColor(rgb[i], cv2.COLOR_RGB2BGR))
        expected[os.path.relpath(path, tmp_path).replace(os.sep, '/')] = (rgb[i], labels[i])
    (tmp_path / 'digit_0' / 'notes.txt').write_text('not an image')
    ds = ImageFolder(str(tmp_path))
    assert len(ds) == 30
    classes = sorted({f'digit_{x}' for x in labels[:30]})
    assert ds.metainfo['classes'] == tuple(classes)
    for i in range(len(ds)):
        out = ds[i]
        img, lab = expected[ds.names[i]]
        np.testing.assert_array_equal(out['img'], img)  # png is lossless, RGB order
        assert classes[out['gt_label']] == f'digit_{lab}'
        assert out['img_path'] == os.path.join(str(tmp_path), ds.names[i])
    gray = ImageFolder(str(tmp_path), color_type='grayscale')
    assert gray[0]['img'].shape == (32, 32, 1)


def test_image_folder_unreadable(tmp_path, digits):
    images, _ = digits
    (tmp_path / 'a').mkdir()
    assert cv2.imwrite(str(tmp_path / 'a' / 'good.png'), images[0])
    broken = tmp_path / 'a' / 'broken.png'
    broken.write_bytes(b'this is not a png')
    with pytest.raises(OSError, match=re.escape(str(broken))):
        ImageFolder(str(tmp_path))  # labeled files are decoded at build by default
    ds = ImageFolder(str(tmp_path), check='none')
    i = ds.names.index('a/broken.png')
    with pytest.raises(OSError) as e:
        ds[i]
    assert str(broken) in str(e.value)
    with pytest.raises(ValueError, match='no image files'):
        ImageFolder(str(tmp_path), extensions=('.jpg',))


# ------------------------------------------------------------------------ getitem
def test_getitem_keys(digits):
    seen = []

    def identity(results):
        seen.append(dict(results))
        return results

    ds = Digits8x8(pipeline=[identity])
    out = ds[7]
    assert set(out) == {'img', 'gt_label', 'true_label', 'sample_idx'}
    assert out['img'].dtype == np.uint8 and out['img'].shape == (8, 8, 1)
    assert out['gt_label'] == out['true_label'] == ds.get_label(7)
    assert out['sample_idx'] == 7
    out = ds[(7, 1234)]
    assert out['sample_seed'] == 1234 and out['sample_idx'] == 7
    out['img'][:] = 0  # results own their image
    assert ds[7]['img'].any()
    unl = Digits8x8(subset='unlabeled', pipeline=[identity])
    out = unl[(3, 5)]
    assert out['gt_label'] == -1 and out['true_label'] == int(digits[1][3])
    assert isinstance(out['true_label'], int) and isinstance(out['gt_label'], int)
    with pytest.raises(IndexError):
        ds[len(ds)]
