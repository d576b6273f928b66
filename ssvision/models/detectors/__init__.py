from .torchvision_det import DETECTOR_ARCHS, TorchvisionDetector

__all__ = ['TorchvisionDetector', 'DETECTOR_ARCHS']
