"""The recipe's knobs (``semi_train_cfg`` / ``semi_test_cfg``): defaults and checks."""

from __future__ import annotations

from typing import Any

from .teacher_bn import TEACHER_BN_MODES

#: How the student's views go through it: one forward of all ('concat', FixMatch's), one
#: per view ('separate'), or labeled alone then the rest without updating BN running
#: statistics ('clean_stats').
FORWARD_MODES = ('concat', 'separate', 'clean_stats')
#: Where pseudo-labels come from: the EMA teacher's forward of the weak views, or the
#: student's own forward of the same iteration (USB's FixMatch family).
PSEUDO_LABEL_SOURCES = ('teacher', 'online')

#: Every algorithm's knobs; subclasses add theirs with ``{**RECIPE_KNOBS, ...}``.
RECIPE_KNOBS: dict[str, Any] = dict(
    unsup_weight=1.0,             # multiplier of every unsup_* loss
    burn_in_iters=0,              # supervised-only iterations first (the teacher still moves)
    unsup_warmup_iters=0,         # then a linear ramp of the unsup weight over this many
    student_forward='concat',     # one of FORWARD_MODES
    look_ahead=False,             # FST's future teacher (LookAhead); single process only
    look_ahead_steps=1,           # FST-D: virtual steps in a row
    look_ahead_width=1,           # FST-W: virtual students averaged
    cutmix_prob=0.0,              # dense tasks: CutMix between unlabeled images (UnlabeledCutMix)
    teacher_bn='auto',            # teacher BatchNorm for pseudo-labels, one of TEACHER_BN_MODES
    pseudo_label_source='teacher',  # one of PSEUDO_LABEL_SOURCES
)


def merge_train_cfg(owner: str, defaults: dict, cfg: dict | None) -> dict:
    """``defaults`` updated with ``cfg``; an unknown key is an error naming the allowed."""
    cfg = dict(cfg or {})
    unknown = sorted(set(cfg) - set(defaults))
    if unknown:
        raise ValueError(f'unknown key(s) {unknown} in semi_train_cfg of {owner}; '
                         f'allowed keys: {sorted(defaults)}')
    return {**defaults, **cfg}


def check_train_cfg(cfg: dict, forward_modes: tuple[str, ...], task) -> None:
    """Values of the common knobs, and the combinations the recipe cannot run."""
    if cfg['student_forward'] not in forward_modes:
        raise ValueError(f'semi_train_cfg.student_forward must be one of {forward_modes}, '
                         f'got {cfg["student_forward"]!r}')
    if cfg['teacher_bn'] not in TEACHER_BN_MODES:
        raise ValueError(f'semi_train_cfg.teacher_bn must be one of {TEACHER_BN_MODES}, '
                         f"got {cfg['teacher_bn']!r}")
    if cfg['cutmix_prob'] > 0 and not task.dense:
        raise ValueError(f'cutmix_prob > 0 needs a dense task, not {type(task).__name__}')
    source = cfg['pseudo_label_source']
    if source not in PSEUDO_LABEL_SOURCES:
        raise ValueError(f'semi_train_cfg.pseudo_label_source must be one of '
                         f'{PSEUDO_LABEL_SOURCES}, got {source!r}')
    if source != 'online':
        return
    clash = [name for name, on in (
        ('look_ahead', cfg['look_ahead']), ('cutmix_prob > 0', cfg['cutmix_prob'] > 0),
        (f'a task without per-position outputs ({type(task).__name__})', not task.has_logits),
        ("student_forward='clean_stats'", cfg['student_forward'] == 'clean_stats'))
        if on]
    if clash:
        raise ValueError("pseudo_label_source='online' takes the pseudo-labels from the "
                         "student's own forward; it does not combine with " + ', '.join(clash))


def parse_test_cfg(semi_test_cfg: dict | None) -> tuple[str, ...]:
    """``semi_test_cfg.predict_on``: the networks validation scores (default both)."""
    test_cfg = dict(predict_on=('teacher', 'student'))
    test_cfg.update(semi_test_cfg or {})
    unknown = set(test_cfg) - {'predict_on'}
    if unknown:
        raise ValueError(f'unknown semi_test_cfg keys {sorted(unknown)}; allowed: predict_on')
    predict_on = test_cfg['predict_on']
    if isinstance(predict_on, str):
        predict_on = (predict_on,)
    if not predict_on or set(predict_on) - {'teacher', 'student'}:
        raise ValueError(f"predict_on must name 'teacher' and/or 'student', got {predict_on}")
    return tuple(predict_on)
