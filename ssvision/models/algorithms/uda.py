"""UDA: sharpened soft targets, KL consistency, confidence masking and TSA."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub

from ssvision.registry import MODELS

from ..tasks import ClassificationTask
from .mean_teacher import MeanTeacher

#: Training-signal annealing schedules: ``alpha(r)`` for training progress ``r`` in [0, 1].
TSA_SCHEDULES = ('none', 'linear', 'log', 'exp')
#: Steepness of the log / exp schedules (UDA's ``scale = 5``: exp runs from e^-5 to 1).
TSA_SCALE = 5.0


def tsa_threshold(schedule: str, progress: float, num_classes: int) -> float:
    """UDA's training-signal annealing threshold ``eta = alpha(r) (1 - 1/K) + 1/K``.

    ``alpha(r)`` is ``r`` (``'linear'``), ``1 - exp(-5 r)`` (``'log'``) or
    ``exp(5 (r - 1))`` (``'exp'``), with ``r`` = training progress clipped to [0, 1];
    ``'none'`` gives 1 (no sample is ever dropped).
    """
    if schedule not in TSA_SCHEDULES:
        raise ValueError(f'tsa schedule must be one of {TSA_SCHEDULES}, got {schedule!r}')
    if schedule == 'none':
        return 1.0
    r = min(max(float(progress), 0.0), 1.0)
    alpha = {'linear': r, 'log': 1.0 - math.exp(-TSA_SCALE * r),
             'exp': math.exp(TSA_SCALE * (r - 1.0))}[schedule]
    return alpha * (1.0 - 1.0 / num_classes) + 1.0 / num_classes


#: ``semi_train_cfg.variant`` values.
VARIANTS = ('original', 'usb')


@MODELS.register_module()
class UDA(MeanTeacher):
    """Unsupervised Data Augmentation (Xie et al., NeurIPS 2020), as google-research/uda's
    ``image/main.py``: KL from the teacher's sharpened weak-view distribution to the
    student's strong one, on confident samples, and training-signal annealing (TSA) of
    the supervised loss::

        unsup_loss = sum_i w_i KL(softmax(log p_i / T) || softmax(s_i)) / N
        w_i        = [max_c p_ic >= threshold]           (the selector, on unsharpened p)
        sup_loss   = sum_i m_i CE(x_i, y_i) / max(sum_i m_i, 1),  m_i = [p_i,y_i <= eta_r]

    with ``eta_r`` from :func:`tsa_threshold` at progress ``r = iter / tsa_iters``
    (``sup_tsa_frac`` and ``sup_tsa_thr`` are logged). ``variant='usb'`` is USB 0.3.2's
    ``UDA.train_step`` instead: TSA on the top probability, averaged over all ``N``, the
    unsharpened target and the soft-target cross entropy (the KL plus the target's
    entropy: the same gradient, another value).
    """

    default_train_cfg = {**MeanTeacher.default_train_cfg,
                         'consistency': 'kl',  # the authors' KL
                         'temperature': 0.4,   # the authors' T (ignored by variant='usb')
                         'rampup': 'linear',   # the ramp applies only with unsup_warmup_iters
                         'tsa': 'none',        # one of TSA_SCHEDULES ('exp' for few labels)
                         'tsa_iters': None,    # TSA's length; None: the run's max_iters
                         'variant': 'original'}  # or 'usb' (classification only)

    def __init__(self, model: dict, selector: dict | None = None, **kwargs) -> None:
        if selector is None:
            selector = dict(type='FixedThresholdSelector', threshold=0.8)
        super().__init__(model, selector=selector, **kwargs)
        cfg = self.semi_train_cfg
        if cfg['tsa'] not in TSA_SCHEDULES:
            raise ValueError(f'semi_train_cfg.tsa must be one of {TSA_SCHEDULES}, got '
                             f"{cfg['tsa']!r}")
        if cfg['tsa_iters'] is not None and cfg['tsa_iters'] < 1:
            raise ValueError(f"semi_train_cfg.tsa_iters must be >= 1, got {cfg['tsa_iters']}")
        if cfg['variant'] not in VARIANTS:
            raise ValueError(f'semi_train_cfg.variant must be one of {VARIANTS}, got '
                             f"{cfg['variant']!r}")
        if ((cfg['tsa'] != 'none' or cfg['variant'] == 'usb')
                and not isinstance(self.task, ClassificationTask)):
            raise ValueError("training-signal annealing (tsa) and variant='usb' are "
                             f'defined for ClassificationTask, not {type(self.task).__name__}')

    def _tsa_iters(self) -> int:
        n = self.semi_train_cfg['tsa_iters']
        if n is None:
            n = MessageHub.get_current_instance().get_info('max_iters')
        if not n:
            raise RuntimeError('semi_train_cfg.tsa_iters is None and no max_iters is known '
                               '(outside a Runner); set tsa_iters')
        return int(n)

    def loss_by_pseudo_labels(self, out, pseudo, data_samples):
        if self.semi_train_cfg['variant'] == 'usb':
            loss = self.task.soft_loss(out.logits['unsup_student'], pseudo.probs.detach(),
                                       pseudo.weight, kind='ce')
            return {'unsup_loss': loss}
        return super().loss_by_pseudo_labels(out, pseudo, data_samples)

    def loss_by_gt(self, out, data_samples: dict) -> dict[str, torch.Tensor]:
        schedule = self.semi_train_cfg['tsa']
        if schedule == 'none':
            return super().loss_by_gt(out, data_samples)
        logits, labels = out.logits['sup'], data_samples['sup']['gt_label']
        if (labels < 0).any():
            raise ValueError('labeled batch contains gt_label < 0 (unlabeled samples)')
        logits = logits.float()
        ce = F.cross_entropy(logits, labels, reduction='none',
                             label_smoothing=self.task.label_smoothing)
        thr = tsa_threshold(schedule, self.current_iter() / self._tsa_iters(),
                            logits.shape[1])
        usb = self.semi_train_cfg['variant'] == 'usb'
        with torch.no_grad():
            probs = logits.softmax(dim=1)
            conf = probs.max(dim=1).values if usb else probs.gather(1, labels[:, None])[:, 0]
            keep = (conf <= thr).float()
        kept = ce * keep
        loss = kept.mean() if usb else kept.sum() / keep.sum().clamp_min(1.0)
        return {'sup_loss': loss, 'sup_tsa_frac': keep.mean(),
                'sup_tsa_thr': torch.tensor(thr, device=logits.device)}
