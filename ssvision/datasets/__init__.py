from . import transforms  # noqa: F401  (registers the transforms)
from .base import BaseClsDataset, read_image
from .cifar import CIFAR10, CIFAR100
from .cityscapes import CITYSCAPES_CLASSES, CITYSCAPES_LABEL_MAP, CityscapesDataset
from .class_names import check_classes, dataset_classes
from .coco_det import CocoDetDataset, load_json, make_coco_split, write_coco_split
from .collate import semi_collate
from .digits import Digits8x8
from .image_files import (
    IMG_EXTENSIONS,
    UnreadableLog,
    check_images,
    decode_files,
    find_images,
    image_size,
)
from .image_folder import ImageFolder
from .items_on_photos import ItemsOnPhotos, skimage_photos
from .mnist import FashionMNIST, MNIST5k, MNISTIdx, read_idx, save_idx
from .samplers import SemiSampler
from .scenes import (
    SceneItems,
    build_scene_items,
    compose_scene,
    long_tail_probs,
    make_scene,
    sample_backgrounds,
    write_coco_scenes,
    write_voc_scenes,
)
from .semi_dataset import SemiDataset
from .split import load_split, make_split, save_split
from .unlabeled_folder import (
    UnlabeledDetFolder,
    UnlabeledImageFolder,
    UnlabeledImages,
    UnlabeledSegFolder,
)
from .voc_seg import VOCSegDataset, make_seg_split, read_seg_mask, save_seg_splits

__all__ = [
    'BaseClsDataset', 'CIFAR10', 'CIFAR100', 'CITYSCAPES_CLASSES', 'CITYSCAPES_LABEL_MAP',
    'CityscapesDataset', 'CocoDetDataset', 'make_coco_split', 'write_coco_split',
    'Digits8x8', 'FashionMNIST', 'ImageFolder', 'ItemsOnPhotos', 'skimage_photos',
    'MNIST5k', 'MNISTIdx', 'SemiDataset', 'SemiSampler', 'load_split', 'make_split',
    'read_idx', 'read_image', 'save_idx', 'save_split', 'semi_collate',
    'SceneItems', 'build_scene_items', 'compose_scene', 'long_tail_probs', 'make_scene',
    'sample_backgrounds', 'write_coco_scenes', 'write_voc_scenes',
    'VOCSegDataset', 'make_seg_split', 'read_seg_mask', 'save_seg_splits',
    'IMG_EXTENSIONS', 'UnreadableLog', 'check_images', 'find_images', 'load_json',
    'UnlabeledImages', 'UnlabeledImageFolder', 'UnlabeledSegFolder', 'UnlabeledDetFolder',
    'check_classes', 'dataset_classes', 'decode_files', 'image_size',
]
