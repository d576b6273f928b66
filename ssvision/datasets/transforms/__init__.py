"""Registered data transforms (``dict -> dict``) of ssvision."""

from .augment import RANDAUGMENT_OPS, Cutout, RandAugment, WeakAugment, cutout
from .cutmix import apply_cutmix, cutmix_box_masks, cutmix_partners
from .formatting import PackClsInputs
from .multi_branch import MultiBranch, branch_seed
from .seg_augment import PackSegInputs, SegStrongAugment, SegWeakAugment

__all__ = [
    'WeakAugment', 'RandAugment', 'Cutout', 'RANDAUGMENT_OPS', 'cutout', 'PackClsInputs',
    'MultiBranch', 'branch_seed', 'SegWeakAugment', 'SegStrongAugment', 'PackSegInputs',
    'cutmix_box_masks', 'apply_cutmix', 'cutmix_partners',
]
