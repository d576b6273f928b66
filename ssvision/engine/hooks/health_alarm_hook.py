"""Warns, with the iteration, when a run fails in one of the known silent ways."""

from __future__ import annotations

import logging
import math
import re

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log

from ssvision.engine.mmengine_compat import unwrap
from ssvision.registry import HOOKS

_SEL_N = re.compile(r'^train/sel_n_(\d+)$')
_PL_N = re.compile(r'^train/pl_n_(\d+)$')
#: Ignore label of dense tasks (not a class; never counted in the labeled prior).
_IGNORE = 255


def _odds(p: float) -> float:
    p = min(max(p, 1e-9), 1.0 - 1e-9)
    return p / (1.0 - p)


@HOOKS.register_module()
class HealthAlarmHook(Hook):
    """Four alarms for failures that leave healthy-looking logs, checked every
    ``interval`` iterations and logged as warnings that name the iteration.

    1. **One-class teacher** (``collapse``): over the last ``interval`` iterations the
       selector kept ``n_c`` samples (pixels) of class ``c`` (the ``sel_n_<c>`` health
       figures). With ``s = max_c n_c / sum_c n_c`` and ``p`` that class's share of the
       labeled samples (pixels) seen so far, the alarm fires when ``s >= collapse_share``
       and ``odds(s) / odds(p) >= collapse_odds`` (``odds(x) = x / (1 - x)``), and at
       least ``min_selected`` were kept (a random-init teacher behind a 0.95 threshold
       keeps nothing and raises nothing). On a balanced labeled set (``p = 1/K``) that
       is "more than 90 % of the pseudo-labels in one class"; a dense task whose labeled
       pixels are 80 % background fires when the pseudo-labels are more than about
       97.5 % background.
    2. **Supervised loss blow-up** (``sup_loss_growth``): the mean ``sup_loss`` of the
       last ``interval`` iterations exceeds ``sup_loss_factor`` times, and by at least
       ``sup_loss_increase``, the lowest such window mean since an ``unsup_*`` loss was
       first logged (the absolute margin keeps a small loss's noise, 0.01 -> 0.04, quiet).
    3. **Teacher equal to the student** (``teacher_is_student``): every parameter and
       buffer of ``model.teacher`` equals the student's bit for bit, although the last
       EMA update kept a part of the old teacher (``train/ema_momentum`` > 0). A teacher
       that is a copy of the student teaches nothing the student does not know.
    4. **A teacher that grows surer while it drifts** (``drift``), from no hidden label:
       ``q`` is the teacher's class distribution over *all* its unlabeled predictions
       of the window (the ``pl_n_<c>`` figures, kept or not), ``p`` the labeled class
       prior seen so far, and ``d = TV(q, p) = sum_c |q_c - p_c| / 2``. The alarm fires
       when ``d`` has risen by at least ``drift_increase`` above its lowest window
       since the unlabeled loss started, while the mean teacher confidence
       (``teacher_conf``) of the window is at least ``drift_conf_increase`` above its
       value in that lowest window: the teacher concentrates on some classes and is
       more confident about it, the confirmation bias of a global threshold that keeps
       only the easy classes. A healthy teacher's ``d`` falls or stays as it learns.

    Each alarm warns when it starts to hold and again only after it has stopped holding
    for one check. ``fired`` keeps ``(alarm, iteration)`` for every warning, and the
    message hub gets ``train/alarm_<name>`` = 1 / 0 at each check (so the scalar logs
    show when it held).

    Args:
        interval (int): iterations between checks (also the averaging window). Default 50.
        collapse_share (float): ``s`` threshold of alarm 1. Default 0.9.
        collapse_odds (float): odds-ratio threshold of alarm 1. Default 10.
        min_selected (int): fewest kept samples in the window for alarm 1. Default 100.
        sup_loss_factor (float): growth factor of alarm 2. Default 2.
        sup_loss_increase (float): smallest absolute growth of alarm 2. Default 0.5.
        drift_increase (float): rise of ``d`` above its lowest window for alarm 4.
            Default 0.1.
        drift_conf_increase (float): rise of the teacher's mean confidence since that
            window for alarm 4. Default 0.02.
        min_predictions (int): fewest unlabeled predictions in a window for alarm 4.
            Default 500.
    """

    priority = 'LOW'  # after EMATeacherHook (ABOVE_NORMAL) and RuntimeInfoHook

    def __init__(self, interval: int = 50, collapse_share: float = 0.9,
                 collapse_odds: float = 10.0, min_selected: int = 100,
                 sup_loss_factor: float = 2.0, sup_loss_increase: float = 0.5,
                 drift_increase: float = 0.1, drift_conf_increase: float = 0.02,
                 min_predictions: int = 500) -> None:
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}')
        if not 0.5 < collapse_share <= 1.0:
            raise ValueError(f'collapse_share must be in (0.5, 1], got {collapse_share}')
        if sup_loss_factor <= 1.0:
            raise ValueError(f'sup_loss_factor must be > 1, got {sup_loss_factor}')
        self.interval = int(interval)
        self.collapse_share = float(collapse_share)
        self.collapse_odds = float(collapse_odds)
        self.min_selected = int(min_selected)
        self.sup_loss_factor = float(sup_loss_factor)
        self.sup_loss_increase = float(sup_loss_increase)
        self.drift_increase = float(drift_increase)
        self.drift_conf_increase = float(drift_conf_increase)
        self.min_predictions = int(min_predictions)
        #: (lowest d so far, the teacher's confidence in that window)
        self._drift_low: tuple[float, float] | None = None
        self.fired: list[tuple[str, int]] = []
        self._holding: dict[str, bool] = {}
        self._labeled_counts: torch.Tensor | None = None
        self._unsup_iters = 0
        self._sup_baseline: float | None = None

    # ----------------------------------------------------------------- inputs
    def _observe_labels(self, data_batch) -> None:
        samples = (data_batch or {}).get('data_samples') if isinstance(data_batch, dict) else None
        sup = samples.get('sup') if isinstance(samples, dict) else None
        if not isinstance(sup, dict):
            return
        labels = sup.get('gt_seg', sup.get('gt_label'))
        if not isinstance(labels, torch.Tensor):
            return
        labels = labels.detach().flatten().long().cpu()
        labels = labels[(labels >= 0) & (labels != _IGNORE)]
        counts = torch.bincount(labels)
        if self._labeled_counts is None:
            self._labeled_counts = counts
        else:
            n = max(counts.numel(), self._labeled_counts.numel())
            self._labeled_counts = (torch.nn.functional.pad(self._labeled_counts,
                                                            (0, n - self._labeled_counts.numel()))
                                    + torch.nn.functional.pad(counts, (0, n - counts.numel())))

    @staticmethod
    def _window(runner, key: str, n: int) -> list[float]:
        buf = runner.message_hub.log_scalars.get(key)
        if buf is None:
            return []
        return [float(v) for v in buf.data[0][-n:]]

    # ----------------------------------------------------------------- alarms
    def check_collapse(self, sel_counts: dict[int, float]) -> tuple[bool, str]:
        """Alarm 1 from summed kept counts per class over the window."""
        total = sum(sel_counts.values())
        if total < self.min_selected or not sel_counts:
            return False, ''
        cls, top = max(sel_counts.items(), key=lambda kv: kv[1])
        share = top / total
        num_classes = max(sel_counts) + 1
        prior = 1.0 / num_classes
        if self._labeled_counts is not None and self._labeled_counts.sum() > 0:
            lab = self._labeled_counts
            prior = float(lab[cls]) / float(lab.sum()) if cls < lab.numel() else 0.0
        ratio = _odds(share) / _odds(prior)
        if share >= self.collapse_share and ratio >= self.collapse_odds:
            return True, (f'{share:.1%} of the {total:.0f} pseudo-labels kept in the last '
                          f'{self.interval} iterations are class {cls} (labeled share '
                          f'{prior:.1%}): either the teacher collapsed to one class (with '
                          "BatchNorm momentum << 0.1 keep semi_train_cfg.teacher_bn at 'auto' "
                          "or 'batch') or only that class is confident yet and a global "
                          'threshold starves the others (class-aware selectors keep them)')
        return False, ''

    def check_sup_loss(self, window_mean: float) -> tuple[bool, str]:
        """Alarm 2 from the window mean of ``sup_loss`` since the unlabeled loss started
        (the lowest mean seen so far is the baseline)."""
        if not math.isfinite(window_mean):
            return True, f'sup_loss is {window_mean}'
        base = self._sup_baseline
        if base is None or window_mean < base:
            self._sup_baseline = window_mean
            return False, ''
        if (window_mean > self.sup_loss_factor * base
                and window_mean - base >= self.sup_loss_increase):
            return True, (f'sup_loss {window_mean:.3g} (mean of the last {self.interval} '
                          f'iterations) is {window_mean / max(base, 1e-12):.1f}x its '
                          f'lowest {base:.3g} since the unlabeled loss started: the '
                          'unlabeled / auxiliary losses are pulling the student off its '
                          'labels')
        return False, ''

    def labeled_prior(self, num_classes: int) -> torch.Tensor | None:
        """The labeled class shares seen so far ``(num_classes,)``, or None."""
        lab = self._labeled_counts
        if lab is None or lab.sum() <= 0:
            return None
        lab = torch.nn.functional.pad(lab, (0, max(num_classes - lab.numel(), 0)))
        return lab[:num_classes].double() / lab.sum().double()

    def check_drift(self, pred_counts: dict[int, float], conf: float) -> tuple[bool, str]:
        """Alarm 4 from the window's summed per-class prediction counts and the mean
        teacher confidence (the lowest ``d`` seen is the baseline)."""
        total = sum(pred_counts.values())
        num_classes = max(pred_counts) + 1 if pred_counts else 0
        prior = self.labeled_prior(num_classes)
        if total < self.min_predictions or prior is None or not math.isfinite(conf):
            return False, ''
        q = torch.zeros(num_classes, dtype=torch.float64)
        for c, n in pred_counts.items():
            q[c] = n / total
        d = 0.5 * float((q - prior).abs().sum())
        low = self._drift_low
        if low is None or d < low[0]:
            self._drift_low = (d, conf)
            return False, ''
        if d - low[0] >= self.drift_increase and conf - low[1] >= self.drift_conf_increase:
            top = int(torch.argmax(q - prior))
            return True, (f"the teacher's class distribution on unlabeled data moved away "
                          f'from the labeled one (total variation {d:.2f}, lowest '
                          f'{low[0]:.2f}) while its confidence rose ({conf:.2f} from '
                          f'{low[1]:.2f}); class {top} is {q[top]:.1%} of its predictions '
                          f'against {float(prior[top]):.1%} of the labels: it is growing '
                          'surer of fewer classes (confirmation bias; a class-aware selector '
                          'keeps the others in training)')
        return False, ''

    @staticmethod
    def teacher_equals_student(model) -> bool:
        teacher, student = model.teacher, model.student
        t_state, s_state = teacher.state_dict(), student.state_dict()
        return t_state.keys() == s_state.keys() and all(
            torch.equal(t_state[k], v) for k, v in s_state.items())

    def _report(self, runner, name: str, holds: bool, message: str) -> None:
        runner.message_hub.update_scalar(f'train/alarm_{name}', float(holds))
        if holds and not self._holding.get(name, False):
            it = runner.iter + 1
            self.fired.append((name, it))
            print_log(f'HealthAlarm [{name}] at iteration {it}: {message}', logger='current',
                      level=logging.WARNING)
        self._holding[name] = holds

    # ----------------------------------------------------------------- hook
    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._observe_labels(data_batch)
        outputs = outputs or {}
        if any(k.startswith('unsup_') for k in outputs):
            self._unsup_iters += 1
        if (runner.iter + 1) % self.interval:
            return
        counts = {}
        for key in runner.message_hub.log_scalars:
            m = _SEL_N.match(key)
            if m:
                counts[int(m.group(1))] = sum(
                    self._window(runner, key, min(self.interval, self._unsup_iters)))
        if counts and self._unsup_iters:
            self._report(runner, 'collapse', *self.check_collapse(counts))
        window = min(self.interval, self._unsup_iters)
        preds = {int(m.group(1)): sum(self._window(runner, key, window))
                 for key in runner.message_hub.log_scalars if (m := _PL_N.match(key))}
        conf = self._window(runner, 'train/teacher_conf', window)
        if preds and conf and self._unsup_iters:
            self._report(runner, 'drift', *self.check_drift(preds, sum(conf) / len(conf)))
        sup = self._window(runner, 'train/sup_loss', min(self.interval, self._unsup_iters))
        if sup and self._unsup_iters:
            self._report(runner, 'sup_loss_growth', *self.check_sup_loss(sum(sup) / len(sup)))
        model = unwrap(runner.model)
        momentum = self._window(runner, 'train/ema_momentum', 1)
        if (hasattr(model, 'teacher') and hasattr(model, 'student') and momentum
                and momentum[0] > 0):
            self._report(runner, 'teacher_is_student', self.teacher_equals_student(model),
                         'the teacher equals the student bit for bit after an EMA update '
                         f'that kept {momentum[0]:g} of the old teacher: something resets '
                         'the teacher to the student')
