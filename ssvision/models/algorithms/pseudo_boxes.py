"""The one pseudo-box policy, shared by :class:`SemiDetector` and the mmdetection
plug-in: which teacher boxes train the student, and on what. Per batch::

    keep      = selector(dets)                                   # gate()
    reliable  = uncertainty(kept boxes) < reg_uncertainty        # flip or box jitter
    moved     = transfer_boxes(dets[keep], H_teacher -> H_student)  # move(): clip, drop small
    cls boxes = moved;  reg boxes = moved[reliable]
    ignore    = transfer_boxes(dets[~keep & score >= ignore_score])  # optional

Flip uncertainty (any detector): each side's distance to the best same-class match on
the flipped view, relative to the box size (``structures.flip_uncertainty``). Box jitter
(two-stage, Soft Teacher's): the spread of the second stage's refinements of jittered
copies, relative to their mean box (:func:`jitter_uncertainty`); its scale differs, so
``reg_uncertainty`` is set with the mode. Ignore regions keep uncertain objects out of
the classification terms instead of training them as background. A detector's loss
dict splits into classification and regression terms by
:func:`~ssvision.models.detectors.loss_terms.split_loss_terms`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ssvision.structures import DetInstances, flip_uncertainty, transfer_boxes

from ..detectors.loss_terms import split_loss_terms
from .health import box_health

__all__ = ['PseudoBoxPolicy', 'PseudoBoxes', 'jitter_uncertainty', 'UNCERTAINTY_MODES']

UNCERTAINTY_MODES = ('flip', 'jitter')

def jitter_uncertainty(detector, images: list[torch.Tensor], dets: Sequence[DetInstances],
                       times: int = 10, scale: float = 0.06) -> list[torch.Tensor]:
    """Per box of each ``dets``: Soft Teacher's box-jitter uncertainty (see the module
    docstring) from ``detector.refine_boxes``; uses the global torch RNG."""
    if times < 2:
        raise ValueError(f'jitter_uncertainty needs times >= 2, got {times}')
    boxes, labels = [], []
    for d in dets:
        wh = (d.bboxes[:, 2:] - d.bboxes[:, :2]).clamp_min(1.0).repeat(1, 2)
        noise = torch.randn(times, len(d), 4, device=d.bboxes.device) * wh * scale
        boxes.append((d.bboxes[None] + noise).reshape(-1, 4))
        labels.append(d.labels.repeat(times))
    refined = detector.refine_boxes(images, boxes, labels)
    out = []
    for d, r in zip(dets, refined):
        if len(d) == 0:
            out.append(d.bboxes.new_zeros(0))
            continue
        r = r.reshape(times, len(d), 4)
        # the spread of the refined copies relative to the size of their mean box
        # (Soft Teacher's normalisation), not to the detected box's size
        mean = r.mean(dim=0)
        size = (mean[:, 2:] - mean[:, :2]).clamp_min(1.0).repeat(1, 2)
        out.append((r.std(dim=0) / size).mean(dim=1))
    return out


@dataclass
class PseudoBoxes:
    """One batch's pseudo-boxes, in the student's views.

    Attributes:
        cls: per image, the boxes that train the classification terms.
        reg: per image, the subset that also trains the box-regression terms.
        health: scalar figures of the selection (:func:`~.health.box_health`).
        weak: per image, the boxes of ``cls`` in the teacher's (weak) view, row for row
            (box-level auxiliary heads pair weak and strong instances with them).
        dets: per image, all the teacher's detections (teacher-view pixels).
        ignore: per image, ``(n, 4)`` ignore regions in the student's view (empty list
            without ``ignore_score``).
    """

    cls: list[DetInstances]
    reg: list[DetInstances]
    health: dict[str, torch.Tensor] = field(default_factory=dict)
    weak: list[DetInstances] = field(default_factory=list)
    dets: list[DetInstances] = field(default_factory=list)
    ignore: list[torch.Tensor] = field(default_factory=list)

    def images(self, part: str = 'cls') -> list[int]:
        """Indices of the images with at least one box in ``part`` (``'cls'`` /
        ``'reg'``): only those enter the student's unlabeled forward, so an image with no
        pseudo-box adds exactly 0 instead of being trained as all background."""
        return [i for i, p in enumerate(getattr(self, part)) if len(p)]


class PseudoBoxPolicy:
    """Select, gate, move and report pseudo-boxes (see the module docstring).

    Args:
        selector: a box selector (``forward(dets) -> keep masks``, ``extra_log()``).
        num_classes: classes of the detector (per-class health figures).
        reg_uncertainty: boxes under it train regression (strictly, as Soft Teacher's
            ``reg_pseudo_thr``); None trains regression on every pseudo-box and skips
            the uncertainty pass.
        mode: ``'flip'`` or ``'jitter'`` (two-stage detectors).
        jitter_times / jitter_scale: box jitter's copies and scale.
        min_box_size: moved boxes narrower or lower than this (pixels) are dropped.
        zero_warn_iters: warn when this many batches in a row yield no pseudo-box.
        name: who warns (the detector class).
        ignore_score: detections not kept that score at least this are ignore regions
            (module docstring); None (default): none.
    """

    def __init__(self, selector, num_classes: int | None, reg_uncertainty: float | None = 0.1,
                 mode: str = 'flip', jitter_times: int = 10, jitter_scale: float = 0.06,
                 min_box_size: float = 2.0, zero_warn_iters: int = 50,
                 name: str = 'SemiDetector', ignore_score: float | None = None) -> None:
        if ignore_score is not None and not 0 <= float(ignore_score) <= 1:
            raise ValueError(f'ignore_score must be in [0, 1] or None, got {ignore_score}')
        self.ignore_score = None if ignore_score is None else float(ignore_score)
        if mode not in UNCERTAINTY_MODES:
            raise ValueError(f'reg_uncertainty_mode must be one of {UNCERTAINTY_MODES}, got '
                             f'{mode!r}')
        if mode == 'jitter' and int(jitter_times) < 2:
            raise ValueError(f'jitter_times must be >= 2, got {jitter_times}')
        self.selector, self.num_classes = selector, num_classes
        self.reg_uncertainty = None if reg_uncertainty is None else float(reg_uncertainty)
        self.mode, self.jitter_times, self.jitter_scale = mode, int(jitter_times), \
            float(jitter_scale)
        self.min_box_size, self.zero_warn_iters = float(min_box_size), int(zero_warn_iters)
        self.name = name
        self._zero_run = 0

    @property
    def needs_flipped(self) -> bool:
        """Whether the caller must pass the teacher's detections on the flipped view."""
        return self.reg_uncertainty is not None and self.mode == 'flip'

    @property
    def gated(self) -> bool:
        """Whether only reliable boxes train the box-regression terms."""
        return self.reg_uncertainty is not None

    def gate(self, dets: Sequence[DetInstances], *,
             flipped: Sequence[DetInstances] | None = None,
             widths: Sequence[float] | None = None, teacher=None,
             images: Sequence[torch.Tensor] | None = None) -> tuple[list, list]:
        """``(keep, reliable)`` boolean masks per image over the teacher's detections
        ``dets`` (teacher-view pixels): the selector's choice, and which boxes pass the
        uncertainty gate (``mode='flip'``: from the detections ``flipped`` on the
        flipped weak views of ``widths``; ``'jitter'``: the ``teacher``'s second stage
        on the weak ``images``, kept boxes only)."""
        keep = self.selector(dets)
        reliable = [torch.ones(len(d), dtype=torch.bool, device=d.bboxes.device)
                    for d in dets]
        if self.needs_flipped:
            if flipped is None or widths is None:
                raise ValueError("reg_uncertainty_mode='flip' needs the flipped detections")
            reliable = [flip_uncertainty(d, f, w) < self.reg_uncertainty
                        for d, f, w in zip(dets, flipped, widths)]
        elif self.gated:  # box jitter, on the kept boxes only
            if teacher is None or images is None:
                raise ValueError("reg_uncertainty_mode='jitter' needs the teacher and images")
            unc = jitter_uncertainty(teacher, list(images), [d[k] for d, k in zip(dets, keep)],
                                     self.jitter_times, self.jitter_scale)
            for r, k, u in zip(reliable, keep, unc):
                r[:] = False
                r[k] = u < self.reg_uncertainty
        return keep, reliable

    def move(self, dets: Sequence[DetInstances], keep: Sequence[torch.Tensor],
             reliable: Sequence[torch.Tensor], moves: Sequence[tuple],
             true: Sequence[DetInstances] | None = None) -> PseudoBoxes:
        """The kept boxes moved into the student's views (``moves``: per image
        ``(h_teacher, h_student, student_shape)``, original -> view matrices), small ones
        dropped; ignore regions alike; health figures (``true``: true boxes in the
        teacher's view, health only)."""
        cls, reg, weak, ignore = [], [], [], []
        for d, k, r, (h_from, h_to, shape) in zip(dets, keep, reliable, moves):
            moved, ok = transfer_boxes(d[k], h_from, h_to, shape, self.min_box_size)
            cls.append(moved)
            reg.append(moved[r[k][ok]])
            weak.append(d[k][ok])
            if self.ignore_score is not None:
                unsure = ~k & (d.scores >= self.ignore_score)
                ignore.append(transfer_boxes(d[unsure], h_from, h_to, shape,
                                             self.min_box_size)[0].bboxes)
        pseudo = PseudoBoxes(cls, reg, weak=weak, dets=list(dets), ignore=ignore)
        pseudo.health = box_health(dets, keep, pseudo.cls, pseudo.reg, self.num_classes,
                                   pseudo.ignore if self.ignore_score is not None else None,
                                   true, self.selector.extra_log())
        self._count_empty(pseudo, dets)
        return pseudo

    def __call__(self, dets: Sequence[DetInstances], moves: Sequence[tuple], *,
                 true: Sequence[DetInstances] | None = None, **gate_inputs) -> PseudoBoxes:
        """:meth:`gate` then :meth:`move`, in one call."""
        return self.move(dets, *self.gate(dets, **gate_inputs), moves, true)

    def forwards(self, pseudo: PseudoBoxes) -> list[tuple[str, list[int]]]:
        """The student forwards the pseudo-boxes need, in order, as ``(part, images)``:
        ``'cls'`` on the images with any pseudo-box (with ``pseudo.ignore`` as ignore
        regions), then, with the gate, ``'reg'`` on those with a reliable one."""
        parts = [('cls', pseudo.images('cls'))]
        if self.gated:
            parts.append(('reg', pseudo.images('reg')))
        return [(part, idx) for part, idx in parts if idx]

    def split_terms(self, terms: dict[str, dict]) -> tuple[dict, dict]:
        """``(classification terms, regression terms)`` from the loss dicts of the
        :meth:`forwards` (``{part: loss dict}``): regression from the ``'reg'`` forward
        with the gate, else from the ``'cls'`` one; empty when no image qualifies."""
        cls, reg = split_loss_terms(terms['cls']) if 'cls' in terms else ({}, {})
        if self.gated:
            reg = split_loss_terms(terms['reg'])[1] if 'reg' in terms else {}
        return cls, reg

    def _count_empty(self, pseudo: PseudoBoxes, dets) -> None:
        n_boxes = sum(len(p) for p in pseudo.cls)
        self._zero_run = 0 if n_boxes else self._zero_run + 1
        if self._zero_run == self.zero_warn_iters:
            n_cand = sum(len(d) for d in dets)
            warnings.warn(
                f'{self.name}: no pseudo-box for {self._zero_run} iterations in a row '
                f'(teacher candidates this iteration: {n_cand}); the unsup loss is 0. For a '
                'one-stage teacher lower its score threshold and use ClassAwareBoxSelector.',
                stacklevel=3)
