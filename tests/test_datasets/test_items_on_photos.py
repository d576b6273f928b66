"""ItemsOnPhotos: the pretraining source of the zoo's photo-trained ResNet-18."""

import importlib.util

import cv2
import numpy as np
import pytest

from ssvision.datasets import items_on_photos as iop
from ssvision.datasets.items_on_photos import ItemsOnPhotos, skimage_photos
from ssvision.datasets.scenes import SKLEARN_PHOTOS, SceneItems, random_background

pytestmark = pytest.mark.skipif(importlib.util.find_spec('skimage') is None,
                                reason='scikit-image (its bundled photos) not installed')


def _bank():
    """Six gray items of unequal brightness whose areas differ by over 25 % from one to
    the next (20 ... 360 pixels), classes 0, 1, 2 twice each."""
    rng = np.random.default_rng(0)
    images = np.zeros((6, 28, 28), np.uint8)
    for i in range(6):
        h = 4 + 4 * i
        images[i, 2:2 + h, 4:4 + h // 2 + 3] = rng.integers(120, 256, size=(h, h // 2 + 3))
    return SceneItems(images, [0, 1, 2, 0, 1, 2], ['a', 'b', 'c'])


def test_a_sample_is_its_item_pasted_on_a_photo_crop():
    # Catches: a sample whose label is not the pasted item's class, an item never pasted
    # (the image is the bare background), or the wrong item pasted (another size).
    bank = _bank()
    ds = ItemsOnPhotos(items=bank, size=48, item_scale=(1.0, 1.5), seed=3)
    assert len(ds) == 6 and ds.labels.tolist() == [0, 1, 2, 0, 1, 2]
    for idx in range(6):
        img = ds.load_image(idx)
        assert img.shape == (48, 48, 3) and img.dtype == np.uint8
        # replay the sample's draws: the background first, then the item's scale
        rng = np.random.default_rng([3, idx])
        background = random_background(rng, 48, skimage_photos())
        f = rng.uniform(1.0, 1.5)
        h, w = max(1, round(28 * f)), max(1, round(28 * f))
        gray = cv2.resize(bank.images[idx], (w, h), interpolation=cv2.INTER_LINEAR)
        changed = (img != background).any(-1).sum()
        painted = (gray > 0).sum()  # fits inside 48 pixels: 28 * 1.5 = 42
        assert 0.8 * painted <= changed <= painted, (idx, changed, painted)
        rec = ds[(idx, 0)]
        assert rec['true_label'] == bank.labels[idx]


def test_samples_are_a_function_of_seed_and_index():
    # Catches: a composition drawn from a global or per-worker random state (two loads of
    # one index differ) and a seed that changes nothing.
    bank = _bank()
    a = ItemsOnPhotos(items=bank, size=32, seed=0)
    b = ItemsOnPhotos(items=bank, size=32, seed=0)
    c = ItemsOnPhotos(items=bank, size=32, seed=1)
    for i in range(6):
        assert np.array_equal(a.load_image(i), b.load_image(i))
    assert not all(np.array_equal(a.load_image(i), c.load_image(i)) for i in range(6))
    assert not np.array_equal(a.load_image(0), a.load_image(3))
    assert len(ItemsOnPhotos(items=bank, size=32, limit=4)) == 4


def test_backgrounds_are_not_the_scene_photos():
    # Catches: pretraining on the photos behind the scene benchmarks (the start would have
    # seen their validation backgrounds).
    from ssvision.datasets.scenes import sample_backgrounds
    assert not set(iop.SKIMAGE_PHOTOS) & set(SKLEARN_PHOTOS)
    photos = skimage_photos()
    assert len(photos) == len(iop.SKIMAGE_PHOTOS)
    assert all(p.ndim == 3 and p.shape[2] == 3 and p.dtype == np.uint8 for p in photos)
    scene = {p.tobytes()[:4096] for p in sample_backgrounds()}
    assert not any(p.tobytes()[:4096] in scene for p in photos)


def test_missing_scikit_image_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name: None)
    skimage_photos.cache_clear()
    try:
        with pytest.raises(FileNotFoundError, match='scikit-image'):
            skimage_photos()
    finally:
        monkeypatch.undo()
        skimage_photos.cache_clear()


def test_bad_arguments_are_errors():
    with pytest.raises(ValueError, match='item_scale'):
        ItemsOnPhotos(items=_bank(), item_scale=(2.0, 1.0))
    with pytest.raises(ValueError, match='size'):
        ItemsOnPhotos(items=_bank(), size=4)
