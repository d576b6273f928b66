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
    """Unsupervised Data Augmentation (Xie et al., NeurIPS 2020) on the shared recipe.

    Unlabeled loss: KL from the teacher's sharpened weak-view distribution to the
    student's strong-view distribution, on confident samples only::

        q_i        = softmax(log p_i / T)           (= softmax(z_i / T), p = softmax(z))
        unsup_loss = sum_i w_i * KL(q_i || softmax(s_i)) / N
        w_i        = [max_c p_ic >= threshold]      (the selector, on unsharpened p)

    Supervised loss with training-signal annealing (TSA): at training progress
    ``r = iter / tsa_iters`` a labeled sample whose probability of its true class
    exceeds ``eta_r = alpha(r) (1 - 1/K) + 1/K`` (:func:`tsa_threshold`) is left out::

        sup_loss = sum_i m_i CE(x_i, y_i) / max(sum_i m_i, 1),  m_i = [p_i,y_i <= eta_r]

    and ``sup_tsa_frac`` (fraction of labeled samples kept) and ``sup_tsa_thr`` are
    logged. This is google-research/uda's ``image/main.py`` (``anneal_sup_loss``, the
    sharpened KL with its confidence mask). Published defaults (the paper and its
    CIFAR-10 / SVHN scripts): ``T = 0.4``, confidence threshold 0.8, unsup weight 1,
    unlabeled ratio 7, no TSA (the paper suggests ``'exp'`` when few labels make
    overfitting likely, ``'log'`` when many). Pseudo-targets come from the EMA teacher
    (in eval mode); with ``EMATeacherHook(momentum=0)`` the teacher is the current
    student, as in UDA. UDA keeps samples with ``max p > 0.8`` (strict); the selector
    keeps ``>=``, as USB does.

    ``variant='usb'`` reproduces USB 0.3.2's ``UDA.train_step`` instead (checked by
    ``tests/parity``), which departs from the authors' code in four places:

    - TSA thresholds the *top* probability ``max_c p_ic``, not the true class's;
    - the TSA loss is averaged over all ``N`` labeled samples: ``sum_i m_i CE_i / N``;
    - the target is the unsharpened ``p`` (USB passes probabilities with
      ``softmax=False``, so its ``T`` is never applied; ``temperature`` is ignored);
    - the consistency is the soft-target cross entropy ``-sum_c p_ic log softmax(s_i)_c``
      (the KL plus the target's entropy: the same gradient, another value;
      ``consistency`` is ignored).

    Knobs (``semi_train_cfg``), besides :class:`MeanTeacher`'s (``consistency``
    ``'kl'``, ``temperature`` 0.4 here; the unsup weight ramp applies only with
    ``unsup_warmup_iters > 0``, ``rampup`` is ``'linear'`` here):

    - ``tsa`` (str, ``'none'``): ``'none'``, ``'linear'``, ``'log'`` or ``'exp'``.
    - ``tsa_iters`` (int | None, None): iterations over which ``r`` goes from 0 to 1;
      None reads the run's ``max_iters`` from mmengine's MessageHub.
    - ``variant`` (str, ``'original'``): ``'original'`` (the authors') or ``'usb'``
      (classification only).

    Args:
        model (dict): network config.
        selector (dict | None): default ``FixedThresholdSelector(0.8)``.
    """

    default_train_cfg = {**MeanTeacher.default_train_cfg, 'consistency': 'kl',
                         'temperature': 0.4, 'rampup': 'linear', 'tsa': 'none',
                         'tsa_iters': None, 'variant': 'original'}

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
