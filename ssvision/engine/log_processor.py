"""A console log line that stays readable with many classes.

mmengine's ``LogProcessor`` prints every logged scalar on the console line: with
per-class selection counts and rates (``sel_n_<c>``, ``sel_frac_<c>``), thresholds
(``thr_<c>``, ``box_thr_<c>``), pseudo-label precision and counts (``pl_prec_<c>``,
``pl_n_<c>``), pseudo-box
counts (``pb_n_<c>``) and per-class metrics
(``recall_<c>``, ``IoU_<c>``, ``AP_<c>``) that is 20 fields per line on MNIST and 160 on
COCO. :class:`SemiLogProcessor` keeps all of them in what goes to the visualizer backends
(``scalars.json``, TensorBoard) and the message hub, and prints summaries on the console:
the overall figures that are logged anyway, plus the lowest per-class selection rate and
its class (``sel_frac_min``), the one class-wise figure a starving class shows up in.
"""

from __future__ import annotations

import re

from mmengine.runner import LogProcessor

from ssvision.registry import LOG_PROCESSORS

#: Scalar names that are one of a per-class family.
PER_CLASS = re.compile(r'^(?:sel_n|sel_frac|thr|box_thr|pb_n|pl_prec|pl_n)_\d+$'
                       r'|(?:^|/)(?:recall|IoU|AP)_[^/\s]+$')
_ITEM = re.compile(r'^(\S+): (\S+)$')


def summarize_console(log_str: str) -> str:
    """``log_str`` without its per-class items, with ``sel_frac_min`` added when there
    were per-class selection rates (items are mmengine's ``name: value`` separated by
    two spaces)."""
    parts = log_str.split('  ')
    kept, rates = [], {}
    for part in parts:
        m = _ITEM.match(part.strip())
        if m and PER_CLASS.search(m.group(1)):
            if m.group(1).startswith('sel_frac_'):
                try:
                    rates[int(m.group(1)[len('sel_frac_'):])] = float(m.group(2))
                except ValueError:
                    pass
            continue
        kept.append(part)
    if rates:
        c = min(rates, key=rates.get)
        at = next((i for i, p in enumerate(kept) if p.startswith('sel_frac: ')), None)
        item = f'sel_frac_min: {rates[c]:.4f} (class {c})'
        kept.insert(len(kept) if at is None else at + 1, item)
    return '  '.join(kept)


@LOG_PROCESSORS.register_module()
class SemiLogProcessor(LogProcessor):
    """mmengine's ``LogProcessor`` with per-class scalars kept off the console line.

    Args:
        console_per_class: print the per-class scalars on the console too (mmengine's
            behaviour).
        **kwargs: ``LogProcessor`` arguments (``window_size``, ``by_epoch``,
            ``custom_cfg``, ``mean_pattern``, ...).
    """

    def __init__(self, console_per_class: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.console_per_class = console_per_class

    def get_log_after_iter(self, runner, batch_idx: int, mode: str):
        tag, log_str = super().get_log_after_iter(runner, batch_idx, mode)
        return tag, log_str if self.console_per_class else summarize_console(log_str)

    def get_log_after_epoch(self, runner, batch_idx: int, mode: str,
                            with_non_scalar: bool = False):
        tag, log_str = super().get_log_after_epoch(runner, batch_idx, mode, with_non_scalar)
        return tag, log_str if self.console_per_class else summarize_console(log_str)
