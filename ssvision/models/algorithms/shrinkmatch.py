"""ShrinkMatch: FixMatch that also trains uncertain samples on a shrunk class space."""

from __future__ import annotations

from ssvision.registry import MODELS

from ..tasks import ClassificationTask
from .fixmatch import FixMatch

#: ``semi_train_cfg.certain_targets`` values.
CERTAIN_TARGETS = ('hard', 'soft')


@MODELS.register_module()
class ShrinkMatch(FixMatch):
    """FixMatch's loss on the selected samples plus ShrinkMatch's shrunk-class-space loss
    on the others (Yang et al., ICCV 2023), the latter from a
    :class:`~ssvision.models.heads.ClassSpaceShrinkHead` added as the first aux head
    (``aux_shrink_loss``: not scaled by the unsup weight). The authors'
    (LiheYoung/ShrinkMatch) defaults throughout; two differences from their CIFAR script:
    pseudo-labels come from the EMA teacher unless ``pseudo_label_source='online'``
    (theirs), and the certain ratio runs over the whole training, as in their STL-10 /
    SVHN code, instead of restarting each epoch. ``shrink_head`` takes the head's
    arguments; ``aux_heads`` adds further heads.
    """

    # certain samples' targets: 'hard' (CE on argmax p, their STL-10 / SVHN code) or
    # 'soft' (CE with the probabilities, their CIFAR code)
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
