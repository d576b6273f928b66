"""ShrinkMatch: FixMatch that also trains uncertain samples on a shrunk class space."""

from __future__ import annotations

from ssvision.registry import MODELS

from .fixmatch import FixMatch


@MODELS.register_module()
class ShrinkMatch(FixMatch):
    """FixMatch's loss on the selected samples plus ShrinkMatch's shrunk-space loss on
    the others (Shrinking Class Space for Enhanced Certainty in Semi-Supervised
    Learning, Yang et al., ICCV 2023).

    ``unsup_loss`` is FixMatch's (``sum_i w_i CE(s_i, argmax p_i) / N``); the
    uncertain samples (``w_i < 1``) are trained by a
    :class:`~ssvision.models.heads.ClassSpaceShrinkHead`, added as the first auxiliary
    head, whose loss ``aux_shrink_loss`` is documented there (it is an aux loss: not
    scaled by ``unsup_weight`` or its warm-up, and 0 during burn-in).

    Published defaults (CIFAR, LiheYoung/ShrinkMatch): threshold 0.95 for both the
    selection and the shrunk space, certain-ratio momentum 0.999, auxiliary MLP
    classifier on the strong view, shrink loss weight 1, ``mu = 7``. The paper's
    loss on certain samples is a soft cross entropy with the teacher's distribution;
    FixMatch's hard labels are used here (the two agree up to the < 5 % of mass a
    0.95-confident target leaves to other classes). Its optional distribution
    alignment (CIFAR-100) is not included.

    Args:
        model (dict): network config.
        selector (dict | None): default ``FixedThresholdSelector(0.95)``.
        shrink_head (dict | None): arguments of the
            :class:`~ssvision.models.heads.ClassSpaceShrinkHead` (``threshold``,
            ``certain_momentum``, ``mlp``, ``loss_weight``); its defaults when None.
        aux_heads (list[dict] | None): further auxiliary heads.
    """

    def __init__(self, model: dict, selector: dict | None = None,
                 shrink_head: dict | None = None, aux_heads: list[dict] | None = None,
                 **kwargs) -> None:
        head = dict(shrink_head or {})
        if head.get('type', 'ClassSpaceShrinkHead') != 'ClassSpaceShrinkHead':
            raise ValueError('shrink_head takes the arguments of ClassSpaceShrinkHead, '
                             f"not another head ({head['type']!r}); use aux_heads")
        head['type'] = 'ClassSpaceShrinkHead'
        super().__init__(model, selector=selector, aux_heads=[head, *(aux_heads or [])],
                         **kwargs)
