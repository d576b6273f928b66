from .deeplabv3plus import DeepLabV3Plus
from .torchvision_seg import TorchvisionSegmentor, load_backbone_state

__all__ = ['DeepLabV3Plus', 'TorchvisionSegmentor', 'load_backbone_state']
