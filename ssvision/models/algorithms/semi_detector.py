"""Mean-teacher semi-supervised detection over any :class:`TorchvisionDetector`.

One iteration (``loss``)::

    sup        = student.loss(sup images, gt boxes)                       # all terms
    dets       = teacher.predict(unsup_teacher)                           # eval, no_grad
    keep       = selector(dets)                 # class-aware (or fixed) score thresholds
    reliable   = box uncertainty <= reg_uncertainty   # flip consistency of the teacher
    pseudo     = transfer_boxes(dets[keep], H_student @ inv(H_teacher))   # clip / drop
    unsup_cls  = CLS terms of student.loss(strong views with pseudo)      # images with >= 1
    unsup_reg  = REG terms of student.loss(strong views with reliable pseudo)
    loss       = sup + unsup_weight * (unsup_cls + unsup_reg)

An unlabeled image with no surviving pseudo-box is left out of the unsup forward (it
adds exactly 0, it is not treated as all background); with none in the batch the
unsup loss is exactly 0. Box uncertainty (detector-agnostic, so one-stage detectors get
it too): the teacher also predicts on the flipped weak view; a pseudo-box's uncertainty
is the mean absolute difference of its four sides from its best-overlapping same-class
box there (flipped back), divided by its width / height; no match at IoU >= 0.5 counts
as uncertain. Only boxes at or under ``reg_uncertainty`` train box regression.

Two-stage detectors may use Soft Teacher's box jitter instead
(``reg_uncertainty_mode='jitter'``): each kept box is jittered ``jitter_times`` times
(Gaussian offsets of ``jitter_scale`` times its width / height per side), the teacher's
second stage regresses every copy, and the uncertainty is the standard deviation of the
regressed sides over the copies divided by the box's width / height, averaged over the
four sides. Its scale differs from the flip measure (Soft Teacher keeps boxes under
0.02), so ``reg_uncertainty`` is set with the mode.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence

import torch
from mmengine.model import BaseDataPreprocessor, BaseModel

from ssvision.datasets.transforms.det_augment import project_boxes
from ssvision.models.detectors import CLS_LOSS_KEYS, REG_LOSS_KEYS
from ssvision.registry import MODELS
from ssvision.structures import DetInstances

from .base import SemiBase

__all__ = ['SemiDetector', 'DetDataPreprocessor', 'transfer_boxes', 'flip_uncertainty',
           'jitter_uncertainty', 'box_precision']

_CFG_DEFAULTS = dict(unsup_weight=1.0, burn_in_iters=0, reg_uncertainty=0.1,
                     reg_uncertainty_mode='flip', jitter_times=10, jitter_scale=0.06,
                     min_box_size=2.0, zero_warn_iters=50)
UNCERTAINTY_MODES = ('flip', 'jitter')


@MODELS.register_module()
class DetDataPreprocessor(BaseDataPreprocessor):
    """uint8 images (a ``(N, 3, H, W)`` tensor or a list of ``(3, H, W)``, per view) to
    lists of float ``[0, 1]`` tensors on the device; data samples (boxes included) moved
    alike. Normalisation is the detector's own (torchvision's transform)."""

    def _images(self, x):
        if isinstance(x, torch.Tensor) and x.dim() == 4:
            x = list(x)
        if not isinstance(x, (list, tuple)):
            raise TypeError(f'expected a (N, 3, H, W) tensor or a list of images, got '
                            f'{type(x).__name__}')
        return [self.cast_data(img).float().div_(255.0) for img in x]

    def _samples(self, s):
        if isinstance(s, DetInstances):
            return s.to(self.device)
        if isinstance(s, dict):
            return {k: self._samples(v) for k, v in s.items()}
        if isinstance(s, list):
            return [self._samples(v) for v in s]
        if isinstance(s, torch.Tensor):
            return s.to(self.device)
        return s

    def forward(self, data: dict, training: bool = False) -> dict:
        inputs, samples = data['inputs'], data.get('data_samples')
        if isinstance(inputs, dict):
            inputs = {k: self._images(v) for k, v in inputs.items()}
        else:
            inputs = self._images(inputs)
        return {'inputs': inputs, 'data_samples': self._samples(samples)}


def transfer_boxes(inst: DetInstances, h_from: torch.Tensor, h_to: torch.Tensor,
                   img_shape: Sequence[int], min_size: float = 2.0) -> tuple[DetInstances,
                                                                              torch.Tensor]:
    """Move boxes from one view to another of the same image (``h_*``: original image
    -> view matrices); clip to ``img_shape``, drop boxes under ``min_size``.

    Returns:
        ``(moved instances, keep mask over the input boxes)``.
    """
    m = h_to.double() @ torch.linalg.inv(h_from.double())
    boxes, keep = project_boxes(inst.bboxes, m, img_shape, min_size)
    moved = DetInstances(boxes, inst.labels, inst.scores)
    return moved[keep], keep


def _iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    from torchvision.ops import box_iou
    if len(a) == 0 or len(b) == 0:
        return a.new_zeros(len(a), len(b))
    return box_iou(a, b)


def flip_uncertainty(dets: DetInstances, flipped: DetInstances, width: float) -> torch.Tensor:
    """Per box of ``dets``: mean |side difference| / (w, h) to the best same-class match
    (IoU >= 0.5) among ``flipped`` (detections on the horizontally flipped image, mapped
    back here); ``inf`` without a match."""
    if len(dets) == 0:
        return dets.bboxes.new_zeros(0)
    fb = flipped.bboxes.clone()
    fb[:, 0], fb[:, 2] = width - flipped.bboxes[:, 2], width - flipped.bboxes[:, 0]
    iou = _iou(dets.bboxes, fb)
    iou = iou * (dets.labels[:, None] == flipped.labels[None, :])
    out = torch.full((len(dets),), float('inf'), device=dets.bboxes.device)
    if iou.numel() == 0:
        return out
    best, idx = iou.max(dim=1)
    matched = best >= 0.5
    if matched.any():
        b, m = dets.bboxes[matched], fb[idx[matched]]
        wh = (b[:, 2:] - b[:, :2]).clamp_min(1e-6).repeat(1, 2)
        out[matched] = ((b - m).abs() / wh).mean(dim=1)
    return out


def jitter_uncertainty(detector, images: list[torch.Tensor], dets: Sequence[DetInstances],
                       times: int = 10, scale: float = 0.06) -> list[torch.Tensor]:
    """Per box of each ``dets``: Soft Teacher's box-jitter uncertainty (see the module
    docstring) from ``detector.refine_boxes``; uses the global torch RNG."""
    if times < 2:
        raise ValueError(f'jitter_uncertainty needs times >= 2, got {times}')
    boxes, labels, sizes = [], [], []
    for d in dets:
        wh = (d.bboxes[:, 2:] - d.bboxes[:, :2]).clamp_min(1.0).repeat(1, 2)
        noise = torch.randn(times, len(d), 4, device=d.bboxes.device) * wh * scale
        boxes.append((d.bboxes[None] + noise).reshape(-1, 4))
        labels.append(d.labels.repeat(times))
        sizes.append(wh)
    refined = detector.refine_boxes(images, boxes, labels)
    return [(r.reshape(times, len(d), 4).std(dim=0) / wh).mean(dim=1) if len(d) > 0
            else d.bboxes.new_zeros(0) for d, r, wh in zip(dets, refined, sizes)]


def box_precision(pred: DetInstances, true: DetInstances, iou_thr: float = 0.5) -> tuple[
        int, int]:
    """``(true positives, predictions)``: greedy by score, one match per true box,
    same class, IoU >= ``iou_thr``."""
    if len(pred) == 0:
        return 0, 0
    if len(true) == 0:
        return 0, len(pred)
    order = torch.argsort(pred.scores, descending=True) if pred.scores is not None else \
        torch.arange(len(pred), device=pred.bboxes.device)
    iou = _iou(pred.bboxes[order], true.bboxes)
    iou = iou * (pred.labels[order][:, None] == true.labels[None, :])
    used = torch.zeros(len(true), dtype=torch.bool, device=iou.device)
    tp = 0
    for i in range(len(order)):
        cand = iou[i].masked_fill(used, 0)
        j = int(cand.argmax())
        if cand[j] >= iou_thr:
            used[j] = True
            tp += 1
    return tp, len(pred)


@MODELS.register_module()
class SemiDetector(BaseModel):
    """Mean-teacher detector with class-aware pseudo-box selection (see the module
    docstring). Registered as ``SemiDetector`` and ``MeanTeacherDetector``.

    Args:
        detector: config of a detector with ``loss(images, instances)`` and
            ``predict(images)`` (:class:`~ssvision.models.TorchvisionDetector`).
        selector: box selector config; None gives supervised-only training.
            Default ``FixedScoreBoxSelector(0.9)``.
        semi_train_cfg: ``unsup_weight`` (1.0), ``burn_in_iters`` (0),
            ``reg_uncertainty`` (0.1; None trains regression on every pseudo-box and
            skips the uncertainty pass), ``reg_uncertainty_mode`` (``'flip'``, any
            detector; ``'jitter'``: Soft Teacher's box jitter, two-stage only, with
            ``jitter_times`` 10 and ``jitter_scale`` 0.06), ``min_box_size`` (2.0 pixels),
            ``zero_warn_iters`` (50: warn when the teacher yields no pseudo-box for this
            many iterations in a row after burn-in).
        predict_on: networks validated, default ``('teacher', 'student')``.
        data_preprocessor: default :class:`DetDataPreprocessor`.

    The EMA teacher is updated by :class:`~ssvision.engine.hooks.EMATeacherHook`.
    """

    def __init__(self, detector: dict, selector: dict | None = 'default',
                 semi_train_cfg: dict | None = None,
                 predict_on: Sequence[str] = ('teacher', 'student'),
                 data_preprocessor: dict | None = None, init_cfg=None) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(type='DetDataPreprocessor')
        if isinstance(data_preprocessor, dict):
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.student = MODELS.build(detector)
        self.teacher = copy.deepcopy(self.student)
        self.teacher.requires_grad_(False)
        self.teacher.eval()
        if selector == 'default':
            selector = dict(type='FixedScoreBoxSelector', threshold=0.9)
        self.selector = MODELS.build(selector) if selector is not None else None
        cfg = dict(_CFG_DEFAULTS)
        unknown = set(semi_train_cfg or {}) - set(cfg)
        if unknown:
            raise ValueError(f'unknown semi_train_cfg keys {sorted(unknown)}; known: '
                             f'{sorted(cfg)}')
        cfg.update(semi_train_cfg or {})
        if cfg['reg_uncertainty_mode'] not in UNCERTAINTY_MODES:
            raise ValueError(f'reg_uncertainty_mode must be one of {UNCERTAINTY_MODES}, got '
                             f"{cfg['reg_uncertainty_mode']!r}")
        if cfg['reg_uncertainty_mode'] == 'jitter' and (
                getattr(self.student, 'one_stage', True) or
                not hasattr(self.student, 'refine_boxes')):
            raise ValueError("reg_uncertainty_mode='jitter' needs a two-stage detector (its "
                             "second stage refines the jittered boxes); use 'flip'")
        if cfg['reg_uncertainty_mode'] == 'jitter' and int(cfg['jitter_times']) < 2:
            raise ValueError(f"jitter_times must be >= 2, got {cfg['jitter_times']}")
        self.semi_train_cfg = cfg
        self.predict_on = tuple(predict_on)
        self.num_classes = getattr(self.student, 'num_classes', None)
        self._zero_run = 0

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()  # the teacher always predicts in eval mode
        return self

    current_iter = staticmethod(SemiBase.current_iter)

    # ------------------------------------------------------------ training
    def forward(self, inputs, data_samples=None, mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        raise ValueError(f"mode must be 'loss' or 'predict', got {mode!r}")

    def loss(self, inputs: dict, data_samples: dict) -> dict:
        out = {}
        if 'sup' in inputs and len(inputs['sup']):
            if hasattr(self.selector, 'observe'):  # class-aware selection's count prior
                self.selector.observe([g.labels for g in data_samples['sup']['gt_instances']])
            sup = self.student.loss(inputs['sup'], data_samples['sup']['gt_instances'])
            out['sup_loss'] = sum(sup.values())
            out.update({f'sup.{k.replace("loss_", "")}': v.detach() for k, v in sup.items()})
        unsup = 'unsup_teacher' in inputs and 'unsup_student' in inputs and \
            len(inputs['unsup_teacher']) > 0 and self.selector is not None
        it = self.current_iter()
        if unsup and it >= self.semi_train_cfg['burn_in_iters']:
            out.update(self._unsup(inputs, data_samples))
        return out

    def _unsup(self, inputs: dict, data_samples: dict) -> dict:
        cfg = self.semi_train_cfg
        weak, strong = inputs['unsup_teacher'], inputs['unsup_student']
        t_samples, s_samples = data_samples['unsup_teacher'], data_samples['unsup_student']
        dets = self.teacher.predict(weak)
        keep = self.selector(dets)
        reliable = [torch.ones(len(d), dtype=torch.bool, device=d.bboxes.device)
                    for d in dets]
        if cfg['reg_uncertainty'] is not None and cfg['reg_uncertainty_mode'] == 'flip':
            flipped = self.teacher.predict([img.flip(-1) for img in weak])
            reliable = [flip_uncertainty(d, f, img.shape[-1]) <= cfg['reg_uncertainty']
                        for d, f, img in zip(dets, flipped, weak)]
        elif cfg['reg_uncertainty'] is not None:  # box jitter, on the kept boxes only
            unc = jitter_uncertainty(self.teacher, weak, [d[k] for d, k in zip(dets, keep)],
                                     int(cfg['jitter_times']), float(cfg['jitter_scale']))
            for r, k, u in zip(reliable, keep, unc):
                r[:] = False
                r[k] = u <= cfg['reg_uncertainty']
        pseudo, pseudo_reg = [], []
        for i, d in enumerate(dets):
            kept = d[keep[i]]
            moved, ok = transfer_boxes(kept, t_samples['homography'][i],
                                       s_samples['homography'][i], strong[i].shape[-2:],
                                       cfg['min_box_size'])
            pseudo.append(moved)
            pseudo_reg.append(moved[reliable[i][keep[i]][ok]])
        # images without a pseudo-box stay out of the student's unsup forward (they add 0)
        cls_idx = [i for i, p in enumerate(pseudo) if len(p)]
        reg_idx = [i for i, p in enumerate(pseudo_reg) if len(p)]
        zero = strong[0].new_zeros(())
        cls_loss = reg_loss = zero
        if cls_idx:
            terms = self.student.loss([strong[i] for i in cls_idx], [pseudo[i] for i in cls_idx])
            cls_loss = sum((v for k, v in terms.items() if k in CLS_LOSS_KEYS), zero)
            if cfg['reg_uncertainty'] is None:  # every pseudo-box trains regression too
                reg_loss = sum((v for k, v in terms.items() if k in REG_LOSS_KEYS), zero)
        if cfg['reg_uncertainty'] is not None and reg_idx:
            terms = self.student.loss([strong[i] for i in reg_idx],
                                      [pseudo_reg[i] for i in reg_idx])
            reg_loss = sum((v for k, v in terms.items() if k in REG_LOSS_KEYS), zero)
        out = {'unsup_loss': cfg['unsup_weight'] * (cls_loss + reg_loss),
               'unsup.cls': cls_loss.detach(), 'unsup.reg': reg_loss.detach()}
        out.update(self.health(dets, keep, pseudo, pseudo_reg, t_samples))
        n_boxes = sum(len(p) for p in pseudo)
        self._zero_run = 0 if n_boxes else self._zero_run + 1
        if self._zero_run == cfg['zero_warn_iters']:
            n_cand = sum(len(d) for d in dets)
            warnings.warn(
                f'SemiDetector: no pseudo-box for {self._zero_run} iterations in a row '
                f'(teacher candidates this iteration: {n_cand}); the unsup loss is 0. For a '
                'one-stage teacher lower its score_thresh and use ClassAwareBoxSelector.',
                stacklevel=2)
        return out

    @torch.no_grad()
    def health(self, dets, keep, pseudo, pseudo_reg, t_samples) -> dict:
        """Pseudo-boxes kept per class and per image, candidates, fraction trusted for
        regression, precision / recall of the kept boxes against the true boxes (in the
        teacher's view) when known."""
        k = self.num_classes or 0
        dev = dets[0].bboxes.device if dets else 'cpu'
        n = len(dets)
        # per class: the pseudo-boxes the student trains on (after the move into its view)
        kept_labels = [p.labels for p in pseudo]
        counts = torch.bincount(torch.cat(kept_labels), minlength=k) if kept_labels else \
            torch.zeros(k, dtype=torch.long)
        n_kept = sum(len(p) for p in pseudo)
        log = {'pb_per_img': torch.tensor(n_kept / max(n, 1), device=dev),
               'cand_per_img': torch.tensor(sum(len(d) for d in dets) / max(n, 1), device=dev),
               'pb_reg_frac': torch.tensor(sum(len(p) for p in pseudo_reg) / max(n_kept, 1),
                                           device=dev),
               'teacher_conf': torch.cat([d.scores for d in dets]).mean() if any(
                   len(d) for d in dets) else torch.tensor(0.0, device=dev)}
        for c in range(k):
            log[f'pb_n_{c}'] = counts[c].float()
        true = t_samples.get('true_instances') if isinstance(t_samples, dict) else None
        if true is not None and any(len(t) for t in true):
            tp = npred = ntrue = 0
            for d, m, t in zip(dets, keep, true):
                a, b = box_precision(d[m], t)
                tp, npred, ntrue = tp + a, npred + b, ntrue + len(t)
            if npred:
                log['pb_prec'] = torch.tensor(tp / npred, device=dev)
            log['pb_recall'] = torch.tensor(tp / max(ntrue, 1), device=dev)
        for key, value in self.selector.extra_log().items():
            log[key] = torch.as_tensor(value, dtype=torch.float32)
        return log

    # ------------------------------------------------------------ validation
    def predict(self, inputs, data_samples: dict | None = None) -> list[dict]:
        """Per image ``{'img_id', 'ori_shape', 'gt_instances', 'pred': {name:
        DetInstances}}``, boxes mapped back to the original image (inverse homography)."""
        if isinstance(inputs, dict):
            raise TypeError('predict expects a list of images, got a dict of views')
        samples = data_samples or {}
        preds = {}
        for name in self.predict_on:
            net = self.teacher if name == 'teacher' else self.student
            was = net.training
            net.eval()
            preds[name] = net.predict(inputs)
            net.train(was)
        out = []
        for i in range(len(inputs)):
            h = samples.get('homography')
            ori = samples.get('ori_shape', [tuple(inputs[i].shape[-2:])] * len(inputs))[i]
            item = {'img_id': int(samples.get('img_id', [-1] * len(inputs))[i]),
                    'ori_shape': tuple(int(v) for v in ori), 'pred': {}}
            gts = samples.get('gt_instances')
            for name, p in preds.items():
                d = p[i]
                if h is not None:
                    d, _ = transfer_boxes(d, h[i], torch.eye(3, device=h[i].device), ori, 0.0)
                item['pred'][name] = d.to('cpu')
            if gts is not None:
                g = gts[i]
                if h is not None:
                    g, _ = transfer_boxes(g, h[i], torch.eye(3, device=h[i].device), ori, 0.0)
                item['gt_instances'] = g.to('cpu')
            out.append(item)
        return out


MODELS.register_module(name='MeanTeacherDetector', module=SemiDetector)
