"""ssvision: semi-supervised computer vision on mmengine."""

__version__ = '0.1.0'
