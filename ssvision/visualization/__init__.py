"""Plots of training diagnostics (pseudo-label selection health)."""

from .selection_plot import (
    find_scalars_files,
    load_selection_history,
    moving_average,
    plot_selection,
    selection_figure,
    selection_rates,
)

__all__ = ['find_scalars_files', 'load_selection_history', 'moving_average',
           'plot_selection', 'selection_figure', 'selection_rates']
