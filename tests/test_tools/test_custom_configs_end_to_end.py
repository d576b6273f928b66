"""The segmentation and detection examples of ``configs/custom/`` (docs/own_data.md), run
as a user runs them: the documented folder layout, a config of one's own that sets only
what the docs say to set, then train, test, infer and export through the ``ssvision``
command from another folder. (Classification: tests/test_tools/test_user_story.py.)

Catches a knob the example's values do not read (a child's data root, class count or crop
that changes nothing), a test loader left on the example's placeholder folder, and a
step that needs more than the documented settings."""

import json
import os
import shutil

import cv2
import numpy as np
import pytest

pytest.importorskip('sklearn')


def _photos(folder, n, seed=0, size=(70, 90)):
    from ssvision.datasets.scenes import sample_backgrounds
    rng = np.random.default_rng(seed)
    photo = sample_backgrounds()[0]
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        y, x = rng.integers(0, photo.shape[0] - size[0]), rng.integers(0, photo.shape[1] - size[1])
        cv2.imwrite(str(folder / f'{i}.jpg'), photo[y:y + size[0], x:x + size[1], ::-1])


def _seg_data(root):
    from ssvision.datasets import write_voc_scenes
    write_voc_scenes(str(root / 'scenes'), 4, seed=0, items='mnist5k', size=64, binary=True)
    (root / 'labeled').mkdir(parents=True)
    shutil.move(str(root / 'scenes' / 'JPEGImages'), str(root / 'labeled' / 'images'))
    shutil.move(str(root / 'scenes' / 'SegmentationClass'), str(root / 'labeled' / 'masks'))
    shutil.rmtree(root / 'scenes')
    _photos(root / 'unlabeled' / 'a', 4)
    return ("num_classes = 2\nclasses = ('background', 'digit')\n",
            ['crop=(48,48)', 'model.model.aspp_channels=16',
             'model.model.decoder_channels=16'])


def _det_data(root):
    from ssvision.datasets import write_coco_scenes
    write_coco_scenes(str(root), 6, seed=0, items='mnist5k', size=64)
    _photos(root / 'unlabeled', 4)
    return ('num_classes = 10\n',
            ['short_side=64', 'warmup_iters=1', 'model.semi_train_cfg.burn_in_iters=1',
             'model.selector.floor=0.0', 'model.selector.min_score=0.0'])


@pytest.mark.parametrize('config,make', [
    ('ssvision::custom/fixmatch_deeplabv3plus-r18_own-folders.py', _seg_data),
    ('ssvision::custom/semi_det_retinanet-r18_own-coco-folder.py', _det_data),
])
def test_custom_example_trains_tests_infers_and_exports(tmp_path, monkeypatch, config, make):
    from ssvision.cli import main as cli
    root = tmp_path / 'my_data'
    settings, small = make(root)
    work = tmp_path / 'project'
    work.mkdir()
    monkeypatch.chdir(work)
    # the user's config: the data root and the documented class settings, nothing else
    (work / 'mine.py').write_text(f"_base_ = ['{config}']\ndata_root = '{root}'\n" + settings)
    shrink = ['max_iters=2', 'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2',
              'labeled_batch_size=2', 'unlabeled_ratio=1', 'train_dataloader.num_workers=0',
              'val_dataloader.num_workers=0', *small]
    assert cli(['train', 'mine.py', '--work-dir', 'run', '--cfg-options', *shrink]) == 0
    ckpt = str(work / 'run' / 'iter_2.pth')
    assert cli(['test', 'mine.py', ckpt, '--work-dir', 'test', '--out', 'metrics.json',
                '--cfg-options', *shrink]) == 0
    metrics = json.loads((work / 'metrics.json').read_text())
    assert any(k.startswith('teacher/') for k in metrics)
    new = tmp_path / 'new'
    _photos(new, 2, seed=1)
    assert cli(['infer', 'mine.py', ckpt, str(new), '--out', 'preds', '--device', 'cpu',
                '--cfg-options', *small]) == 0
    assert len(os.listdir(work / 'preds')) >= 2
    assert cli(['export', 'mine.py', ckpt, '--format', 'plain', '--out', 'export',
                '--cfg-options', *small]) == 0
    assert list((work / 'export').glob('*.plain.json'))
