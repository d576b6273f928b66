"""tools/show_seg_views.py and ssvision.visualization.seg_views on tiny built-in scenes."""

import importlib.util
import os.path as osp

import numpy as np
import pytest
import torch

from ssvision.visualization import seg_views
from ssvision.visualization.seg_views import (
    IGNORE_COLOR,
    colorize_labels,
    denormalize,
    palette,
)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _tool_script(name):
    """``tools/<name>.py`` as a module (a script of the checkout, not of the package)."""
    spec = importlib.util.spec_from_file_location(name, osp.join(REPO, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


def test_colorize_labels_and_denormalize():
    labels = np.array([[0, 1, 255], [2, 10, -1]])
    rgb = colorize_labels(labels, num_classes=11, ignore_index=255)
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0, 2]) == IGNORE_COLOR == (0, 0, 0)
    assert tuple(rgb[1, 2]) == IGNORE_COLOR  # out of range is black too
    assert tuple(rgb[0, 0]) != tuple(rgb[0, 1])
    assert tuple(rgb[1, 1]) == tuple(palette(11)[10])
    colors = palette(40)  # fixed part and generated hues: all distinct, none black
    assert len({tuple(c) for c in colors}) == 40
    assert not (colors == 0).all(axis=1).any()
    assert np.array_equal(colorize_labels(torch.tensor(labels), 11), rgb)

    mean, std = (123.7, 116.3, 103.5), (58.4, 57.1, 57.4)
    img = torch.randint(0, 256, (3, 5, 7)).float()
    x = (img - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    out = denormalize(x, mean, std)
    assert out.shape == (5, 7, 3) and out.dtype == np.uint8
    assert np.array_equal(out, img.permute(1, 2, 0).numpy().astype(np.uint8))


@pytest.mark.parametrize('config,extra', [
    ('dssn_deeplabv3plus-r18_2k_scenes-1-16.py', []),  # DSSN as published
    ('dssn-topk_deeplabv3plus-r18_2k_scenes-1-16.py', ['model.selector.floor=0.0']),
])
def test_show_seg_views_tool(tmp_path, monkeypatch, config, extra):
    show_seg_views = _tool_script('show_seg_views')

    from ssvision.datasets import save_seg_splits, write_voc_scenes
    train_root = str(tmp_path / 'train')
    ids = write_voc_scenes(train_root, 12, seed=0, items='mnist5k', size=64)
    split = save_seg_splits(ids, str(tmp_path / 'splits'), fractions=(0.25,), seed=0)
    split = next(iter(split.values()))
    cfg = osp.join(REPO, 'configs/dssn', config)
    opts = [
        'labeled_batch_size=2', 'train_dataloader.batch_size=4',
        'train_dataloader.sampler.labeled_batch_size=2',
        'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
        f'train_dataloader.dataset.labeled.data_root={train_root}',
        f'train_dataloader.dataset.unlabeled.data_root={train_root}',
        f'train_dataloader.dataset.labeled.split_file={split}',
        f'train_dataloader.dataset.unlabeled.split_file={split}',
        'model.model.aspp_channels=16', 'model.model.decoder_channels=16',
        'model.semi_train_cfg.cutmix_prob=1.0', *extra,
    ]

    seen = {}
    real = seg_views.render_seg_views

    def checked(model, batch, out_png, **kwargs):
        before = {k: v.clone() for k, v in model.state_dict().items()}
        modes = {n: m.training for n, m in model.named_modules()}
        rng = torch.get_rng_state()
        assert model.training and not model.teacher.training
        out = real(model, batch, out_png, **kwargs)
        after = model.state_dict()
        assert before.keys() == after.keys()
        for k, v in before.items():
            assert torch.equal(v, after[k]), f'{k} changed'
        assert modes == {n: m.training for n, m in model.named_modules()}
        assert getattr(model.selector, '_last_cutoff', None) is None  # no training call
        assert torch.equal(rng, torch.get_rng_state())  # CutMix drew from a forked RNG
        seen.update(model=model, batch=batch, kwargs=kwargs)
        return out

    monkeypatch.setattr(seg_views, 'render_seg_views', checked)
    out_png = str(tmp_path / 'views' / 'views.png')
    assert show_seg_views.main([cfg, '--out', out_png, '--num', '4',
                                '--cfg-options', *opts]) == out_png
    with open(out_png, 'rb') as f:
        head = f.read(8)
    assert head == PNG_MAGIC
    assert osp.getsize(out_png) > 10_000
    assert seen['kwargs']['class_names'][0] == 'background'

    # what was drawn: with cutmix_prob=1 every image gets a box from its partner, and the
    # mixed targets follow the boxes
    model, batch = seen['model'], seen['batch']
    model.eval()
    torch.manual_seed(0)
    views = seg_views._compute(model, batch, max_images=4)
    model.train()
    n = batch['inputs']['unsup_teacher'].shape[0]
    assert views['weak'].shape[0] == n == 2  # 2 unlabeled images in the batch
    assert views['pasted'].flatten(1).any(1).all()
    outside = ~views['pasted']
    assert torch.equal(views['m_labels'][outside], views['labels'][outside])
    true = batch['data_samples']['unsup_teacher']['true_seg']
    assert torch.equal(views['true'][outside], true[outside])
    assert torch.equal(views['true'][0][views['pasted'][0]], true[1][views['pasted'][0]])
