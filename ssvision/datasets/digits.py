"""scikit-learn's bundled 8x8 digits: tiny real images for sub-second tests."""

from __future__ import annotations

import numpy as np

from ssvision.registry import DATASETS

from .base import BaseClsDataset
from .mnist import DIGIT_CLASSES


@DATASETS.register_module()
class Digits8x8(BaseClsDataset):
    """``sklearn.datasets.load_digits()``: 1,797 images, 10 classes (about 180 each).

    Values 0..16 are scaled to uint8 0..255 (``round(v * 255 / 16)``). Images are
    ``(1797, 8, 8, 1)`` uint8, names the int positions.

    Args:
        **kwargs: :class:`BaseClsDataset` arguments.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)

    @property
    def source(self) -> str:
        return 'sklearn.datasets.load_digits()'

    def load_source(self):
        try:
            from sklearn.datasets import load_digits
        except ImportError as e:
            raise ImportError('Digits8x8 needs scikit-learn: pip install scikit-learn') from e
        digits = load_digits()
        images = np.rint(digits.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
        labels = digits.target.astype(np.int64)
        return images[..., None], labels, list(range(len(labels))), DIGIT_CLASSES
