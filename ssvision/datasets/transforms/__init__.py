"""Registered data transforms (``dict -> dict``) of ssvision."""

from ssvision.registry import TRANSFORMS

from .augment import RANDAUGMENT_OPS, Cutout, RandAugment, WeakAugment, cutout
from .cutmix import apply_cutmix, cutmix_box_masks, cutmix_partners
from .det_augment import DetStrongAugment, DetWeakAugment, PackDetInputs
from .formatting import PackClsInputs
from .multi_branch import MultiBranch, branch_seed
from .resize import ResizeImage
from .seg_augment import PackSegInputs, SegStrongAugment, SegWeakAugment

# photometric-only strong ops serve detection too (boxes and masks keep their place)
TRANSFORMS.register_module(name='PhotometricAugment', module=SegStrongAugment)

__all__ = [
    'WeakAugment', 'RandAugment', 'Cutout', 'RANDAUGMENT_OPS', 'cutout', 'PackClsInputs',
    'MultiBranch', 'branch_seed', 'SegWeakAugment', 'SegStrongAugment', 'PackSegInputs',
    'cutmix_box_masks', 'apply_cutmix', 'cutmix_partners', 'DetWeakAugment',
    'DetStrongAugment', 'PackDetInputs', 'ResizeImage',
]
