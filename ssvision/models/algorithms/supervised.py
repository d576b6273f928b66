"""Supervised-only baseline in the semi-supervised trainer."""

from __future__ import annotations

from ssvision.registry import MODELS

from .base import SemiBase


@MODELS.register_module()
class SupervisedOnly(SemiBase):
    """Trains on labeled views only; unlabeled views in the batch are ignored.

    Same trainer, data, schedule and EMA teacher as the semi-supervised algorithms,
    so it is the baseline every comparison needs. Set the sampler's
    ``unlabeled_ratio=0`` to skip loading unlabeled images altogether. Knobs: those of
    :class:`SemiBase` (only ``student_forward`` matters).
    """

    uses_unlabeled = False

    def __init__(self, model: dict, selector: dict | None = None, **kwargs) -> None:
        super().__init__(model, selector=selector, **kwargs)
