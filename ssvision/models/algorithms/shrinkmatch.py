"""ShrinkMatch: FixMatch that also trains uncertain samples on a shrunk class space."""

from __future__ import annotations

from ssvision.registry import MODELS

from ..tasks import ClassificationTask
from .fixmatch import FixMatch

#: ``semi_train_cfg.certain_targets`` values.
CERTAIN_TARGETS = ('hard', 'soft')


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

    The authors' code (LiheYoung/ShrinkMatch) has two forms of the certain samples'
    loss: hard labels, ``CE(s_i, argmax p_i)``, in its STL-10 / SVHN code (the default
    here, FixMatch's), and the soft-target cross entropy ``-sum_c p_ic log
    softmax(s_i)_c`` in its CIFAR code (``certain_targets='soft'``). Published defaults
    (CIFAR): threshold 0.95 for both the selection and the shrunk space, certain-ratio
    momentum 0.999, auxiliary MLP classifier on the strong view, shrink loss weight 1,
    ``mu = 7`` (``tests/parity`` checks the losses, the ratio and the auxiliary MLP
    against them). Its optional distribution alignment (CIFAR-100) is not included.
    Two differences from the authors' CIFAR script: it takes pseudo-labels from the
    online model in one concatenated forward (``semi_train_cfg.pseudo_label_source=
    'online'`` here; the EMA teacher by default, as for every method), and it restarts
    the certain ratio at each epoch's first batch (every 1,024 iterations); here, as
    in their STL-10 / SVHN code, the ratio runs over the whole training.

    Knobs (``semi_train_cfg``), besides :class:`FixMatch`'s:

    - ``certain_targets`` (str, ``'hard'``): ``'hard'`` or ``'soft'``, see above.

    Args:
        model (dict): network config.
        selector (dict | None): default ``FixedThresholdSelector(0.95)``.
        shrink_head (dict | None): arguments of the
            :class:`~ssvision.models.heads.ClassSpaceShrinkHead` (``threshold``,
            ``certain_momentum``, ``mlp``, ``loss_weight``); its defaults when None.
        aux_heads (list[dict] | None): further auxiliary heads.
    """

    default_train_cfg = {**FixMatch.default_train_cfg, 'certain_targets': 'hard'}

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
        targets = self.semi_train_cfg['certain_targets']
        if targets not in CERTAIN_TARGETS:
            raise ValueError(f'semi_train_cfg.certain_targets must be one of '
                             f'{CERTAIN_TARGETS}, got {targets!r}')
        if targets == 'soft' and not isinstance(self.task, ClassificationTask):
            raise ValueError(f"certain_targets='soft' is defined for ClassificationTask, "
                             f'not {type(self.task).__name__}')

    def loss_by_pseudo_labels(self, out, pseudo, data_samples):
        if self.semi_train_cfg['certain_targets'] == 'soft':
            return {'unsup_loss': self.task.soft_loss(out.logits['unsup_student'],
                                                      pseudo.probs.detach(), pseudo.weight,
                                                      kind='ce')}
        return super().loss_by_pseudo_labels(out, pseudo, data_samples)
