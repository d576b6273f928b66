"""Image classifiers: ``extract_feat`` / ``forward_head`` / ``forward_stages``."""

from .timm_classifier import TimmClassifier
from .tiny_cnn import TinyCNN
from .wide_resnet import WideResNet

__all__ = ['TimmClassifier', 'TinyCNN', 'WideResNet']
