"""A user's own config: top-level knobs take effect, and settings that cannot are refused."""

import cv2
import numpy as np
import pytest
from mmengine.registry import init_default_scope

from ssvision.tools.train import run_config
from ssvision.utils.knobs import KnobError, resolve_knobs

BASE = 'ssvision::custom/fixmatch_resnet18_own-folders.py'


def _folders(root, classes, n=2):
    rng = np.random.default_rng(0)
    for part, names in (('labeled', classes), ('unlabeled', ['x'])):
        for c in names:
            (root / part / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                cv2.imwrite(str(root / part / c / f'{i}.png'),
                            rng.integers(0, 255, (40, 50, 3), dtype=np.uint8))


def test_a_child_config_changes_image_size_batch_and_classes_everywhere(tmp_path):
    # catches: pipelines, sampler, loader and head that keep the base's img_size, batch
    # composition and class count (the values were computed when the base was loaded)
    _folders(tmp_path / 'data', ['a', 'b', 'c', 'd'])
    child = tmp_path / 'mine.py'
    child.write_text(f"_base_ = ['{BASE}']\n"
                     f"data_root = '{tmp_path / 'data'}'\n"
                     'num_classes = 4\nimg_size = 48\nlabeled_batch_size = 3\n'
                     'unlabeled_ratio = 2\nmax_iters = 40\n')
    cfg = run_config(str(child))
    loader = cfg.train_dataloader
    assert loader.batch_size == 9
    assert (loader.sampler.labeled_batch_size, loader.sampler.unlabeled_ratio) == (3, 2)
    assert cfg.train_cfg.max_iters == 40 and cfg.param_scheduler[0].T_max == 40
    assert cfg.val_dataloader.dataset.root == f"{tmp_path / 'data'}/labeled"
    # the test loader follows the validation loader (the docs' example left it on the
    # base's placeholder folder)
    assert cfg.test_dataloader.dataset.root == cfg.val_dataloader.dataset.root
    assert cfg.test_dataloader.dataset.pipeline[0].size == 48

    init_default_scope('ssvision')
    from ssvision.registry import DATASETS, MODELS
    model = MODELS.build(cfg.model)
    assert model.num_classes == 4
    data = DATASETS.build(loader.dataset)
    assert data.num_classes == 4
    sample = data[(0, 0)]
    assert tuple(sample['inputs']['sup'].shape[-2:]) == (48, 48)


def test_a_child_that_sets_a_variable_its_base_already_used_is_refused(tmp_path):
    # catches: the silent case, a child's labeled_batch_size that changes nothing because
    # the base computed its loader from its own value
    child = tmp_path / 'mine.py'
    child.write_text("_base_ = ['ssvision::fixmatch/fixmatch_wrn28-2_2k_mnist5k-4pc.py']\n"
                     'labeled_batch_size = 4\n')
    with pytest.raises(KnobError, match='labeled_batch_size') as err:
        run_config(str(child))
    assert 'train_dataloader' in str(err.value)
    # setting what it built as well is fine
    child.write_text("_base_ = ['ssvision::fixmatch/fixmatch_wrn28-2_2k_mnist5k-4pc.py']\n"
                     'labeled_batch_size = 4\n'
                     'train_dataloader = dict(batch_size=32, sampler=dict(labeled_batch_size=4))\n')
    assert run_config(str(child)).train_dataloader.batch_size == 32


def test_cfg_options_that_cannot_take_effect_are_refused():
    # catches: a typo'd top-level key silently added, and a consumed variable changed
    # from the command line
    with pytest.raises(KnobError, match="did you mean optim_wrapper"):
        run_config(BASE, cfg_options={'optim_wraper.optimizer.lr': 0.5})
    with pytest.raises(KnobError, match='crop'):
        run_config('ssvision::dssn/dssn_deeplabv3plus-r18_2k_scenes-1-16.py',
                   cfg_options={'crop': (64, 64)})
    cfg = run_config(BASE, cfg_options={'img_size': 64, 'max_iters': 10})
    assert cfg.train_dataloader.dataset.labeled.pipeline[0].size == 64
    assert cfg.train_cfg.max_iters == 10


def test_no_loader_workers_turns_worker_persistence_off():
    # catches: torch's "persistent_workers option needs num_workers > 0" error
    cfg = run_config(BASE, cfg_options={'train_dataloader.num_workers': 0,
                                        'val_dataloader.num_workers': 0})
    assert cfg.train_dataloader.persistent_workers is False
    assert cfg.val_dataloader.persistent_workers is False
    # a config that copies its loader (test_dataloader = val_dataloader): the option
    # reaches the copy too
    cfg = run_config('ssvision::dssn/dssn_deeplabv3plus-r18_2k_scenes-1-16.py',
                     cfg_options={'val_dataloader.num_workers': 0})
    assert cfg.test_dataloader.num_workers == 0
    assert cfg.test_dataloader.persistent_workers is False


def test_placeholder_errors_name_the_key_and_the_closest_names():
    from mmengine.config import Config
    cfg = Config(dict(img_size=32, a=dict(size='${img_sise}')))
    with pytest.raises(KnobError, match=r"a\.size.*img_sise.*did you mean img_size"):
        resolve_knobs(cfg)
    cfg = Config(dict(x='${y}', y='${x}'))
    with pytest.raises(KnobError, match='circle'):
        resolve_knobs(cfg)
    cfg = Config(dict(root='/d', n=3, a=dict(path='${root}/x_${n}', n='${n * 2}')))
    resolve_knobs(cfg)
    assert cfg.a == dict(path='/d/x_3', n=6)
    with pytest.raises(KnobError, match='only'):
        resolve_knobs(Config(dict(a='${__import__("os")}')))
