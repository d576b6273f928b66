"""Every shipped config parses and builds its model and datasets."""

import glob
import os.path as osp

import pytest
from mmengine.registry import init_default_scope

from ssvision.registry import DATASETS, MODELS
from ssvision.utils import load_config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# configs/mmdet/ are mmdetection configs (mmdet's registries): tests/test_integrations
CONFIGS = sorted(p for p in glob.glob(osp.join(REPO, 'configs', '[!_]*', '*.py'))
                 if osp.basename(osp.dirname(p)) != 'mmdet')


@pytest.mark.parametrize('path', CONFIGS, ids=[osp.basename(p) for p in CONFIGS])
def test_config_builds(path):
    # as the tools build it: '${NAME}' placeholders resolved, settings that could not
    # take effect refused
    from ssvision.utils.knobs import check_consumed, placeholders_left
    cfg = load_config(path)
    check_consumed(path, cfg)
    assert placeholders_left(cfg) == []
    assert cfg.default_scope == 'ssvision'
    init_default_scope('ssvision')
    model = MODELS.build(cfg.model)
    assert model.num_classes == cfg.num_classes
    sampler = cfg.train_dataloader.sampler
    expect = (sampler.labeled_batch_size * (1 + sampler.get('unlabeled_ratio', 7))
              if sampler.labeled_batch_size else sampler.unlabeled_batch_size)
    assert cfg.train_dataloader.batch_size == expect
    # Build the training data when it is present here (prepared by tools/prepare_data.py);
    # the model and loader settings above are checked either way.
    parts = cfg.train_dataloader.dataset
    first = parts.labeled or parts.unlabeled
    data = (first.get('split_file') or first.get('ann_file') or first.get('root')
            or first.get('data_root'))
    if data is not None and not osp.exists(osp.join(REPO, data)):  # None: every image
        pytest.skip(f'model checked; data not prepared ({data}: tools/prepare_data.py)')
    if 'FashionMNIST' in cfg.pretty_text or "'fashion_mnist" in cfg.pretty_text:
        from ssvision.utils.paths import find_dataset
        try:
            find_dataset('fashion-mnist')
        except FileNotFoundError:
            pytest.skip('model checked; Fashion-MNIST not installed (dataset-fashion-mnist)')
    if 'ItemsOnPhotos' in cfg.pretty_text:
        import importlib.util
        if importlib.util.find_spec('skimage') is None:
            pytest.skip('model checked; scikit-image (its bundled photos) not installed')
    import os
    cwd = os.getcwd()
    os.chdir(REPO)  # config paths are relative to the repository root
    try:
        dataset = DATASETS.build(cfg.train_dataloader.dataset)
    finally:
        os.chdir(cwd)
    view = 'sup' if sampler.labeled_batch_size else 'unsup_teacher'
    assert dataset.num_labeled > 0 if sampler.labeled_batch_size else dataset.num_unlabeled > 0
    if sampler.get('unlabeled_ratio', 7) and sampler.labeled_batch_size:
        assert dataset.num_unlabeled > 0
    index = 0 if sampler.labeled_batch_size else dataset.num_labeled
    sample = dataset[(index, 1)]
    assert view in sample['inputs']


def test_num_classes_mismatch_is_a_clear_error(tmp_path):
    from ssvision.datasets import MNIST5k, make_split, save_split
    from ssvision.tools import train as train_tool
    ds = MNIST5k()
    split = make_split(ds.labels, list(range(len(ds))), num_labels_per_class=2,
                       num_test_per_class=2, seed=0)
    split['unlabeled'] = split['unlabeled'][::100]
    path = str(tmp_path / 's.json')
    save_split(split, path)
    cfg = osp.join(REPO, 'configs/fixmatch/fixmatch_tinycnn_2k_mnist5k-4pc.py')
    opts = ['model.model.num_classes=7', 'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False', 'val_dataloader.num_workers=0',
            'val_dataloader.persistent_workers=False'] + [
        f'{k}.split_file={path}' for k in ('train_dataloader.dataset.labeled',
                                           'train_dataloader.dataset.unlabeled',
                                           'val_dataloader.dataset')]
    with pytest.raises(ValueError, match='num_classes disagree.*10 classes.*predicts 7'):
        train_tool.main([cfg, '--work-dir', str(tmp_path / 'w'), '--cfg-options', *opts])
