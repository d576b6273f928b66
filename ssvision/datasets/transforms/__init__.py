"""Registered data transforms (``dict -> dict``) of ssvision."""

from .augment import RANDAUGMENT_OPS, Cutout, RandAugment, WeakAugment, cutout
from .formatting import PackClsInputs
from .multi_branch import MultiBranch, branch_seed

__all__ = [
    'WeakAugment', 'RandAugment', 'Cutout', 'RANDAUGMENT_OPS', 'cutout', 'PackClsInputs',
    'MultiBranch', 'branch_seed',
]
