"""A new user's whole path through the ``ssvision`` command, from a folder outside the
checkout: labeled class folders plus a nested folder of unlabeled photos -> FixMatch with
the packaged config (only the data root changed, in a child config) -> predictions on new
images -> ONNX and plain weights.

Catches a step that only works from the repository root or with built-in data, a child
config that cannot change the data root, and an export or prediction that does not take
the model the run trained (the checkpoint's class names must come back out).
"""

import json
import os.path as osp

import cv2
import numpy as np
import pytest

pytest.importorskip('sklearn')

CONFIG = 'ssvision::custom/fixmatch_resnet18_own-folders.py'


def _photos():
    from ssvision.datasets.scenes import sample_backgrounds
    return sample_backgrounds()


def _write_crops(folder, photo, n, rng, nested=False):
    for i in range(n):
        y, x = rng.integers(0, photo.shape[0] - 64), rng.integers(0, photo.shape[1] - 64)
        crop = np.ascontiguousarray(photo[y:y + 64, x:x + 64, ::-1])
        sub = folder / (f'part{i % 2}' if nested else '')
        sub.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(sub / f'{i}.jpg'), crop)


def test_own_folders_train_infer_export_from_another_folder(tmp_path, monkeypatch):
    from ssvision.cli import main as cli
    china, flower = _photos()
    rng = np.random.default_rng(0)
    root = tmp_path / 'my_photos'
    _write_crops(root / 'labeled' / 'china', china, 3, rng)
    _write_crops(root / 'labeled' / 'flower', flower, 3, rng)
    _write_crops(root / 'unlabeled', china, 4, rng, nested=True)
    _write_crops(root / 'unlabeled', flower, 4, rng, nested=True)
    _write_crops(tmp_path / 'new', flower, 2, rng)
    work = tmp_path / 'project'
    work.mkdir()
    monkeypatch.chdir(work)
    # the user's config: the packaged one with their data root (one change; the
    # validation and test folders follow it)
    (work / 'mine.py').write_text(f"_base_ = ['{CONFIG}']\ndata_root = '{root}'\n")
    # smaller and shorter for the test, through the config's own knobs
    shrink = ['max_iters=2', 'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2',
              'labeled_batch_size=2', 'unlabeled_ratio=2', 'img_size=32',
              'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
              'val_dataloader.batch_size=3']
    assert cli(['train', 'mine.py', '--work-dir', 'run', '--cfg-options', *shrink]) == 0
    ckpt = str(work / 'run' / 'iter_2.pth')
    assert osp.exists(ckpt)
    assert cli(['test', 'mine.py', ckpt, '--work-dir', 'test', '--out', 'metrics.json',
                '--cfg-options', *shrink]) == 0
    assert 'teacher/top1' in json.loads((work / 'metrics.json').read_text())

    size = ['img_size=32']
    assert cli(['infer', 'mine.py', ckpt, str(tmp_path / 'new'), '--out', 'preds',
                '--device', 'cpu', '--cfg-options', *size]) == 0
    preds = json.loads((work / 'preds' / 'predictions.json').read_text())
    items = preds if isinstance(preds, list) else preds.get('predictions', preds)
    assert len(items) == 2
    assert all(p['class'] in ('china', 'flower') for p in items)

    assert cli(['export', 'mine.py', ckpt, '--format', 'plain', '--out', 'export',
                '--cfg-options', *size]) == 0
    assert list((work / 'export').glob('*.plain.json'))
    pytest.importorskip('onnxruntime')
    assert cli(['export', 'mine.py', ckpt, '--format', 'onnx', '--out', 'export',
                '--cfg-options', *size]) == 0
    assert list((work / 'export').glob('*.onnx'))
