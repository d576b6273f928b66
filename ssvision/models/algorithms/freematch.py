"""FreeMatch: FixMatch with self-adaptive thresholds and a fairness regulariser."""

from __future__ import annotations

from ssvision.registry import MODELS

from .fixmatch import FixMatch


@MODELS.register_module()
class FreeMatch(FixMatch):
    """FixMatch's loss with a ``FreeMatchSelector`` (self-adaptive class thresholds) and
    FreeMatch's fairness term ``fairness_weight * selector.fairness_loss(softmax(s), w)``
    on the strong view; USB 0.3.2's ``FreeMatch.train_step`` with the defaults. The term
    follows the unsup weight's burn-in and warm-up like every ``unsup_*`` loss (USB adds
    it unscaled; the two agree with ``unsup_weight=1`` and no warm-up).
    """

    # 0.01: USB 0.3.2's default ent_loss_ratio (the parity test's); its CIFAR-10 configs
    # use 0.001; 0 disables the term
    default_train_cfg = {**FixMatch.default_train_cfg, 'fairness_weight': 0.01}

    def __init__(self, model: dict, selector: dict | None = None, **kwargs) -> None:
        if selector is None:
            num_classes = model.get('num_classes') or MODELS.build(model).num_classes
            selector = dict(type='FreeMatchSelector', num_classes=num_classes)
        super().__init__(model, selector=selector, **kwargs)
        if self.semi_train_cfg['fairness_weight'] > 0 and not hasattr(self.selector,
                                                                       'fairness_loss'):
            raise TypeError('fairness_weight > 0 needs a selector with fairness_loss '
                            f'(FreeMatchSelector), got {type(self.selector).__name__}')

    def loss_by_pseudo_labels(self, out, pseudo, data_samples):
        losses = super().loss_by_pseudo_labels(out, pseudo, data_samples)
        fw = self.semi_train_cfg['fairness_weight']
        if fw > 0:
            strong_probs = out.logits['unsup_student'].float().softmax(dim=1)
            losses['unsup_fair_loss'] = fw * self.selector.fairness_loss(strong_probs,
                                                                         pseudo.weight)
        return losses
