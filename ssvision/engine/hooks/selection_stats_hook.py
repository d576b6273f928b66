"""Draws the run's pseudo-label selection health into a PNG in the work dir."""

from __future__ import annotations

import logging
import os.path as osp
import re

import numpy as np
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log

from ssvision.registry import HOOKS
from ssvision.visualization.selection_plot import (
    HEALTH_PATTERN,
    find_scalars_files,
    load_selection_history,
    plot_selection,
)

_TRAIN = 'train/'


def history_from_message_hub(message_hub, last_step: int, interval: int = 1,
                             pattern: re.Pattern = HEALTH_PATTERN) -> dict[str, np.ndarray]:
    """Health history from the MessageHub's ``train/*`` history buffers.

    The buffers hold one value per update (every iteration once unlabeled data is used)
    but no step, so each key is right-aligned to end at ``last_step``. Keys updated only
    on some iterations (``pl_acc`` when nothing is selected) are approximate; the
    ``scalars.json`` history is exact and preferred. Buffers keep only their last
    ``max_length`` values.

    Args:
        message_hub: ``runner.message_hub``.
        last_step (int): 1-based step of the last update (``runner.iter`` after training).
        interval (int): keep every ``interval``-th step (counted back from the last).
        pattern (re.Pattern): keys (without ``train/``) to keep.

    Returns:
        dict[str, np.ndarray]: ``step`` and one array per key, NaN where unknown.
    """
    values = {}
    for key, buf in message_hub.log_scalars.items():
        if key.startswith(_TRAIN) and pattern.match(key[len(_TRAIN):]):
            values[key[len(_TRAIN):]] = np.asarray(buf.data[0], dtype=np.float64).ravel()
    if not values:
        return {}
    length = max(v.size for v in values.values())
    steps = np.arange(last_step - length + 1, last_step + 1, dtype=np.int64)
    keep = np.arange(length - 1, -1, -max(1, interval))[::-1]
    history = {'step': steps[keep]}
    for key, v in values.items():
        padded = np.full(length, np.nan)
        padded[length - v.size:] = v
        history[key] = padded[keep]
    return history


@HOOKS.register_module()
class SelectionStatsHook(Hook):
    """Writes :func:`~ssvision.visualization.plot_selection` of the run to
    ``<work_dir>/<out_file>`` after training (and after each validation with
    ``plot_on_val=True``), on rank 0 only.

    History source, first that has health keys: every ``vis_data/scalars.json`` under
    ``runner.work_dir`` (exact steps, resumes merged), those under ``runner.log_dir``,
    then the MessageHub's ``train/*`` buffers. Class names come from
    ``runner.train_dataloader.dataset.metainfo['classes']`` when present. A failure
    never stops training: it is logged as a warning.

    Args:
        interval (int): stride in iterations of the points taken from the MessageHub
            fallback (``scalars.json`` already has the logger's interval). Default 50.
        out_file (str): PNG name, relative to ``runner.work_dir``. Default
            ``'selection_stats.png'``.
        window (int): moving-average window in plotted points; 1 = none. Default 5.
        plot_on_val (bool): also redraw after every validation. Default False.
    """

    priority = 'LOW'

    def __init__(self, interval: int = 50, out_file: str = 'selection_stats.png',
                 window: int = 5, plot_on_val: bool = False) -> None:
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}')
        if window < 1:
            raise ValueError(f'window must be >= 1, got {window}')
        self.interval = interval
        self.out_file = out_file
        self.window = window
        self.plot_on_val = plot_on_val

    def after_train(self, runner) -> None:
        self._plot(runner)

    def after_val_epoch(self, runner, metrics=None) -> None:
        if self.plot_on_val:
            self._plot(runner)

    def _plot(self, runner) -> str | None:
        if not is_main_process():
            return None
        try:
            history = self._history(runner)
            if len(history) <= 1 or not len(history.get('step', ())):
                print_log('SelectionStatsHook: no selection statistics logged; no plot',
                          logger='current', level=logging.WARNING)
                return None
            out = osp.join(runner.work_dir, self.out_file)
            plot_selection(history, out, class_names=self._class_names(runner),
                           title=osp.basename(osp.normpath(runner.work_dir)),
                           window=self.window)
            print_log(f'SelectionStatsHook: selection plot written to {out}',
                      logger='current')
            return out
        except Exception as e:  # a plot must never stop training
            print_log(f'SelectionStatsHook: could not plot selection statistics: '
                      f'{type(e).__name__}: {e}', logger='current', level=logging.WARNING)
            return None

    def _history(self, runner) -> dict[str, np.ndarray]:
        for root in (getattr(runner, 'work_dir', None), getattr(runner, 'log_dir', None)):
            if root and find_scalars_files(root):
                history = load_selection_history(root)
                if len(history) > 1 and len(history['step']):
                    return history
        return history_from_message_hub(runner.message_hub, int(runner.iter), self.interval)

    @staticmethod
    def _class_names(runner) -> list[str] | None:
        try:
            classes = runner.train_dataloader.dataset.metainfo['classes']
            return [str(c) for c in classes] if classes is not None else None
        except Exception:
            return None
