"""FreeMatch: FixMatch with self-adaptive thresholds and a fairness regulariser."""

from __future__ import annotations

from ssvision.registry import MODELS

from .fixmatch import FixMatch


@MODELS.register_module()
class FreeMatch(FixMatch):
    """FixMatch's loss with a ``FreeMatchSelector`` (self-adaptive class thresholds).

    Adds FreeMatch's self-adaptive fairness term when ``fairness_weight > 0``::

        unsup_fair_loss = fairness_weight * selector.fairness_loss(softmax(s), w)

    over the student's strong-view probabilities of the selected samples (see
    :meth:`FreeMatchSelector.fairness_loss`). With the default selector and weights
    this is USB 0.3.2's ``FreeMatch.train_step`` (``tests/parity`` compares the masks,
    the state, both losses and their gradients step by step). Like every ``unsup_*``
    loss the term follows the unsup weight's burn-in and warm-up; USB adds it unscaled
    (the two agree with the defaults, ``unsup_weight=1`` and no warm-up).

    Knobs (``semi_train_cfg``), besides :class:`SemiBase`'s:

    - ``fairness_weight`` (float, 0.01): weight of the fairness term (USB 0.3.2's
      default ``ent_loss_ratio``, what the parity test runs; USB's CIFAR-10 configs,
      the paper's runs, set 0.001; 0 disables it).
    """

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
