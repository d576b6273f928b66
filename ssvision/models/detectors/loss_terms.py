"""Which loss terms of a detector are classification and which box regression: one
table of names for torchvision's and mmdetection's detectors."""

from __future__ import annotations

__all__ = ['CLS_TERMS', 'REG_TERMS', 'split_loss_terms']

#: Classification-type loss terms (learn from every pseudo-box): torchvision's Faster
#: R-CNN / RetinaNet / FCOS and mmdetection's heads.
CLS_TERMS = frozenset({
    'loss_classifier', 'loss_objectness', 'classification',           # torchvision
    'loss_cls', 'loss_rpn_cls', 'loss_obj', 'loss_center_heatmap',   # mmdetection
})
#: Box-regression loss terms (learn only from boxes that pass the uncertainty gate).
REG_TERMS = frozenset({
    'loss_box_reg', 'loss_rpn_box_reg', 'bbox_regression', 'bbox_ctrness',  # torchvision
    'loss_bbox', 'loss_rpn_bbox', 'loss_iou', 'loss_centerness', 'loss_dfl',  # mmdetection
    'loss_l1', 'loss_wh', 'loss_offset',
})


def split_loss_terms(terms: dict) -> tuple[dict, dict]:
    """``(classification terms, regression terms)`` of a detector's loss dict.

    A decoder-layer prefix (``d0.loss_cls``) is ignored for the lookup. Entries that are
    not losses (no ``loss`` in the name and not a known term, e.g. mmdetection's ``acc``)
    are dropped. An unknown loss term is an error: silently training it on every
    pseudo-box, or on none, would change the method.
    """
    cls, reg = {}, {}
    for name, value in terms.items():
        base = name.rsplit('.', 1)[-1]
        if base in CLS_TERMS:
            cls[name] = value
        elif base in REG_TERMS:
            reg[name] = value
        elif 'loss' in base:
            raise KeyError(f'detector loss term {name!r} is neither a classification '
                           f'term {sorted(CLS_TERMS)} nor a box-regression term '
                           f'{sorted(REG_TERMS)}; add it to one of them')
    return cls, reg
