"""Plots of pseudo-label selection health over training.

:meth:`SemiBase.health <ssvision.models.algorithms.SemiBase.health>` logs, every
training iteration, ``sel_frac`` (fraction of unlabeled positions kept), ``sel_weight``,
``teacher_conf``, ``sel_n_<c>`` (kept positions per class ``c``), ``pl_acc`` /
``pl_acc_all`` (pseudo-label accuracy on kept / all positions, where labels are known)
and the selector's ``extra_log()`` values, by convention ``thr_<c>`` (threshold of class
``c``). mmengine writes them to ``<work_dir>/<timestamp>/vis_data/scalars.json``.

Per-class selection rate (share of all unlabeled positions selected as class ``c``)::

    rate_c = sel_n_c / total = sel_frac * sel_n_c / sum_k sel_n_k      (total unknown)
    rate_c = sel_n_c / num_unlabeled                                   (total given)

Without ``sel_frac`` the plot shows the share of the selected ones,
``sel_n_c / sum_k sel_n_k``, and says so on its axis.

matplotlib is imported only inside :func:`plot_selection` and draws with the Agg canvas
directly (no pyplot, no screen, the global backend is left alone).
"""

from __future__ import annotations

import glob
import json
import math
import os
import os.path as osp
import re
from collections.abc import Sequence

import numpy as np

#: Keys kept from the logs: selection health and selector thresholds.
HEALTH_PATTERN = re.compile(r'^(sel_|thr(_|$)|pl_acc|teacher_conf)')
#: Keys whose presence marks a record as a training record (besides health keys).
_TRAIN_MARKERS = ('lr', 'loss', 'iter')
_SEL_N = re.compile(r'^sel_n_(\d+)$')
_THR = re.compile(r'^thr_(\d+)$')
#: Colours cycle through tab20 (tab10 up to 10 classes); beyond that, line styles change.
_LINESTYLES = ('-', '--', ':', '-.')


def find_scalars_files(path: str) -> list[str]:
    """``scalars.json`` files of a run, oldest first.

    Args:
        path (str): a ``scalars.json`` (or any json log) file, a log dir
            (``<work_dir>/<timestamp>``) or a work dir holding several timestamp folders
            (a resumed run).

    Returns:
        list[str]: file paths, sorted by timestamp folder name (mmengine's
        ``YYYYMMDD_HHMMSS`` sorts chronologically).
    """
    if osp.isfile(path):
        return [path]
    files = []
    own = osp.join(path, 'vis_data', 'scalars.json')
    if osp.isfile(own):
        files.append(own)
    files += sorted(glob.glob(osp.join(path, '*', 'vis_data', 'scalars.json')))
    return files


def _read_train_records(file: str) -> list[dict]:
    """Training records of one json-lines file, keys without the ``train/`` prefix."""
    records = []
    with open(file, encoding='utf-8') as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # a run killed mid-write leaves a partial line
                continue
            if not isinstance(rec, dict) or 'step' not in rec:
                continue
            rec = {(k[len('train/'):] if k.startswith('train/') else k): v
                   for k, v in rec.items()}
            if any(k in rec for k in _TRAIN_MARKERS) or any(HEALTH_PATTERN.match(k)
                                                            for k in rec):
                records.append(rec)
    return records


def _merge_segments(segments: list[list[dict]]) -> list[dict]:
    """Concatenates runs; a later run replaces every earlier record at or after its
    first step (a resume from an older checkpoint re-logs those steps)."""
    merged: list[dict] = []
    for records in segments:
        if not records:
            continue
        first = min(int(r['step']) for r in records)
        merged = [r for r in merged if int(r['step']) < first]
        merged += records
    by_step: dict[int, dict] = {}
    for rec in merged:  # within a file a repeated step keeps its last record
        by_step.pop(int(rec['step']), None)
        by_step[int(rec['step'])] = rec
    return sorted(by_step.values(), key=lambda r: int(r['step']))


def load_selection_history(work_dir_or_scalars_json: str,
                           pattern: re.Pattern | str = HEALTH_PATTERN
                           ) -> dict[str, np.ndarray]:
    """Reads the selection-health history of a run from mmengine's ``scalars.json``.

    Every ``scalars.json`` under the work dir is read, timestamp folders in order;
    training records are kept (validation records are skipped). When a later folder
    (a resume) starts at step ``s``, earlier records with ``step >= s`` are dropped, so a
    duplicated step keeps its last record. Records are sorted by step.

    Args:
        work_dir_or_scalars_json (str): work dir, log dir or json file.
        pattern (re.Pattern | str): keys to keep (besides ``step``). Default: the health
            keys ``sel_*``, ``thr*``, ``pl_acc*``, ``teacher_conf``.

    Returns:
        dict[str, np.ndarray]: ``step`` (int64, shape ``(T,)``) and one float64 ``(T,)``
        array per kept key, NaN where a record lacks the key (e.g. burn-in).

    Raises:
        FileNotFoundError: no json log under the path.
    """
    files = find_scalars_files(work_dir_or_scalars_json)
    if not files:
        raise FileNotFoundError(f'no vis_data/scalars.json under {work_dir_or_scalars_json}')
    pattern = re.compile(pattern) if isinstance(pattern, str) else pattern
    records = _merge_segments([_read_train_records(f) for f in files])
    keys: list[str] = []
    for rec in records:
        for k in rec:
            if k != 'step' and pattern.match(k) and k not in keys:
                keys.append(k)
    history = {'step': np.array([int(r['step']) for r in records], dtype=np.int64)}
    for k in sort_keys(keys):
        history[k] = np.array([_as_float(r.get(k)) for r in records], dtype=np.float64)
    return history


def _as_float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def sort_keys(keys: Sequence[str]) -> list[str]:
    """Keys with numeric suffixes in numeric order (``sel_n_2`` before ``sel_n_10``)."""
    def key(k):
        parts = re.split(r'(\d+)', k)
        return [int(p) if p.isdigit() else p for p in parts]
    return sorted(keys, key=key)


def class_indices(history: dict[str, np.ndarray], regex: re.Pattern = _SEL_N) -> list[int]:
    """Sorted class indices ``c`` of the keys matching ``regex`` (``sel_n_<c>``)."""
    return sorted(int(m.group(1)) for k in history if (m := regex.match(k)))


def moving_average(values: np.ndarray, window: int = 1) -> np.ndarray:
    """Trailing moving average over the last ``window`` points, ignoring NaN.

    Args:
        values (np.ndarray): shape ``(T,)``.
        window (int): points averaged; 1 returns a copy.

    Returns:
        np.ndarray: shape ``(T,)``; NaN where the window holds no finite value.
    """
    values = np.asarray(values, dtype=np.float64)
    if window < 1:
        raise ValueError(f'window must be >= 1, got {window}')
    if window == 1 or values.size == 0:
        return values.copy()
    valid = np.isfinite(values)
    csum = np.concatenate([[0.0], np.cumsum(np.where(valid, values, 0.0))])
    ccount = np.concatenate([[0], np.cumsum(valid)])
    hi = np.arange(1, values.size + 1)
    lo = np.maximum(hi - window, 0)
    total, count = csum[hi] - csum[lo], ccount[hi] - ccount[lo]
    with np.errstate(invalid='ignore', divide='ignore'):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def selection_rates(history: dict[str, np.ndarray], num_unlabeled: float | None = None
                    ) -> tuple[dict[int, np.ndarray], str]:
    """Per-class selection rates and the label of what they are.

    Args:
        history (dict): from :func:`load_selection_history`.
        num_unlabeled (float | None): unlabeled positions per iteration, if known.

    Returns:
        tuple: ``{c: (T,) array}`` and the y-axis label.
    """
    classes = class_indices(history)
    counts = {c: np.asarray(history[f'sel_n_{c}'], dtype=np.float64) for c in classes}
    if num_unlabeled:
        return ({c: v / float(num_unlabeled) for c, v in counts.items()},
                'selection rate (sel_n_c / unlabeled positions)')
    total = np.sum(list(counts.values()), axis=0) if counts else np.zeros(0)
    with np.errstate(invalid='ignore', divide='ignore'):
        share = {c: np.where(total > 0, v / np.where(total > 0, total, 1.0), 0.0)
                 for c, v in counts.items()}
    if 'sel_frac' in history:
        frac = np.asarray(history['sel_frac'], dtype=np.float64)
        return ({c: s * frac for c, s in share.items()},
                'selection rate (sel_frac * sel_n_c / sum sel_n)')
    return share, 'share of selected (sel_n_c / sum_c sel_n_c)'


def _class_style(i: int, n: int, cmap_small, cmap_large) -> dict:
    if n <= 10:
        return dict(color=cmap_small(i % 10), linestyle='-')
    return dict(color=cmap_large(i % 20), linestyle=_LINESTYLES[(i // 20) % len(_LINESTYLES)])


def _legend_outside(ax, n: int, x: float = 1.01) -> None:
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        ax.legend(loc='upper left', bbox_to_anchor=(x, 1.0), fontsize='small',
                  ncol=max(1, math.ceil(n / 25)), borderaxespad=0.0)


def _note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha='center', va='center', transform=ax.transAxes,
            color='gray')


def plot_selection(history: dict[str, np.ndarray], out_png: str,
                   class_names: Sequence[str] | None = None, title: str | None = None,
                   window: int = 1, num_unlabeled: float | None = None,
                   dpi: int = 100) -> str:
    """Draws selection health into one PNG with up to three panels sharing the step axis.

    (a) per-class selection rate (see the module docstring) and ``sel_frac``;
    (b) per-class thresholds ``thr_<c>`` (or the global ``thr``);
    (c) ``pl_acc``, ``pl_acc_all`` and ``teacher_conf`` where logged.

    A panel with nothing logged is left out (a fixed threshold logs no thresholds) and
    named under the title; the remaining panels are lettered in order.

    Args:
        history (dict[str, np.ndarray]): ``step`` and health keys, as returned by
            :func:`load_selection_history`.
        out_png (str): output path; parent folders are created.
        class_names (Sequence[str] | None): legend names, indexed by class.
        title (str | None): figure title.
        window (int): trailing moving-average window in points; 1 = no smoothing.
        num_unlabeled (float | None): unlabeled positions per iteration, if known.
        dpi (int): resolution. Default 100.

    Returns:
        str: ``out_png``.
    """
    fig = selection_figure(history, class_names=class_names, title=title, window=window,
                           num_unlabeled=num_unlabeled, dpi=dpi)
    os.makedirs(osp.dirname(osp.abspath(out_png)), exist_ok=True)
    fig.savefig(out_png, dpi=dpi, bbox_inches='tight')
    return out_png


def selection_figure(history: dict[str, np.ndarray], class_names: Sequence[str] | None = None,
                     title: str | None = None, window: int = 1,
                     num_unlabeled: float | None = None, dpi: int = 100):
    """The :func:`plot_selection` figure (a matplotlib ``Figure`` on an Agg canvas).

    Args: as :func:`plot_selection`.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if 'step' not in history:
        raise KeyError("history has no 'step'")
    steps = np.asarray(history['step'])
    cmap_small, cmap_large = _colormaps()

    def name(c: int) -> str:
        if class_names is not None and 0 <= c < len(class_names):
            return f'{c}: {class_names[c]}'
        return str(c)

    rates, ylabel = selection_rates(history, num_unlabeled)
    classes = sorted(rates)
    thr_classes = class_indices(history, _THR)
    quality = [('pl_acc', 'pl_acc (selected)', 'tab:green'),
               ('pl_acc_all', 'pl_acc_all (all)', 'tab:olive'),
               ('teacher_conf', 'teacher_conf', 'tab:purple'),
               ('sel_weight', 'sel_weight', 'tab:gray')]
    quality = [q for q in quality if q[0] in history]

    # Panels with nothing to show are left out (a fixed threshold logs no thresholds);
    # what was left out is said under the title.
    panels, missing = [], []
    if classes or 'sel_frac' in history:
        panels.append('rates')
    else:
        missing.append('selection')
    if thr_classes or 'thr' in history:
        panels.append('thresholds')
    else:
        missing.append('thresholds (fixed threshold)')
    if quality:
        panels.append('quality')
    else:
        missing.append('pseudo-label accuracy')

    fig = Figure(figsize=(12, 10 * max(len(panels), 1) / 3 + 0.5), dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(max(len(panels), 1), 1, sharex=True, squeeze=False)[:, 0]
    letters = iter('abc')
    if not panels:
        _note(axes[0], 'nothing logged')

    for ax, panel in zip(axes, panels):
        letter = next(letters)
        if panel == 'rates':
            for i, c in enumerate(classes):
                ax.plot(steps, moving_average(rates[c], window), label=name(c), linewidth=1.2,
                        **_class_style(i, len(classes), cmap_small, cmap_large))
            if 'sel_frac' in history:
                # own right-hand axis: the total would squash the per-class curves
                twin = ax.twinx()
                line, = twin.plot(steps, moving_average(history['sel_frac'], window),
                                  color='black', linewidth=2.0, linestyle='--',
                                  label='sel_frac (all, right axis)')
                twin.set_ylabel('sel_frac', fontsize='small')
                ax.plot([], [], color='black', linewidth=2.0, linestyle='--',
                        label=line.get_label())
            ax.set_ylabel(ylabel, fontsize='small')
            ax.set_title(f'({letter}) selection per class', loc='left', fontsize='medium')
            _legend_outside(ax, len(classes) + 1, x=1.08 if 'sel_frac' in history else 1.01)
        elif panel == 'thresholds':
            for c in thr_classes:
                i = classes.index(c) if c in classes else c
                ax.plot(steps, moving_average(history[f'thr_{c}'], window), label=name(c),
                        linewidth=1.2, **_class_style(i, max(len(classes), len(thr_classes)),
                                                      cmap_small, cmap_large))
            if 'thr' in history:
                ax.plot(steps, moving_average(history['thr'], window), color='black',
                        linewidth=2.0, linestyle='--', label='thr')
            ax.set_ylabel('threshold')
            ax.set_title(f'({letter}) per-class threshold', loc='left', fontsize='medium')
            _legend_outside(ax, len(thr_classes) + 1)
        else:
            for key, label, color in quality:
                ax.plot(steps, moving_average(history[key], window), label=label, color=color,
                        linewidth=1.5)
            ax.set_ylabel('accuracy / confidence')
            ax.set_title(f'({letter}) pseudo-label quality', loc='left', fontsize='medium')
            _legend_outside(ax, len(quality))
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel('iteration')

    suptitle = title or 'pseudo-label selection'
    if window > 1:
        suptitle += f'  (moving average, window {window})'
    if missing and panels:
        suptitle += '\nnot logged: ' + ', '.join(missing)
    fig.suptitle(suptitle)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return fig


def _colormaps():
    from matplotlib import colormaps
    return colormaps['tab10'], colormaps['tab20']
