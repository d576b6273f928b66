"""DSSN: two strong views, class-aware selection, dual-level Siamese consistency."""

from __future__ import annotations

from ssvision.registry import MODELS

from .fixmatch import FixMatch


@MODELS.register_module()
class DSSN(FixMatch):
    """Dual-level Siamese structure network (DSSN), over the shared recipe.

    Each unlabeled image has one weak view (teacher) and two strong views
    (``unsup_student``, ``unsup_student2``). The teacher's pseudo-labels, chosen by a
    class-aware selector (each class keeps its own top-confidence predictions,
    ``ClassAwareTopKSelector`` by default), supervise both strong views::

        unsup_loss = (CE_w(s1, y_hat) + CE_w(s2, y_hat)) / 2

    The dual-level Siamese consistency (image level between the two strong views,
    feature level between two feature-dropout perturbations) is the auxiliary head
    ``DualSiameseConsistencyHead``, added by default unless ``aux_heads`` is given.

    Published defaults (segmentation): unsup weight 1, Siamese weights 1 (image) and
    1 (feature), feature dropout 0.5, EMA 0.999, class-aware ratio 0.5 with a floor of
    0.5 above the uniform confidence. Knobs: those of :class:`SemiBase`.
    """

    student_views = ('unsup_student', 'unsup_student2')

    def __init__(self, model: dict, selector: dict | None = None,
                 aux_heads: list[dict] | None = None, **kwargs) -> None:
        if selector is None:
            selector = dict(type='ClassAwareTopKSelector', ratio=0.5, floor=0.5)
        if aux_heads is None:
            aux_heads = [dict(type='DualSiameseConsistencyHead')]
        super().__init__(model, selector=selector, aux_heads=aux_heads, **kwargs)

    def unsup_loss(self, student_out, probs, labels, weight, inputs, data_samples):
        loss = sum(self.task.hard_loss(student_out[v], labels, weight)
                   for v in self.student_views) / len(self.student_views)
        return {'unsup_loss': loss}
