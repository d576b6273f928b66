"""Pictures of training diagnostics: selection health, segmentation and detection views."""

from .det_views import render_det_views
from .seg_views import colorize_labels, denormalize, render_seg_views
from .selection_plot import (
    find_scalars_files,
    load_selection_history,
    moving_average,
    plot_selection,
    selection_figure,
    selection_rates,
)

__all__ = ['colorize_labels', 'denormalize', 'find_scalars_files', 'load_selection_history',
           'moving_average', 'plot_selection', 'render_det_views', 'render_seg_views',
           'selection_figure', 'selection_rates']
