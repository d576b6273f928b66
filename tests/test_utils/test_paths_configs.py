"""Packaged configs (ssvision::), data search paths and the ssvision command."""

import gzip
import os
import os.path as osp
import struct
import subprocess
import sys

import numpy as np
import pytest

from ssvision.utils import config_path, configs_dir, load_config
from ssvision.utils.paths import DATA_ENV, find_data, find_dataset


def test_packaged_names_resolve_and_inherit(tmp_path):
    path = config_path('ssvision::fixmatch/fixmatch_tinycnn_2k_mnist5k-4pc.py')
    assert path.startswith(configs_dir()) and osp.isfile(path)
    assert config_path('ssvision::fixmatch/fixmatch_tinycnn_2k_mnist5k-4pc') == path
    assert config_path('some/file.py') == 'some/file.py'  # paths pass through
    with pytest.raises(FileNotFoundError, match='fixmatch_tinycnn_2k_mnist5k-4pc.py'):
        config_path('ssvision::fixmatch/nope.py')  # the message lists the group's configs
    # a user's config in any folder inherits a packaged one and overrides a key; catches
    # a prefix that only the tools understand (mmengine resolves _base_ itself)
    user = tmp_path / 'mine.py'
    user.write_text("_base_ = ['ssvision::fixmatch/fixmatch_tinycnn_2k_mnist5k-4pc.py']\n"
                    'train_cfg = dict(max_iters=7)\n')
    cfg = load_config(str(user))
    assert cfg.train_cfg.max_iters == 7 and cfg.model.type == 'FixMatch'
    assert cfg.train_cfg.val_interval == 500  # the rest comes from the base


def test_data_env_is_searched_first(tmp_path, monkeypatch):
    from ssvision.datasets.split import load_split, save_split
    env = tmp_path / 'store'
    (env / 'splits').mkdir(parents=True)
    save_split({'labeled': [1, 2], 'unlabeled': [3], 'test': [4]}, str(env / 'splits/a.json'))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=DATA_ENV):
        load_split('data/splits/a.json')
    monkeypatch.setenv(DATA_ENV, str(env))
    assert find_data('data/splits/a.json') == str(env / 'splits/a.json')
    assert load_split('data/splits/a.json')['labeled'] == [1, 2]
    assert find_data('/abs/x') == '/abs/x' and find_data(None) is None


def _write_idx(folder, prefix, n):
    os.makedirs(folder, exist_ok=True)
    imgs = np.random.default_rng(0).integers(0, 255, (n, 28, 28), dtype=np.uint8)
    with gzip.open(osp.join(folder, f'{prefix}-images-idx3-ubyte.gz'), 'wb') as f:
        f.write(struct.pack('>IIII', 2051, n, 28, 28) + imgs.tobytes())
    with gzip.open(osp.join(folder, f'{prefix}-labels-idx1-ubyte.gz'), 'wb') as f:
        f.write(struct.pack('>II', 2049, n) + (np.arange(n) % 10).astype(np.uint8).tobytes())


def test_fashion_mnist_default_root_is_a_search(tmp_path, monkeypatch):
    from ssvision.datasets import FashionMNIST
    _write_idx(str(tmp_path / 'fashion-mnist'), 't10k', 20)
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    # catches a fixed install folder as the default (the env folder must win)
    assert len(FashionMNIST(train=False)) == 20
    assert find_dataset('fashion-mnist') == str(tmp_path / 'fashion-mnist')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match='looked in .*nothing-here'):
        find_dataset('nothing-here')


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, '-m', 'ssvision.cli', *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120)


def test_cli_dispatches_to_the_tools(tmp_path):
    from ssvision import __version__
    out = _cli('--version')
    assert out.returncode == 0 and out.stdout.strip() == f'ssvision {__version__}'
    out = _cli('configs', 'fixmatch', cwd=str(tmp_path))
    assert 'ssvision::fixmatch/fixmatch_tinycnn_2k_mnist5k-4pc.py' in out.stdout.split()
    out = _cli('frobnicate')
    assert out.returncode == 2 and 'unknown command' in out.stderr
    out = _cli('split', 'coco', '-h')
    assert out.returncode == 0 and 'ssvision split coco' in out.stdout
    out = _cli('train', '-h')
    assert out.returncode == 0 and 'ssvision::GROUP/NAME.py' in out.stdout


def test_dataset_roots_and_annotation_files_are_searched(tmp_path, monkeypatch):
    # Catches a search applied to split files only: the folders and the COCO json a
    # config names as data/... must be found under $SSVISION_DATA as well.
    import json

    import cv2

    from ssvision.datasets import CocoDetDataset, ImageFolder
    from ssvision.evaluation import CocoDetMetric
    store = tmp_path / 'store'
    img = np.full((32, 32, 3), 128, np.uint8)
    for cls in ('a', 'b'):
        (store / 'imgs' / cls).mkdir(parents=True)
        cv2.imwrite(str(store / 'imgs' / cls / '1.png'), img)
    (store / 'coco' / 'images').mkdir(parents=True)
    cv2.imwrite(str(store / 'coco' / 'images' / '1.png'), img)
    (store / 'coco' / 'annotations.json').write_text(json.dumps({
        'images': [{'id': 1, 'file_name': '1.png', 'height': 32, 'width': 32}],
        'annotations': [{'id': 1, 'image_id': 1, 'category_id': 1, 'bbox': [2, 2, 10, 10],
                         'area': 100, 'iscrowd': 0}],
        'categories': [{'id': 1, 'name': 'thing'}]}))
    work = tmp_path / 'elsewhere'
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv(DATA_ENV, str(store))
    assert len(ImageFolder('data/imgs')) == 2
    coco = CocoDetDataset('data/coco/annotations.json', img_dir='data/coco/images')
    assert len(coco) == 1 and coco.ann_file == str(store / 'coco' / 'annotations.json')
    assert CocoDetMetric(ann_file='data/coco/annotations.json').ann_file == \
        str(store / 'coco' / 'annotations.json')
