"""Training and testing stop before the first step when a split names other classes."""

import cv2
import numpy as np
import pytest

CONFIG = 'ssvision::custom/fixmatch_resnet18_own-folders.py'


def _folder(root, classes, n=2, seed=0):
    rng = np.random.default_rng(seed)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            cv2.imwrite(str(root / c / f'{i}.png'),
                        rng.integers(0, 255, (24, 24, 3), dtype=np.uint8))


def test_renamed_validation_folders_stop_training_before_the_first_step(tmp_path):
    # catches: validation classes matched to the training classes by sorted position
    # (same count, other names: accuracy against the wrong classes, no warning), and a
    # check that the train tool never runs
    from ssvision.tools.train import main
    _folder(tmp_path / 'labeled', ['cat', 'dog'])
    _folder(tmp_path / 'val', ['cat', 'fox'])
    _folder(tmp_path / 'unlabeled', ['u'], n=4)
    opts = [f'train_dataloader.dataset.labeled.root={tmp_path}/labeled',
            f'train_dataloader.dataset.unlabeled.root={tmp_path}/unlabeled',
            f'val_dataloader.dataset.root={tmp_path}/val', 'train_cfg.max_iters=1',
            'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
            'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False']
    with pytest.raises(ValueError, match='class names disagree') as err:
        main([CONFIG, '--work-dir', str(tmp_path / 'run'), '--cfg-options', *opts])
    assert "'dog'" in str(err.value) and "'fox'" in str(err.value)
    assert not (tmp_path / 'run' / 'iter_1.pth').exists()
