from .torchvision_det import CLS_LOSS_KEYS, DETECTOR_ARCHS, REG_LOSS_KEYS, TorchvisionDetector

__all__ = ['TorchvisionDetector', 'CLS_LOSS_KEYS', 'REG_LOSS_KEYS', 'DETECTOR_ARCHS']
