"""Items on photos: a labelled source for pretraining the scene benchmarks' backbones.

Each sample is one Fashion-MNIST item pasted, scaled and coloured exactly as the scenes
paste theirs (:mod:`ssvision.datasets.scenes`), on a random crop of a real photo; its
label is the item's class. The photos are the ones bundled with scikit-image
(``skimage/data``: astronaut, cat, coffee, rocket, motorcycle, retina, ... read by path,
scikit-image itself is never imported; ``pip install scikit-image``, in the ``[data]``
extra), *not* the two scikit-learn photos behind every scene. With the Fashion-MNIST
``train`` items (the scenes' validation items come from ``t10k``) nothing the scene
benchmarks score on is seen: neither an item nor a background.

It plays the part ImageNet plays for users: a labelled, object-centric source on real
backgrounds, disjoint from the target data. It is nearer the target than ImageNet is to
most users' data (the same kind of items), which the zoo entry says.

A sample is a pure function of ``(seed, source index)``: the same index composes the same
image in every epoch and worker; augmentation comes from the pipeline.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from ssvision.registry import DATASETS

from .base import BaseClsDataset
from .scenes import (
    ItemsLike,
    build_scene_items,
    compose_scene,
    package_photos,
    place_item,
    random_background,
)

#: photos in ``skimage/data`` used as backgrounds (gray ones are read as 3 equal channels)
SKIMAGE_PHOTOS = ('astronaut.png', 'chelsea.png', 'coffee.png', 'rocket.jpg',
                  'motorcycle_left.png', 'hubble_deep_field.jpg', 'retina.jpg', 'ihc.png',
                  'brick.png', 'grass.png', 'gravel.png', 'camera.png')


@functools.lru_cache(maxsize=1)
def skimage_photos() -> tuple[np.ndarray, ...]:
    """The real photos of :data:`SKIMAGE_PHOTOS`, uint8 RGB, read-only."""
    return package_photos('skimage', 'data', SKIMAGE_PHOTOS,
                          'the photos come with scikit-image (`pip install scikit-image`, '
                          'or the [data] extra)')


@DATASETS.register_module()
class ItemsOnPhotos(BaseClsDataset):
    """One item pasted on a real photo crop per sample, labelled with the item's class.

    Args:
        items: item source: a name of :data:`ssvision.datasets.scenes.ITEM_SOURCES`
            (``'fashion_mnist'`` = the 60,000 train items, ``'fashion_mnist_test'``,
            ``'mnist5k'``) or a :class:`~ssvision.datasets.scenes.SceneItems`.
        size: image side in pixels.
        item_scale: range of the item's resize factor (the scenes use 1.0 - 2.5 on
            128-pixel scenes; the default keeps a 28-pixel item inside 64 pixels).
        seed: the composition seed; sample ``i`` is drawn from ``(seed, i)``.
        limit: keep the first ``limit`` items only (a quick validation set).
        **kwargs: :class:`BaseClsDataset` arguments (pipeline, num_classes, ...).
    """

    def __init__(self, items: ItemsLike = 'fashion_mnist', size: int = 64,
                 item_scale: Sequence[float] = (1.0, 2.0), seed: int = 0,
                 limit: int | None = None, **kwargs) -> None:
        self.items = items
        self.size = int(size)
        self.item_scale = (float(item_scale[0]), float(item_scale[1]))
        if not 0 < self.item_scale[0] <= self.item_scale[1]:
            raise ValueError(f'item_scale must be 0 < low <= high, got {item_scale}')
        if self.size < 8:
            raise ValueError(f'size must be at least 8 pixels, got {size}')
        self.seed = int(seed)
        self.limit = limit
        super().__init__(**kwargs)

    @property
    def source(self) -> str:
        name = self.items if isinstance(self.items, str) else type(self.items).__name__
        return f'ItemsOnPhotos({name})'

    def load_source(self):
        bank = build_scene_items(self.items)
        n = len(bank.labels) if self.limit is None else min(int(self.limit), len(bank.labels))
        return bank.images[:n, ..., None], bank.labels[:n], list(range(n)), bank.classes

    def compose(self, src: int) -> np.ndarray:
        """The image of source item ``src``: uint8 RGB ``(size, size, 3)``."""
        rng = np.random.default_rng([self.seed, int(src)])
        background = random_background(rng, self.size, skimage_photos())
        item = place_item(rng, self._images[src, ..., 0], int(self._source_labels[src]),
                          (self.size, self.size), self.item_scale)
        return compose_scene(background, [item], min_area=0, min_visible=0.0)['image']

    def load_image(self, idx: int) -> np.ndarray:
        return self.compose(int(self._keep[idx]))
